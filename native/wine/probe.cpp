// entraclaw_wine_probe.exe — drives the CNG signer core against the real
// ncrypt.dll / crypt32.dll of whatever runs it (Wine in Linux CI, Windows on a
// runner). It creates an ephemeral RSA key in the Microsoft Software Key
// Storage Provider, exports the public half, signs the SHA-256 digests given on
// the command line through entraclaw::cng::sign_digest / sign_digest_sized, and
// provokes real Win32 failures. It judges nothing itself: every result goes to
// stdout as one line of space-separated fields, and tests/test_wine_sign.py
// verifies the signatures with `cryptography` and asserts the statuses.
//
// Usage:  entraclaw_wine_probe.exe HEX_DIGEST [HEX_DIGEST ...]
// Lines:  backend NAME
//         keylen BITS
//         pubkey HEX(BCRYPT_RSAPUBLIC_BLOB)
//         sign PADDING INDEX HEX(signature)                  (sign_digest, twice per digest)
//         sized PADDING HINT INDEX HRESULT HEX(signature|-)  (sign_digest_sized)
//         raw_small HRESULT NAME PCBRESULT WRITTEN_PAST_END    (NCryptSignHash, 16-byte buffer, direct)
//         after_pss pkcs1 HRESULT HEX(signature|-)          (PKCS#1 once PSS was used)
//         status CASE HRESULT API NAME CATEGORY ACTION
//         message CASE TEXT...                               (FormatMessage text, may be empty)
//         dpapi CASE HRESULT API NAME DETAIL
//         done
// Exit 0 once every line is written; 2 on bad arguments; 3 when the key
// cannot be set up (the failing call is on stderr).

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "data_protection.h"
#include "sign.h"
#include "status.h"
#include "win32.h"

namespace {

using entraclaw::cng::Padding;
using entraclaw::cng::Status;

constexpr DWORD kKeyBits = 2048;
// Hints for sign_digest_sized: one far too small (forces the provider's
// buffer-too-small answer and the core's resize path), one exact (one call).
constexpr DWORD kTooSmallHint = 16;
constexpr DWORD kExactHint = kKeyBits / 8;

std::string hex(const std::uint8_t* data, std::size_t len) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (std::size_t i = 0; i < len; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 0x0F]);
  }
  return out;
}

std::string hex(const std::vector<std::uint8_t>& data) { return data.empty() ? "-" : hex(data.data(), data.size()); }

std::string hr_text(HRESULT hr) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08lX", static_cast<unsigned long>(static_cast<std::uint32_t>(hr)));
  return buf;
}

