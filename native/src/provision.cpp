#include "provision.h"

#include <cctype>
#include <cstring>
#include <memory>

namespace entraclaw::cng {
namespace {

constexpr DWORD kEncoding = X509_ASN_ENCODING | PKCS_7_ASN_ENCODING;

Status last_error(const char* api) { return Status{hresult_from_last_error(GetLastError()), api}; }

// Owners for the handles a provisioning run juggles, so every early return
// frees what it opened exactly once.
struct ProviderHandle {
  NCRYPT_PROV_HANDLE h = 0;
  ~ProviderHandle() {
    if (h != 0) NCryptFreeObject(h);
  }
};
struct KeyHandle {
  NCRYPT_KEY_HANDLE h = 0;
  ~KeyHandle() {
    if (h != 0) NCryptFreeObject(h);
  }
  NCRYPT_KEY_HANDLE release() {
    NCRYPT_KEY_HANDLE out = h;
    h = 0;
    return out;
  }
};
struct StoreHandle {
  HCERTSTORE h = nullptr;
  ~StoreHandle() {
    if (h != nullptr) CertCloseStore(h, 0);
  }
};
struct CertContext {
  PCCERT_CONTEXT h = nullptr;
  ~CertContext() {
    if (h != nullptr) CertFreeCertificateContext(h);
  }
  PCCERT_CONTEXT release() {
    PCCERT_CONTEXT out = h;
    h = nullptr;
    return out;
  }
};

// Statuses with which a provider says it does not know a property or value.
bool property_unsupported(SECURITY_STATUS st) {
  return st == static_cast<SECURITY_STATUS>(NTE_NOT_SUPPORTED) ||
         st == static_cast<SECURITY_STATUS>(NTE_INVALID_PARAMETER) || st == static_cast<SECURITY_STATUS>(NTE_BAD_FLAGS);
}

// NCryptSetProperty with the silent flag (and persist where asked). A provider
// that supports no flags on this call answers NTE_BAD_FLAGS: Microsoft's PCP
// sample (TSS.MSR PCPTool) passes 0, and dotnet/runtime issue 71310 shows PCP
// refusing a flag it does not support with NTE_BAD_FLAGS. Before
// NCryptFinalizeKey the property is part of the key being made either way, so
// that one call is repeated with 0.
// https://learn.microsoft.com/en-us/windows/win32/api/ncrypt/nf-ncrypt-ncryptsetproperty
SECURITY_STATUS set_dword_property(NCRYPT_KEY_HANDLE key, LPCWSTR name, DWORD value, DWORD flags) {
  SECURITY_STATUS st = NCryptSetProperty(key, name, reinterpret_cast<PBYTE>(&value), sizeof(value), flags);
  if (st == static_cast<SECURITY_STATUS>(NTE_BAD_FLAGS) && flags != 0) {
    st = NCryptSetProperty(key, name, reinterpret_cast<PBYTE>(&value), sizeof(value), 0);
  }
  return st;
}

// A persisted, non-exportable, sign-only RSA key, finalized silently. On
// failure nothing is left behind: an unfinalized key is never persisted.
// `usage` is why the key could not be made sign-only (ok when it is).
Status create_key(LPCWSTR provider_name, const std::wstring& container, DWORD bits, bool machine, KeyHandle& key,
                  Status& usage) {
  ProviderHandle provider;
  SECURITY_STATUS st = NCryptOpenStorageProvider(&provider.h, provider_name, 0);
  if (st != 0) return Status{st, "NCryptOpenStorageProvider"};
  st = NCryptCreatePersistedKey(provider.h, &key.h, NCRYPT_RSA_ALGORITHM, container.c_str(), 0,
                                machine ? NCRYPT_MACHINE_KEY_FLAG : 0);
  if (st != 0) return Status{st, "NCryptCreatePersistedKey"};
  st = set_dword_property(key.h, NCRYPT_LENGTH_PROPERTY, bits, NCRYPT_SILENT_FLAG);
  if (st != 0) return Status{st, "NCryptSetProperty"};
  // Explicitly 0 (no NCRYPT_ALLOW_EXPORT_FLAG): the software KSP's default
  // would otherwise depend on machine policy.
  st = set_dword_property(key.h, NCRYPT_EXPORT_POLICY_PROPERTY, 0, NCRYPT_PERSIST_FLAG | NCRYPT_SILENT_FLAG);
  if (st != 0) return Status{st, "NCryptSetProperty"};
  // The Blueprint key only ever signs. Both providers default RSA keys to
  // every usage, and PCP turns the usage into the TPM object's sign/decrypt
  // attributes, so without this the key could also decrypt and its
  // attestation would not say sign-only. Settable only before finalize.
  // NCRYPT_KEY_USAGE_PROPERTY / NCRYPT_ALLOW_SIGNING_FLAG:
  // https://learn.microsoft.com/en-us/windows/win32/seccng/key-storage-property-identifiers
  // A provider that does not take the property still makes the key with its
  // default usage: a TPM key that could also decrypt beats a software key, and
  // the caller reports it (documentation is silent on providers refusing it).
  st = set_dword_property(key.h, NCRYPT_KEY_USAGE_PROPERTY, NCRYPT_ALLOW_SIGNING_FLAG,
                          NCRYPT_PERSIST_FLAG | NCRYPT_SILENT_FLAG);
  usage = Status{st, "NCryptSetProperty(Key Usage)"};
  if (st != 0 && !property_unsupported(st)) return Status{st, "NCryptSetProperty"};
  st = NCryptFinalizeKey(key.h, NCRYPT_SILENT_FLAG);
  if (st != 0) return Status{st, "NCryptFinalizeKey"};
  return ok_status();
}

// Delete a key whose handle we own. NCryptDeleteKey frees the handle only when
// it succeeds; after a failure the caller frees it with NCryptFreeObject.
// https://learn.microsoft.com/en-us/windows/win32/api/ncrypt/nf-ncrypt-ncryptdeletekey
// ("The NCryptDeleteKey function deletes the key and frees the handle.
// Applications may use NCryptFreeObject function to free the handle if
// NCryptDeleteKey fails.")
Status delete_owned_key(KeyHandle& key) {
  const SECURITY_STATUS st = NCryptDeleteKey(key.h, NCRYPT_SILENT_FLAG);
  if (st == 0) {
    key.h = 0;
    return ok_status();
  }
  NCryptFreeObject(key.release());
  return Status{st, "NCryptDeleteKey"};
}

Status encode_subject(const std::string& common_name, std::vector<BYTE>& out) {
  if (common_name.empty() || common_name.find('"') != std::string::npos) {
    return Status{static_cast<HRESULT>(E_INVALIDARG), "CertStrToNameW"};
  }
  // Quoted so commas or '=' in the name cannot start another RDN.
  const std::wstring x500 = L"CN=\"" + widen(common_name) + L"\"";
  DWORD size = 0;
  if (!CertStrToNameW(X509_ASN_ENCODING, x500.c_str(), CERT_X500_NAME_STR, nullptr, nullptr, &size, nullptr)) {
    return last_error("CertStrToNameW");
  }
  out.resize(size);
  if (!CertStrToNameW(X509_ASN_ENCODING, x500.c_str(), CERT_X500_NAME_STR, nullptr, out.data(), &size, nullptr)) {
    return last_error("CertStrToNameW");
  }
  out.resize(size);
  return ok_status();
}

// `create`: open My or create it. A profile that never had a My store (a fresh
// service account, a virtual account) has none, and CERT_STORE_OPEN_EXISTING_FLAG
// means "only open an existing store", which fails there. Provisioning creates
// it; reading and deleting open an existing one only (no store = nothing in it).
// https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/nf-wincrypt-certopenstore
HCERTSTORE open_my_store(StoreLocation location, bool writable, bool create = false) {
  DWORD flags = system_store_flag(location);
  if (!create) flags |= CERT_STORE_OPEN_EXISTING_FLAG;
  if (!writable) flags |= CERT_STORE_READONLY_FLAG;
  return CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, flags, L"My");
}

bool same_text_ci(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<unsigned char>(a[i]);
    const auto y = static_cast<unsigned char>(b[i]);
    if (std::tolower(x) != std::tolower(y)) return false;
  }
  return true;
}

