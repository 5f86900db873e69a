// Certificate store half of the stand-in (crypt32.dll surface).
#include <openssl/bn.h>
#include <openssl/rand.h>

#include <cstring>
#include <ctime>

#include "state.h"

using namespace standin;

namespace {

constexpr DWORD kLocationMask = 0x00FF0000;  // CERT_SYSTEM_STORE_LOCATION_MASK

BOOL fail(int32_t status) {
  SetLastError(static_cast<DWORD>(status));
  return FALSE;
}

template <typename T>
T* fail_null(int32_t status) {
  SetLastError(static_cast<DWORD>(status));
  return nullptr;
}

CertObj* cert_obj(PCCERT_CONTEXT ctx) {
  return reinterpret_cast<CertObj*>(const_cast<CERT_CONTEXT*>(ctx));
}

StoreObj* store_obj(HCERTSTORE store) {
  if (store == nullptr || !is_live(reinterpret_cast<std::uintptr_t>(store), Kind::Store)) return nullptr;
  return static_cast<StoreObj*>(store);
}

// Next entry after `prev` in the store matching `match`; frees `prev` as Windows does.
template <typename Match>
PCCERT_CONTEXT find_next(HCERTSTORE store, PCCERT_CONTEXT prev, Match match) {
  StoreObj* s = store_obj(store);
  if (s == nullptr) {
    if (prev != nullptr && untrack(reinterpret_cast<std::uintptr_t>(prev), Kind::Cert)) {
      free_cert_context_locked(cert_obj(prev));
    }
    return fail_null<const CERT_CONTEXT>(E_INVALIDARG);
  }
  // CERT_STORE_CTRL_AUTO_RESYNC checks for changes only when a search starts
  // (pPrevContext == NULL), so an enumeration in progress keeps its view.
  auto& entries = prev == nullptr ? visible_entries(s) : s->snapshot;
  size_t start = 0;
  if (prev != nullptr) {
    CertObj* p = cert_obj(prev);
    if (untrack(reinterpret_cast<std::uintptr_t>(prev), Kind::Cert)) {
      for (size_t i = 0; i < entries.size(); ++i) {
        if (entries[i] == p->entry) start = i + 1;
      }
      free_cert_context_locked(p);
    }
  }
  for (size_t i = start; i < entries.size(); ++i) {
    if (match(*entries[i])) return &new_cert_context(entries[i], s->location, store)->ctx;
  }
  return fail_null<const CERT_CONTEXT>(CRYPT_E_NOT_FOUND);
}

}  // namespace

