#include "data_protection.h"

#include "text.h"

namespace entraclaw::cng {
namespace {

DATA_BLOB blob_of(const std::uint8_t* data, std::size_t len) {
  return DATA_BLOB{static_cast<DWORD>(len), const_cast<BYTE*>(data)};
}

// DATA_BLOB.cbData is a DWORD: a cast of 4 GiB or more would silently protect
// only the low 32 bits' worth of bytes. Refused before DPAPI sees it.
// https://learn.microsoft.com/en-us/windows/win32/api/dpapi/nf-dpapi-cryptprotectdata (pDataIn: DATA_BLOB)
bool fits_blob(std::size_t len) { return len <= static_cast<std::size_t>(MAXDWORD); }

}  // namespace

Status protect_data(const std::uint8_t* data, std::size_t len, const std::uint8_t* entropy, std::size_t entropy_len,
                    const std::string& description, std::vector<std::uint8_t>& out) {
  if (!fits_blob(len) || !fits_blob(entropy_len)) return Status{static_cast<HRESULT>(E_INVALIDARG), "CryptProtectData"};
  DATA_BLOB in = blob_of(data, len);
  DATA_BLOB extra = blob_of(entropy, entropy_len);
  DATA_BLOB result{0, nullptr};
  const std::wstring descr = widen(description);
  if (!CryptProtectData(&in, descr.c_str(), entropy_len > 0 ? &extra : nullptr, nullptr, nullptr,
                        CRYPTPROTECT_UI_FORBIDDEN, &result)) {
    return Status{hresult_from_last_error(GetLastError()), "CryptProtectData"};
  }
  out.assign(result.pbData, result.pbData + result.cbData);
  LocalFree(result.pbData);
  return ok_status();
}

Status unprotect_data(const std::uint8_t* blob, std::size_t len, const std::uint8_t* entropy,
                      std::size_t entropy_len, std::vector<std::uint8_t>& out) {
  if (!fits_blob(len) || !fits_blob(entropy_len)) {
    return Status{static_cast<HRESULT>(E_INVALIDARG), "CryptUnprotectData"};
  }
  DATA_BLOB in = blob_of(blob, len);
  DATA_BLOB extra = blob_of(entropy, entropy_len);
  DATA_BLOB result{0, nullptr};
  LPWSTR description = nullptr;
  if (!CryptUnprotectData(&in, &description, entropy_len > 0 ? &extra : nullptr, nullptr, nullptr,
                          CRYPTPROTECT_UI_FORBIDDEN, &result)) {
    return Status{hresult_from_last_error(GetLastError()), "CryptUnprotectData"};
  }
  out.assign(result.pbData, result.pbData + result.cbData);
  secure_zero(result.pbData, result.cbData);
  LocalFree(result.pbData);
  if (description != nullptr) LocalFree(description);
  return ok_status();
}

std::string system_message(HRESULT hr) {
#ifdef _WIN32
  // The one Windows-only piece: the stand-in has no message tables.
  LPWSTR text = nullptr;
  const DWORD flags = FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS;
  DWORD chars = FormatMessageW(flags, nullptr, static_cast<DWORD>(hr), 0, reinterpret_cast<LPWSTR>(&text), 0, nullptr);
  if (chars == 0 || text == nullptr) return std::string();
  while (chars > 0 && (text[chars - 1] == L'\r' || text[chars - 1] == L'\n' || text[chars - 1] == L' ')) --chars;
  std::string message = narrow(text, chars);
  LocalFree(text);
  return message;
#else
  (void)hr;
  return std::string();
#endif
}

}  // namespace entraclaw::cng