struct KeyLink {
  std::string provider;
  std::string container;
  DWORD flags = 0;
  DWORD prov_type = 0;  // 0 = CNG key storage provider
  DWORD key_spec = 0;   // CERT_NCRYPT_KEY_SPEC, 0, or AT_KEYEXCHANGE / AT_SIGNATURE for keys from CAPI
};

// CERT_KEY_PROV_INFO_PROP_ID of a certificate, if it has one.
bool read_key_link(PCCERT_CONTEXT cert, KeyLink& link) {
  DWORD size = 0;
  if (!CertGetCertificateContextProperty(cert, CERT_KEY_PROV_INFO_PROP_ID, nullptr, &size) || size == 0) {
    return false;
  }
  std::vector<BYTE> buffer(size);
  if (!CertGetCertificateContextProperty(cert, CERT_KEY_PROV_INFO_PROP_ID, buffer.data(), &size)) return false;
  const auto* info = reinterpret_cast<const CRYPT_KEY_PROV_INFO*>(buffer.data());
  link.provider = info->pwszProvName != nullptr ? narrow(std::wstring(info->pwszProvName)) : std::string();
  link.container = info->pwszContainerName != nullptr ? narrow(std::wstring(info->pwszContainerName)) : std::string();
  link.flags = info->dwFlags;
  link.prov_type = info->dwProvType;
  link.key_spec = info->dwKeySpec;
  return true;
}