extern "C" {

HCERTSTORE WINAPI CertOpenStore(LPCSTR provider, DWORD, HCRYPTPROV_LEGACY, DWORD flags, const void* para) {
  if (int32_t st = enter(Fn::CertOpenStore)) return fail_null<void>(st);
  if (provider != CERT_STORE_PROV_SYSTEM_W || para == nullptr) return fail_null<void>(E_INVALIDARG);
  const int location = static_cast<int>((flags & kLocationMask) >> CERT_SYSTEM_STORE_LOCATION_SHIFT);
  if (location != CERT_SYSTEM_STORE_CURRENT_USER_ID && location != CERT_SYSTEM_STORE_LOCAL_MACHINE_ID) {
    return fail_null<void>(E_INVALIDARG);
  }
  if (std::wcscmp(static_cast<LPCWSTR>(para), L"My") != 0) {
    return fail_null<void>(0x80070002);  // HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND): only My exists here
  }
  std::lock_guard<std::mutex> lock(state().mu);
  auto missing = state().store_missing.find(location);
  if (missing != state().store_missing.end() && missing->second) {
    // A profile that never had a My store (a fresh service or virtual
    // account): CERT_STORE_OPEN_EXISTING_FLAG means "only open an existing
    // store" and fails; without it the system store is created.
    // https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/nf-wincrypt-certopenstore
    if ((flags & CERT_STORE_OPEN_EXISTING_FLAG) != 0) return fail_null<void>(0x80070002);  // ERROR_FILE_NOT_FOUND
    missing->second = false;
  }
  auto* s = new StoreObj{location, (flags & CERT_STORE_READONLY_FLAG) != 0, false, {}};
  s->snapshot = state().stores[location];
  track(s, Kind::Store);
  return s;
}

BOOL WINAPI CertControlStore(HCERTSTORE store, DWORD, DWORD ctrl_type, const void*) {
  if (int32_t st = enter(Fn::CertControlStore)) return fail(st);
  std::lock_guard<std::mutex> lock(state().mu);
  StoreObj* s = store_obj(store);
  if (s == nullptr) return fail(E_INVALIDARG);
  if (ctrl_type == CERT_STORE_CTRL_AUTO_RESYNC) {
    s->auto_resync = true;
    return TRUE;
  }
  if (ctrl_type == CERT_STORE_CTRL_RESYNC) {
    s->snapshot = state().stores[s->location];
    return TRUE;
  }
  return fail(E_INVALIDARG);
}

BOOL WINAPI CertCloseStore(HCERTSTORE store, DWORD) {
  if (int32_t st = enter(Fn::CertCloseStore)) return fail(st);
  std::lock_guard<std::mutex> lock(state().mu);
  if (!untrack(reinterpret_cast<std::uintptr_t>(store), Kind::Store)) return fail(E_INVALIDARG);
  delete static_cast<StoreObj*>(store);
  return TRUE;
}

PCCERT_CONTEXT WINAPI CertFindCertificateInStore(HCERTSTORE store, DWORD, DWORD, DWORD find_type, const void* para,
                                                 PCCERT_CONTEXT prev) {
  if (int32_t st = enter(Fn::CertFindCertificateInStore)) return fail_null<const CERT_CONTEXT>(st);
  std::lock_guard<std::mutex> lock(state().mu);
  if (find_type == CERT_FIND_ANY) return find_next(store, prev, [](const CertEntry&) { return true; });
  if (find_type != CERT_FIND_SHA1_HASH || para == nullptr) return fail_null<const CERT_CONTEXT>(E_INVALIDARG);
  const auto* hash = static_cast<const CRYPT_HASH_BLOB*>(para);
  if (hash->cbData != 20) return fail_null<const CERT_CONTEXT>(E_INVALIDARG);
  return find_next(store, prev, [hash](const CertEntry& e) { return std::memcmp(e.sha1.data(), hash->pbData, 20) == 0; });
}

PCCERT_CONTEXT WINAPI CertEnumCertificatesInStore(HCERTSTORE store, PCCERT_CONTEXT prev) {
  if (int32_t st = enter(Fn::CertEnumCertificatesInStore)) return fail_null<const CERT_CONTEXT>(st);
  std::lock_guard<std::mutex> lock(state().mu);
  return find_next(store, prev, [](const CertEntry&) { return true; });
}

PCCERT_CONTEXT WINAPI CertDuplicateCertificateContext(PCCERT_CONTEXT ctx) {
  enter(Fn::CertDuplicateCertificateContext);
  std::lock_guard<std::mutex> lock(state().mu);
  if (ctx == nullptr || !is_live(reinterpret_cast<std::uintptr_t>(ctx), Kind::Cert)) return nullptr;
  CertObj* obj = cert_obj(ctx);
  return &new_cert_context(obj->entry, obj->location, obj->ctx.hCertStore)->ctx;
}

BOOL WINAPI CertFreeCertificateContext(PCCERT_CONTEXT ctx) {
  enter(Fn::CertFreeCertificateContext);
  if (ctx == nullptr) return TRUE;
  std::lock_guard<std::mutex> lock(state().mu);
  if (untrack(reinterpret_cast<std::uintptr_t>(ctx), Kind::Cert)) free_cert_context_locked(cert_obj(ctx));
  return TRUE;  // Windows always reports success
}

BOOL WINAPI CertDeleteCertificateFromStore(PCCERT_CONTEXT ctx) {
  const int32_t injected = enter(Fn::CertDeleteCertificateFromStore);
  std::lock_guard<std::mutex> lock(state().mu);
  if (ctx == nullptr || !untrack(reinterpret_cast<std::uintptr_t>(ctx), Kind::Cert)) return fail(E_INVALIDARG);
  CertObj* obj = cert_obj(ctx);
  // The context is freed whatever happens, as on Windows.
  int32_t status = injected;
  StoreObj* s = store_obj(obj->ctx.hCertStore);
  if (status == 0 && (s == nullptr || s->readonly)) status = E_ACCESSDENIED;
  if (status == 0) {
    for (auto* entries : {&state().stores[obj->location], &s->snapshot}) {
      for (auto it = entries->begin(); it != entries->end(); ++it) {
        if ((*it)->sha1 == obj->entry->sha1) {
          entries->erase(it);
          break;
        }
      }
    }
  }
  free_cert_context_locked(obj);
  return status == 0 ? TRUE : fail(status);
}

BOOL WINAPI CertAddCertificateContextToStore(HCERTSTORE store, PCCERT_CONTEXT ctx, DWORD disposition,
                                             PCCERT_CONTEXT* out) {
  if (int32_t st = enter(Fn::CertAddCertificateContextToStore)) return fail(st);
  std::lock_guard<std::mutex> lock(state().mu);
  StoreObj* s = store_obj(store);
  if (s == nullptr || ctx == nullptr || !is_live(reinterpret_cast<std::uintptr_t>(ctx), Kind::Cert)) {
    return fail(E_INVALIDARG);
  }
  if (s->readonly) return fail(E_ACCESSDENIED);
  auto copy = std::make_shared<CertEntry>(*cert_obj(ctx)->entry);
  auto& entries = state().stores[s->location];
  bool replaced = false;
  for (auto& existing : entries) {
    if (existing->sha1 == copy->sha1) {
      if (disposition == CERT_STORE_ADD_NEW) return fail(CRYPT_E_EXISTS);
      existing = copy;
      replaced = true;
    }
  }
  if (!replaced) entries.push_back(copy);
  // A handle sees its own writes at once.
  bool in_snapshot = false;
  for (auto& existing : s->snapshot) {
    if (existing->sha1 == copy->sha1) {
      existing = copy;
      in_snapshot = true;
    }
  }
  if (!in_snapshot) s->snapshot.push_back(copy);
  if (out != nullptr) *out = &new_cert_context(copy, s->location, store)->ctx;
  return TRUE;
}

BOOL WINAPI CertGetCertificateContextProperty(PCCERT_CONTEXT ctx, DWORD prop, void* data, DWORD* size) {
  if (int32_t st = enter(Fn::CertGetCertificateContextProperty)) return fail(st);
  std::lock_guard<std::mutex> lock(state().mu);
  if (ctx == nullptr || size == nullptr || !is_live(reinterpret_cast<std::uintptr_t>(ctx), Kind::Cert)) {
    return fail(E_INVALIDARG);
  }
  if (prop != CERT_KEY_PROV_INFO_PROP_ID) return fail(CRYPT_E_NOT_FOUND);
  const CertEntry& e = *cert_obj(ctx)->entry;
  if (!e.has_link) return fail(CRYPT_E_NOT_FOUND);
  // Layout as Windows returns it: the struct, then the strings it points to.
  const size_t container_bytes = (e.link.container.size() + 1) * sizeof(WCHAR);
  const size_t provider_bytes = (e.link.provider.size() + 1) * sizeof(WCHAR);
  const auto needed = static_cast<DWORD>(sizeof(CRYPT_KEY_PROV_INFO) + container_bytes + provider_bytes);
  if (data == nullptr) {
    *size = needed;
    return TRUE;
  }
  if (*size < needed) {
    *size = needed;
    return fail(ERROR_MORE_DATA);
  }
  auto* info = static_cast<CRYPT_KEY_PROV_INFO*>(data);
  auto* container = reinterpret_cast<WCHAR*>(info + 1);
  auto* provider = reinterpret_cast<WCHAR*>(reinterpret_cast<BYTE*>(container) + container_bytes);
  std::memcpy(container, e.link.container.c_str(), container_bytes);
  std::memcpy(provider, e.link.provider.c_str(), provider_bytes);
  *info = CRYPT_KEY_PROV_INFO{};
  info->pwszContainerName = container;
  info->pwszProvName = provider;
  info->dwFlags = e.link.flags;
  info->dwKeySpec = e.link.key_spec;
  info->dwProvType = e.link.prov_type;
  *size = needed;
  return TRUE;
}

BOOL WINAPI CertSetCertificateContextProperty(PCCERT_CONTEXT ctx, DWORD prop, DWORD, const void* data) {
  if (int32_t st = enter(Fn::CertSetCertificateContextProperty)) return fail(st);
  std::lock_guard<std::mutex> lock(state().mu);
  if (ctx == nullptr || !is_live(reinterpret_cast<std::uintptr_t>(ctx), Kind::Cert)) return fail(E_INVALIDARG);
  if (prop != CERT_KEY_PROV_INFO_PROP_ID) return fail(E_INVALIDARG);
  CertEntry& e = *cert_obj(ctx)->entry;
  if (data == nullptr) {
    e.has_link = false;
    return TRUE;
  }
  const auto* info = static_cast<const CRYPT_KEY_PROV_INFO*>(data);
  if (info->pwszProvName == nullptr || info->pwszContainerName == nullptr) return fail(E_INVALIDARG);
  if (info->dwProvType != 0) return fail(NTE_BAD_PROVIDER);  // the stand-in has no CAPI CSPs
  e.has_link = true;
  e.link.prov_type = 0;
  e.link.provider = info->pwszProvName;
  e.link.container = info->pwszContainerName;
  e.link.flags = info->dwFlags;
  e.link.key_spec = info->dwKeySpec;
  return TRUE;
}

DWORD WINAPI CertGetNameStringW(PCCERT_CONTEXT ctx, DWORD type, DWORD, void*, LPWSTR out, DWORD chars) {
  enter(Fn::CertGetNameStringW);
  std::wstring name;
  {
    std::lock_guard<std::mutex> lock(state().mu);
    if (ctx != nullptr && type == CERT_NAME_SIMPLE_DISPLAY_TYPE &&
        is_live(reinterpret_cast<std::uintptr_t>(ctx), Kind::Cert)) {
      name = wide(cert_obj(ctx)->entry->subject);
    }
  }
  const auto needed = static_cast<DWORD>(name.size() + 1);
  if (out == nullptr || chars == 0) return needed;
  const DWORD n = needed <= chars ? needed - 1 : chars - 1;
  std::memcpy(out, name.data(), n * sizeof(WCHAR));
  out[n] = 0;
  return n + 1;
}

BOOL WINAPI CertStrToNameW(DWORD, LPCWSTR x500, DWORD type, void*, BYTE* encoded, DWORD* size, LPCWSTR* error) {
  if (int32_t st = enter(Fn::CertStrToNameW)) return fail(st);
  if (error != nullptr) *error = nullptr;
  if (x500 == nullptr || size == nullptr || type != CERT_X500_NAME_STR) return fail(E_INVALIDARG);
  // Only what the core writes: CN=value or CN="value".
  std::wstring text(x500);
  if (text.rfind(L"CN=", 0) != 0) return fail(0x80092023);  // CRYPT_E_INVALID_X500_STRING
  std::wstring value = text.substr(3);
  if (value.size() >= 2 && value.front() == L'"' && value.back() == L'"') {
    value = value.substr(1, value.size() - 2);
  } else if (value.find_first_of(L",+=\"") != std::wstring::npos) {
    return fail(0x80092023);
  }
  const std::string cn = utf8(value);
  X509_NAME* name = X509_NAME_new();
  X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()),
                             -1, -1, 0);
  const int len = i2d_X509_NAME(name, nullptr);
  if (encoded == nullptr) {
    *size = static_cast<DWORD>(len);
    X509_NAME_free(name);
    return TRUE;
  }
  if (*size < static_cast<DWORD>(len)) {
    *size = static_cast<DWORD>(len);
    X509_NAME_free(name);
    return fail(ERROR_MORE_DATA);
  }
  BYTE* p = encoded;
  i2d_X509_NAME(name, &p);
  *size = static_cast<DWORD>(len);
  X509_NAME_free(name);
  return TRUE;
}

