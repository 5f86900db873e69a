// entraclaw_wine_dpapi_probe.exe — the DPAPI half of the core (protect_data /
// unprotect_data, the code entraclaw._cng.protect/unprotect run on Windows)
// against whatever crypt32.dll runs it: Wine's real CryptProtectData in Linux CI,
// Windows on a runner. It serves requests line by line so the Python keystore
// (DpapiFileStore) can use it as its protector for a whole test module, and it
// reads and writes keystore files itself, so the file format is checked by code
// that shares nothing with the Python implementation.
//
// Usage:  entraclaw_wine_dpapi_probe.exe --serve
// Requests (stdin, one per line; "-" is empty hex), one answer line each:
//   protect HEX(data) HEX(entropy)        -> ok HEX(blob)
//   unprotect HEX(blob) HEX(entropy)      -> ok HEX(data)
//   writefile PATH HEX(entropy) HEX(data) -> ok -     (header line + CryptProtectData blob)
//   readfile PATH HEX(entropy)            -> ok HEX(data)
//   quit
// Failures: "err HRESULT API". PATH is a Windows path without spaces (Z:\tmp\...).
// Exit 0 on quit or end of input; 2 on bad arguments.

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "data_protection.h"
#include "status.h"
#include "win32.h"

namespace {

using entraclaw::cng::Status;

// The keystore file header (src/entraclaw/keystore/dpapi_file.py, FILE_MAGIC).
const std::string kFileMagic = "entraclaw-dpapi-v1\n";
const char kDescription[] = "entraclaw keystore";

std::string to_hex(const std::vector<std::uint8_t>& data) {
  static const char digits[] = "0123456789abcdef";
  if (data.empty()) return "-";
  std::string out;
  out.reserve(data.size() * 2);
  for (std::uint8_t byte : data) {
    out.push_back(digits[byte >> 4]);
    out.push_back(digits[byte & 0x0F]);
  }
  return out;
}

bool from_hex(const std::string& text, std::vector<std::uint8_t>& out) {
  out.clear();
  if (text == "-") return true;
  if (text.empty() || text.size() % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int hi = nibble(text[i]);
    const int lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
  }
  return true;
}

void answer_status(const Status& st) {
  std::printf("err 0x%08lX %s\n", static_cast<unsigned long>(static_cast<std::uint32_t>(st.hr)),
              st.api[0] != '\0' ? st.api : "-");
}

void answer_ok(const std::string& payload) { std::printf("ok %s\n", payload.c_str()); }

// E_INVALIDARG for a request the probe cannot parse; ERROR_FILE_NOT_FOUND /
// ERROR_WRITE_FAULT as HRESULTs for file trouble.
constexpr HRESULT kBadRequest = static_cast<HRESULT>(0x80070057);
constexpr HRESULT kNoFile = static_cast<HRESULT>(0x80070002);
constexpr HRESULT kWriteFault = static_cast<HRESULT>(0x8007001D);

const std::uint8_t* ptr(const std::vector<std::uint8_t>& v) { return v.empty() ? nullptr : v.data(); }

void handle(const std::vector<std::string>& f) {
  std::vector<std::uint8_t> a;
  std::vector<std::uint8_t> b;
  std::vector<std::uint8_t> out;
  if ((f[0] == "protect" || f[0] == "unprotect") && f.size() == 3 && from_hex(f[1], a) && from_hex(f[2], b)) {
    const Status st = f[0] == "protect"
                          ? entraclaw::cng::protect_data(ptr(a), a.size(), ptr(b), b.size(), kDescription, out)
                          : entraclaw::cng::unprotect_data(ptr(a), a.size(), ptr(b), b.size(), out);
    if (st.ok()) {
      answer_ok(to_hex(out));
    } else {
      answer_status(st);
    }
    return;
  }
  if (f[0] == "writefile" && f.size() == 4 && from_hex(f[2], b) && from_hex(f[3], a)) {
    const Status st = entraclaw::cng::protect_data(ptr(a), a.size(), ptr(b), b.size(), kDescription, out);
    if (!st.ok()) return answer_status(st);
    std::ofstream file(f[1], std::ios::binary | std::ios::trunc);
    file.write(kFileMagic.data(), static_cast<std::streamsize>(kFileMagic.size()));
    file.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
    if (!file) return answer_status(Status{kWriteFault, "writefile"});
    return answer_ok("-");
  }
  if (f[0] == "readfile" && f.size() == 3 && from_hex(f[2], b)) {
    std::ifstream file(f[1], std::ios::binary);
    if (!file) return answer_status(Status{kNoFile, "readfile"});
    const std::string data((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (data.compare(0, kFileMagic.size(), kFileMagic) != 0) return answer_status(Status{kBadRequest, "readfile"});
    const std::vector<std::uint8_t> blob(data.begin() + static_cast<std::ptrdiff_t>(kFileMagic.size()), data.end());
    const Status st = entraclaw::cng::unprotect_data(ptr(blob), blob.size(), ptr(b), b.size(), out);
    if (!st.ok()) return answer_status(st);
    return answer_ok(to_hex(out));
  }
  answer_status(Status{kBadRequest, "request"});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || std::string(argv[1]) != "--serve") {
    std::fprintf(stderr, "usage: entraclaw_wine_dpapi_probe.exe --serve\n");
    return 2;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream words(line);
    std::vector<std::string> fields{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
    if (fields.empty()) continue;
    if (fields[0] == "quit") break;
    handle(fields);
    std::fflush(stdout);  // the caller waits for each answer line
  }
  return 0;
}