// The DER of another certificate in `store` whose CERT_KEY_PROV_INFO names the
// same provider (case-insensitive, as provider names are), container and key
// set as `link`; empty when there is none.
Status find_other_link(HCERTSTORE store, PCCERT_CONTEXT self, const KeyLink& link, std::vector<std::uint8_t>& other) {
  other.clear();
  const bool machine = (link.flags & CRYPT_MACHINE_KEYSET) != 0;
  PCCERT_CONTEXT cert = nullptr;
  while ((cert = CertEnumCertificatesInStore(store, cert)) != nullptr) {
    if (cert->cbCertEncoded == self->cbCertEncoded &&
        std::memcmp(cert->pbCertEncoded, self->pbCertEncoded, cert->cbCertEncoded) == 0) {
      continue;
    }
    KeyLink candidate;
    if (!read_key_link(cert, candidate) || candidate.prov_type != 0) continue;
    if (((candidate.flags & CRYPT_MACHINE_KEYSET) != 0) != machine) continue;
    if (candidate.container == link.container && same_text_ci(candidate.provider, link.provider)) {
      other.assign(cert->pbCertEncoded, cert->pbCertEncoded + cert->cbCertEncoded);
      CertFreeCertificateContext(cert);
      return ok_status();
    }
  }
  const DWORD last = GetLastError();
  if (last != 0 && hresult_from_last_error(last) != static_cast<HRESULT>(CRYPT_E_NOT_FOUND)) {
    return Status{hresult_from_last_error(last), "CertEnumCertificatesInStore"};
  }
  return ok_status();
}

}  // namespace

bool tpm_failure_allows_fallback(HRESULT hr) {
  switch (category_of(hr)) {
    case Category::Transient:
    case Category::LockedOut:
    case Category::AuthFailed:
      return false;
    default:
      return true;
  }
}