PCCERT_CONTEXT WINAPI CertCreateSelfSignCertificate(HCRYPTPROV_OR_NCRYPT_KEY_HANDLE key, PCERT_NAME_BLOB subject,
                                                    DWORD flags, PCRYPT_KEY_PROV_INFO prov_info,
                                                    PCRYPT_ALGORITHM_IDENTIFIER algorithm, PSYSTEMTIME start,
                                                    PSYSTEMTIME end, PCERT_EXTENSIONS) {
  if (int32_t st = enter(Fn::CertCreateSelfSignCertificate)) return fail_null<const CERT_CONTEXT>(st);
  std::shared_ptr<KeyRecord> record;
  {
    std::lock_guard<std::mutex> lock(state().mu);
    if (key == 0 || !is_live(key, Kind::Key)) return fail_null<const CERT_CONTEXT>(NTE_INVALID_HANDLE);
    record = reinterpret_cast<KeyObj*>(key)->record;
  }
  if (record->deleted) return fail_null<const CERT_CONTEXT>(NTE_BAD_KEYSET);
  if (!record->finalized) return fail_null<const CERT_CONTEXT>(NTE_BAD_KEY_STATE);
  if (subject == nullptr || subject->pbData == nullptr) return fail_null<const CERT_CONTEXT>(E_INVALIDARG);
  // Windows signs with SHA-1 unless told otherwise; so does the stand-in, so a
  // caller that forgets the algorithm gets caught by the tests.
  const EVP_MD* md = EVP_sha1();
  if (algorithm != nullptr && algorithm->pszObjId != nullptr) {
    if (std::strcmp(algorithm->pszObjId, szOID_RSA_SHA256RSA) != 0) return fail_null<const CERT_CONTEXT>(NTE_BAD_ALGID);
    md = EVP_sha256();
  }
  const unsigned char* p = subject->pbData;
  X509_NAME* name = d2i_X509_NAME(nullptr, &p, static_cast<long>(subject->cbData));
  if (name == nullptr) return fail_null<const CERT_CONTEXT>(E_INVALIDARG);
  auto to_unix = [](const SYSTEMTIME* t, int64_t fallback) -> int64_t {
    if (t == nullptr) return fallback;
    struct tm tm {};
    tm.tm_year = t->wYear - 1900;
    tm.tm_mon = t->wMonth - 1;
    tm.tm_mday = t->wDay;
    tm.tm_hour = t->wHour;
    tm.tm_min = t->wMinute;
    tm.tm_sec = t->wSecond;
    return static_cast<int64_t>(timegm(&tm));
  };
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  const int64_t not_before = to_unix(start, now);
  const int64_t not_after = to_unix(end, not_before + 365LL * 86400);

  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7F;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_set_subject_name(cert.get(), name);
  X509_set_issuer_name(cert.get(), name);
  X509_NAME_free(name);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(not_before));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(not_after));
  X509_set_pubkey(cert.get(), record->pkey.get());
  if (X509_sign(cert.get(), record->pkey.get(), md) <= 0) return fail_null<const CERT_CONTEXT>(NTE_BAD_KEY);
  const int len = i2d_X509(cert.get(), nullptr);
  std::vector<BYTE> der(static_cast<size_t>(len));
  BYTE* out = der.data();
  i2d_X509(cert.get(), &out);
  auto entry = make_entry(der.data(), der.size());
  if (prov_info != nullptr && (flags & CERT_CREATE_SELFSIGN_NO_KEY_INFO) == 0) {
    entry->has_link = true;
    entry->link.provider = prov_info->pwszProvName;
    entry->link.container = prov_info->pwszContainerName;
    entry->link.flags = prov_info->dwFlags;
  }
  std::lock_guard<std::mutex> lock(state().mu);
  return &new_cert_context(entry, 0, nullptr)->ctx;
}