bool parse_hex(const char* text, std::vector<std::uint8_t>& out) {
  const std::size_t n = std::strlen(text);
  if (n == 0 || n % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out.clear();
  for (std::size_t i = 0; i < n; i += 2) {
    const int hi = nibble(text[i]);
    const int lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
  }
  return true;
}

const char* padding_name(Padding padding) { return padding == Padding::Pss ? "pss" : "pkcs1"; }

// Frees an NCrypt handle on every exit path of main.
struct NcryptObject {
  NCRYPT_HANDLE handle = 0;
  ~NcryptObject() {
    if (handle != 0) NCryptFreeObject(handle);
  }
};

int fatal(const char* api, SECURITY_STATUS st) {
  std::fprintf(stderr, "fatal %s %s\n", api, hr_text(st).c_str());
  return 3;
}

void print_status(const char* name, const Status& st) {
  const auto* row = entraclaw::cng::find_status(st.code());
  std::printf("status %s %s %s %s %s %s\n", name, hr_text(st.hr).c_str(), st.api, row != nullptr ? row->name : "-",
              entraclaw::cng::category_name(entraclaw::cng::category_of(st.hr)),
              entraclaw::cng::action_name(entraclaw::cng::action_of(st.hr)));
  std::printf("message %s %s\n", name, entraclaw::cng::system_message(st.hr).c_str());
}

void print_dpapi(const char* name, const Status& st, const std::string& detail) {
  const auto* row = entraclaw::cng::find_status(st.code());
  std::printf("dpapi %s %s %s %s %s\n", name, hr_text(st.hr).c_str(), st.api[0] != '\0' ? st.api : "-",
              row != nullptr ? row->name : "-", detail.c_str());
}

void probe_signing(NCRYPT_KEY_HANDLE key, const std::vector<std::vector<std::uint8_t>>& digests) {
  for (Padding padding : {Padding::Pkcs1, Padding::Pss}) {
    for (std::size_t i = 0; i < digests.size(); ++i) {
      // Twice: PKCS#1 v1.5 must repeat byte for byte, PSS must not (random salt).
      for (int round = 0; round < 2; ++round) {
        std::vector<std::uint8_t> sig;
        const Status st = entraclaw::cng::sign_digest(key, digests[i].data(), digests[i].size(), padding, sig);
        if (!st.ok()) {
          print_status("sign_failed", st);
          continue;
        }
        std::printf("sign %s %zu %s\n", padding_name(padding), i, hex(sig).c_str());
      }
      for (DWORD hint : {kTooSmallHint, kExactHint}) {
        std::vector<std::uint8_t> sig;
        const Status st =
            entraclaw::cng::sign_digest_sized(key, digests[i].data(), digests[i].size(), padding, hint, sig);
        std::printf("sized %s %lu %zu %s %s\n", padding_name(padding), static_cast<unsigned long>(hint), i,
                    hr_text(st.hr).c_str(), hex(sig).c_str());
      }
    }
  }
}

// What the provider itself answers to a too-small signature buffer, called
// directly: this is the answer sign_digest_sized's resize path relies on. The
// buffer is larger than the size passed so an overrun shows up as written
// canary bytes instead of heap corruption.
void probe_raw_small_buffer(NCRYPT_KEY_HANDLE key, const std::vector<std::uint8_t>& digest) {
  constexpr std::uint8_t kCanary = 0xA5;
  std::vector<std::uint8_t> buffer(kExactHint * 2, kCanary);
  BCRYPT_PKCS1_PADDING_INFO pkcs1{BCRYPT_SHA256_ALGORITHM};
  DWORD result = 0;
  std::vector<std::uint8_t> hash = digest;
  const SECURITY_STATUS st = NCryptSignHash(key, &pkcs1, hash.data(), static_cast<DWORD>(hash.size()), buffer.data(),
                                            kTooSmallHint, &result, NCRYPT_PAD_PKCS1_FLAG);
  bool overrun = false;
  for (std::size_t i = kTooSmallHint; i < buffer.size(); ++i) overrun = overrun || buffer[i] != kCanary;
  const auto* row = entraclaw::cng::find_status(static_cast<std::uint32_t>(st));
  std::printf("raw_small %s %s %lu %d\n", hr_text(st).c_str(), row != nullptr ? row->name : "-",
              static_cast<unsigned long>(result), overrun ? 1 : 0);
}

// Wine 8's gnutls backend keeps the PSS parameters on the key after a PSS
// signature, and later PKCS#1 signatures with that key fail inside gnutls
// (STATUS_INTERNAL_ERROR, which Wine's ncrypt maps to NTE_INTERNAL_ERROR).
// Windows has no such state. Reported so the test can tell the Wine quirk
// from a regression; the status is printed as is.
void probe_pkcs1_after_pss(NCRYPT_KEY_HANDLE key, const std::vector<std::uint8_t>& digest) {
  std::vector<std::uint8_t> sig;
  const Status st = entraclaw::cng::sign_digest(key, digest.data(), digest.size(), Padding::Pkcs1, sig);
  std::printf("after_pss pkcs1 %s %s\n", hr_text(st.hr).c_str(), hex(sig).c_str());
}

void probe_failures(NCRYPT_PROV_HANDLE provider, const std::vector<std::uint8_t>& digest) {
  std::vector<std::uint8_t> sig;
  // A handle that was never a key: the provider's status, not a crash.
  print_status("null_handle", entraclaw::cng::sign_digest(0, digest.data(), digest.size(), Padding::Pkcs1, sig));
  // A live handle of the wrong kind (provider, not key). A *freed* key handle
  // is deliberately not probed: Wine's handles are heap pointers, so that
  // would be a use-after-free in the test, not a provider answer.
  print_status("provider_handle",
               entraclaw::cng::sign_digest(static_cast<NCRYPT_KEY_HANDLE>(provider), digest.data(), digest.size(),
                                           Padding::Pss, sig));
  // Rejected by the core before any Win32 call (SHA-1 sized digest).
  print_status("short_digest", entraclaw::cng::sign_digest(0, digest.data(), 20, Padding::Pkcs1, sig));
}

void probe_dpapi() {
  // Test bytes, not a real secret; still never printed.
  const std::string plain = "entraclaw-wine-dpapi-probe-\x01\x02\x03-plaintext";
  const std::string entropy = "entraclaw-entropy";
  const std::string other_entropy = "entraclaw-entropY";
  const auto* p = reinterpret_cast<const std::uint8_t*>(plain.data());
  const auto* e = reinterpret_cast<const std::uint8_t*>(entropy.data());
  const auto* e2 = reinterpret_cast<const std::uint8_t*>(other_entropy.data());

  std::vector<std::uint8_t> blob;
  Status st = entraclaw::cng::protect_data(p, plain.size(), e, entropy.size(), "entraclaw probe", blob);
  const bool leaks = !blob.empty() && std::search(blob.begin(), blob.end(), plain.begin(), plain.end()) != blob.end();
  print_dpapi("protect", st, "len=" + std::to_string(blob.size()) + ",plaintext_visible=" + (leaks ? "1" : "0"));
  if (!st.ok()) return;

  std::vector<std::uint8_t> back;
  st = entraclaw::cng::unprotect_data(blob.data(), blob.size(), e, entropy.size(), back);
  const bool same = back.size() == plain.size() && std::memcmp(back.data(), plain.data(), plain.size()) == 0;
  print_dpapi("unprotect", st, std::string("roundtrip=") + (same ? "1" : "0"));

  back.clear();
  st = entraclaw::cng::unprotect_data(blob.data(), blob.size(), e2, other_entropy.size(), back);
  print_dpapi("wrong_entropy", st, "len=" + std::to_string(back.size()));

  back.clear();
  st = entraclaw::cng::unprotect_data(blob.data(), blob.size(), nullptr, 0, back);
  print_dpapi("missing_entropy", st, "len=" + std::to_string(back.size()));

  std::vector<std::uint8_t> tampered = blob;
  tampered[tampered.size() - 1] ^= 0x01;
  back.clear();
  st = entraclaw::cng::unprotect_data(tampered.data(), tampered.size(), e, entropy.size(), back);
  print_dpapi("tampered", st, "len=" + std::to_string(back.size()));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::vector<std::uint8_t>> digests;
  for (int i = 1; i < argc; ++i) {
    std::vector<std::uint8_t> digest;
    if (!parse_hex(argv[i], digest) || digest.size() != entraclaw::cng::kSha256DigestSize) {
      std::fprintf(stderr, "argument %d is not a 64-digit hex SHA-256 digest\n", i);
      return 2;
    }
    digests.push_back(digest);
  }
  if (digests.empty()) {
    std::fprintf(stderr, "usage: entraclaw_wine_probe.exe HEX_DIGEST [HEX_DIGEST ...]\n");
    return 2;
  }

  NcryptObject provider;
  SECURITY_STATUS st = NCryptOpenStorageProvider(&provider.handle, MS_KEY_STORAGE_PROVIDER, 0);
  if (st != ERROR_SUCCESS) return fatal("NCryptOpenStorageProvider", st);

  // pszKeyName = NULL: an ephemeral key, never written to the key store (Wine
  // implements only these).
  NcryptObject key;
  st = NCryptCreatePersistedKey(provider.handle, &key.handle, NCRYPT_RSA_ALGORITHM, nullptr, 0, 0);
  if (st != ERROR_SUCCESS) return fatal("NCryptCreatePersistedKey", st);
  DWORD bits = kKeyBits;
  st = NCryptSetProperty(key.handle, NCRYPT_LENGTH_PROPERTY, reinterpret_cast<PBYTE>(&bits), sizeof bits, 0);
  if (st != ERROR_SUCCESS) return fatal("NCryptSetProperty", st);
  st = NCryptFinalizeKey(key.handle, 0);
  if (st != ERROR_SUCCESS) return fatal("NCryptFinalizeKey", st);

  DWORD got_bits = 0;
  DWORD got_size = 0;
  st = NCryptGetProperty(key.handle, NCRYPT_LENGTH_PROPERTY, reinterpret_cast<PBYTE>(&got_bits), sizeof got_bits,
                         &got_size, 0);
  if (st != ERROR_SUCCESS) return fatal("NCryptGetProperty", st);

  DWORD blob_size = 0;
  st = NCryptExportKey(key.handle, 0, BCRYPT_RSAPUBLIC_BLOB, nullptr, nullptr, 0, &blob_size, 0);
  if (st != ERROR_SUCCESS) return fatal("NCryptExportKey", st);
  std::vector<std::uint8_t> blob(blob_size);
  st = NCryptExportKey(key.handle, 0, BCRYPT_RSAPUBLIC_BLOB, nullptr, blob.data(), blob_size, &blob_size, 0);
  if (st != ERROR_SUCCESS) return fatal("NCryptExportKey", st);
  blob.resize(blob_size);

  std::printf("backend %s\n", ENTRACLAW_BACKEND);
  std::printf("keylen %lu\n", static_cast<unsigned long>(got_bits));
  std::printf("pubkey %s\n", hex(blob).c_str());
  // Before any PSS signature: see probe_pkcs1_after_pss.
  probe_raw_small_buffer(static_cast<NCRYPT_KEY_HANDLE>(key.handle), digests[0]);
  probe_signing(static_cast<NCRYPT_KEY_HANDLE>(key.handle), digests);
  probe_pkcs1_after_pss(static_cast<NCRYPT_KEY_HANDLE>(key.handle), digests[0]);
  probe_failures(static_cast<NCRYPT_PROV_HANDLE>(provider.handle), digests[0]);
  probe_dpapi();
  std::printf("done\n");
  std::fflush(stdout);
  return 0;
}