Status provision_certificate(const ProvisionRequest& request, ProvisionResult& result) {
  const std::wstring container = widen(request.container);
  if (container.empty()) return Status{static_cast<HRESULT>(E_INVALIDARG), "NCryptCreatePersistedKey"};
  std::vector<BYTE> subject;
  if (Status st = encode_subject(request.common_name, subject); !st.ok()) return st;

  KeyHandle key;
  bool in_tpm = false;
  const bool machine = request.location == StoreLocation::LocalMachine;
  result.tpm_failure = ok_status();
  if (request.provider != ProviderChoice::Software) {
    for (;;) {
      ++result.tpm_attempts;
      Status st = create_key(MS_PLATFORM_CRYPTO_PROVIDER, container, request.key_bits, machine, key,
                             result.key_usage_status);
      if (st.ok()) {
        in_tpm = true;
        break;
      }
      // An unfinalized key is not persisted; only the handle needs freeing.
      if (key.h != 0) {
        NCryptFreeObject(key.h);
        key.h = 0;
      }
      if (action_of(st.hr) == Action::Retry && result.tpm_attempts < request.policy.attempts) {
        sleep_ms(request.policy.delay_before(result.tpm_attempts + 1));
        continue;
      }
      // NTE_BAD_FLAGS from NCryptSetProperty was already retried with 0: what
      // is left is a caller/provider mismatch to fix, not a reason for a
      // software key.
      const bool flags_refused =
          st.hr == static_cast<HRESULT>(NTE_BAD_FLAGS) && std::string(st.api) == "NCryptSetProperty";
      if (request.provider == ProviderChoice::Tpm || flags_refused || !tpm_failure_allows_fallback(st.hr)) return st;
      result.tpm_failure = st;
      break;
    }
  }
  if (!in_tpm) {
    Status st = create_key(MS_KEY_STORAGE_PROVIDER, container, request.key_bits, machine, key, result.key_usage_status);
    if (!st.ok()) return st;
  }

  // From here on a failure must not leave a persisted key without a
  // certificate: it would hold a TPM slot nobody can find. If the delete
  // fails too, `orphan` says so (the caller names the container).
  auto fail = [&key, &result](Status st) {
    if (key.h != 0) result.orphan = delete_owned_key(key);
    return st;
  };

  CERT_NAME_BLOB name{static_cast<DWORD>(subject.size()), subject.data()};
  CRYPT_ALGORITHM_IDENTIFIER algorithm{};
  algorithm.pszObjId = const_cast<LPSTR>(szOID_RSA_SHA256RSA);  // the default would be SHA-1
  SYSTEMTIME start = unix_to_systemtime(request.not_before);
  SYSTEMTIME end = unix_to_systemtime(request.not_after);
  CertContext self_signed;
  self_signed.h = CertCreateSelfSignCertificate(key.h, &name, CERT_CREATE_SELFSIGN_NO_KEY_INFO, nullptr, &algorithm,
                                                &start, &end, nullptr);
  if (self_signed.h == nullptr) return fail(last_error("CertCreateSelfSignCertificate"));

  StoreHandle store;
  store.h = open_my_store(request.location, true, true);
  if (store.h == nullptr) return fail(last_error("CertOpenStore"));
  CertContext stored;
  if (!CertAddCertificateContextToStore(store.h, self_signed.h, CERT_STORE_ADD_NEW, &stored.h)) {
    return fail(last_error("CertAddCertificateContextToStore"));
  }
  // Link certificate -> key so CryptAcquireCertificatePrivateKey finds it.
  std::wstring provider_copy(in_tpm ? MS_PLATFORM_CRYPTO_PROVIDER : MS_KEY_STORAGE_PROVIDER);
  std::wstring container_copy(container);
  CRYPT_KEY_PROV_INFO link{};
  link.pwszContainerName = container_copy.data();
  link.pwszProvName = provider_copy.data();
  link.dwProvType = 0;  // 0 = a CNG key storage provider, not a CAPI CSP
  link.dwFlags = machine ? CRYPT_MACHINE_KEYSET : 0;  // the key set CryptAcquireCertificatePrivateKey opens
  link.dwKeySpec = 0;
  if (!CertSetCertificateContextProperty(stored.h, CERT_KEY_PROV_INFO_PROP_ID, 0, &link)) {
    Status st = last_error("CertSetCertificateContextProperty");
    CertDeleteCertificateFromStore(stored.release());
    return fail(st);
  }

  KeyProperties facts;
  if (Status st = read_key_properties(key.h, facts); st.ok()) {
    result.provider = facts.provider;
    result.hardware = facts.hardware();
  } else {
    result.provider = narrow(provider_copy);
    result.hardware = in_tpm;
  }
  result.der.assign(stored.h->pbCertEncoded, stored.h->pbCertEncoded + stored.h->cbCertEncoded);
  return ok_status();
}