BOOL WINAPI CryptAcquireCertificatePrivateKey(PCCERT_CONTEXT ctx, DWORD flags, void*,
                                              HCRYPTPROV_OR_NCRYPT_KEY_HANDLE* key, DWORD* key_spec,
                                              BOOL* caller_frees) {
  if (int32_t st = enter(Fn::CryptAcquireCertificatePrivateKey)) return fail(st);
  if (key == nullptr) return fail(E_INVALIDARG);
  note_silent(Fn::CryptAcquireCertificatePrivateKey, (flags & CRYPT_ACQUIRE_SILENT_FLAG) != 0);
  // No CAPI in the stand-in: a caller that does not insist on NCrypt is a bug.
  if ((flags & CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG) == 0) return fail(NTE_BAD_FLAGS);
  std::lock_guard<std::mutex> lock(state().mu);
  if (ctx == nullptr || !is_live(reinterpret_cast<std::uintptr_t>(ctx), Kind::Cert)) return fail(E_INVALIDARG);
  CertObj* obj = cert_obj(ctx);
  const CertEntry& e = *obj->entry;
  if (!e.has_link) return fail(CRYPT_E_NO_KEY_PROPERTY);
  if (e.link.prov_type != 0) return fail(NTE_BAD_PROVIDER);  // a CAPI CSP key: no NCrypt handle for it
  const std::string provider = utf8(e.link.provider);
  auto blocked = state().provider_status.find(provider);
  if (blocked != state().provider_status.end()) return fail(blocked->second);
  auto it = state().keys.find(std::make_pair(provider, e.link.container));
  if (it == state().keys.end()) return fail(NTE_BAD_KEYSET);
  if (((e.link.flags & CRYPT_MACHINE_KEYSET) != 0) != it->second->machine) return fail(NTE_BAD_KEYSET);
  if (!key_access_granted(it->second->security, GENERIC_READ)) return fail(NTE_BAD_KEYSET);
  if (key_spec != nullptr) *key_spec = CERT_NCRYPT_KEY_SPEC;
  if (state().caller_frees_key) {
    auto* k = new KeyObj{it->second};
    track(reinterpret_cast<std::uintptr_t>(k), Kind::Key);
    *key = reinterpret_cast<HCRYPTPROV_OR_NCRYPT_KEY_HANDLE>(k);
    if (caller_frees != nullptr) *caller_frees = TRUE;
  } else {
    if (obj->cached_key == 0) {
      auto* k = new KeyObj{it->second};
      track(reinterpret_cast<std::uintptr_t>(k), Kind::Key);
      obj->cached_key = reinterpret_cast<NCRYPT_KEY_HANDLE>(k);
    }
    *key = obj->cached_key;
    if (caller_frees != nullptr) *caller_frees = FALSE;
  }
  return TRUE;
}

}  // extern "C"