Status list_certificates(StoreLocation location, const std::string& prefix, std::vector<ListedCertificate>& out) {
  out.clear();
  StoreHandle store;
  store.h = open_my_store(location, false);
  if (store.h == nullptr) {
    // No My store yet (never provisioned on this profile): nothing to list.
    const DWORD why = GetLastError();
    if (why == 2u || why == 0x80070002u) return ok_status();  // ERROR_FILE_NOT_FOUND, plain or as HRESULT
    return last_error("CertOpenStore");
  }
  PCCERT_CONTEXT cert = nullptr;
  // CertEnumCertificatesInStore frees the previous context it is given.
  while ((cert = CertEnumCertificatesInStore(store.h, cert)) != nullptr) {
    ListedCertificate item;
    read_certificate_info(cert, item.info);
    if (item.info.subject.compare(0, prefix.size(), prefix) != 0) continue;
    KeyLink link;
    item.has_key_link = read_key_link(cert, link);
    item.provider = link.provider;
    item.container = link.container;
    out.push_back(std::move(item));
  }
  // The end of the enumeration sets CRYPT_E_NOT_FOUND (or nothing).
  const DWORD last = GetLastError();
  const HRESULT end = last == 0 ? 0 : hresult_from_last_error(last);
  if (end != 0 && end != static_cast<HRESULT>(CRYPT_E_NOT_FOUND)) return Status{end, "CertEnumCertificatesInStore"};
  return ok_status();
}

Status delete_certificate(StoreLocation location, const Sha1& thumbprint, bool delete_key, DeleteOutcome& out) {
  out = DeleteOutcome{};
  StoreHandle store;
  store.h = open_my_store(location, true);
  if (store.h == nullptr) return last_error("CertOpenStore");
  Sha1 hash_bytes = thumbprint;
  CRYPT_HASH_BLOB hash{static_cast<DWORD>(hash_bytes.size()), hash_bytes.data()};
  CertContext cert;
  cert.h = CertFindCertificateInStore(store.h, kEncoding, 0, CERT_FIND_HASH, &hash, nullptr);
  if (cert.h == nullptr) return last_error("CertFindCertificateInStore");

  KeyLink link;
  // Key first: a certificate without its key is visible and can be cleaned up
  // later; a key without its certificate is an invisible, leaked TPM slot.
  if (delete_key && read_key_link(cert.h, link)) {
    if (link.prov_type != 0) {
      // A CAPI CSP key: NCrypt cannot delete it, and deleting only the
      // certificate would leave the key behind with nothing pointing at it.
      out.capi_provider = link.provider.empty() ? std::string("(unnamed CSP)") : link.provider;
      return ok_status();
    }
    // Another certificate may link the same key container (a renewal with
    // certreq -renew, a CA-issued certificate on the same key): deleting the
    // key would break it. Then only this certificate goes.
    if (Status st = find_other_link(store.h, cert.h, link, out.key_shared_with); !st.ok()) return st;
    if (!out.key_shared_with.empty()) {
      if (!CertDeleteCertificateFromStore(cert.release())) return last_error("CertDeleteCertificateFromStore");
      return ok_status();
    }
    ProviderHandle prov;
    SECURITY_STATUS st = NCryptOpenStorageProvider(&prov.h, widen(link.provider).c_str(), 0);
    if (st != 0) return Status{st, "NCryptOpenStorageProvider"};
    KeyHandle key;
    const DWORD open_flags =
        NCRYPT_SILENT_FLAG | ((link.flags & CRYPT_MACHINE_KEYSET) ? NCRYPT_MACHINE_KEY_FLAG : 0);
    // A KSP key that came from CAPI is opened with the dwKeySpec the link
    // records (dwLegacyKeySpec); CNG keys link CERT_NCRYPT_KEY_SPEC or 0.
    // https://learn.microsoft.com/en-us/windows/win32/api/ncrypt/nf-ncrypt-ncryptopenkey
    const DWORD legacy_spec = (link.key_spec == AT_KEYEXCHANGE || link.key_spec == AT_SIGNATURE) ? link.key_spec : 0;
    st = NCryptOpenKey(prov.h, &key.h, widen(link.container).c_str(), legacy_spec, open_flags);
    if (st == 0) {
      if (Status deleted = delete_owned_key(key); !deleted.ok()) return deleted;
      out.key_deleted = true;
    } else if (st != static_cast<SECURITY_STATUS>(NTE_BAD_KEYSET) && st != static_cast<SECURITY_STATUS>(NTE_NO_KEY)) {
      return Status{st, "NCryptOpenKey"};
    }
  }
  // CertDeleteCertificateFromStore frees the context, even when it fails.
  if (!CertDeleteCertificateFromStore(cert.release())) return last_error("CertDeleteCertificateFromStore");
  return ok_status();
}

}  // namespace entraclaw::cng
