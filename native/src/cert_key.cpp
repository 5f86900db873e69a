#include "cert_key.h"

#include "key_access.h"

#include <chrono>
#include <thread>

namespace entraclaw::cng {

const char* const kClosedApi = "entraclaw.CertKey (closed)";
const char* const kPssSaltApi = "NCryptGetProperty(PSS Salt Size)";

namespace {

constexpr DWORD kEncoding = X509_ASN_ENCODING | PKCS_7_ASN_ENCODING;
constexpr DWORD kAcquireFlags = CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG | CRYPT_ACQUIRE_SILENT_FLAG;

Status last_error(const char* api) { return Status{hresult_from_last_error(GetLastError()), api}; }

// NCRYPT_SILENT_FLAG on every NCrypt call that takes it (NCryptGetProperty,
// NCryptSetProperty, NCryptOpenKey, NCryptFinalizeKey, NCryptDeleteKey,
// NCryptSignHash): a provider that would need UI fails with NTE_SILENT_CONTEXT.
// https://learn.microsoft.com/en-us/windows/win32/api/ncrypt/nf-ncrypt-ncryptgetproperty
constexpr DWORD kSilent = NCRYPT_SILENT_FLAG;

Status get_dword_property(NCRYPT_HANDLE handle, LPCWSTR name, DWORD& value) {
  DWORD written = 0;
  SECURITY_STATUS st =
      NCryptGetProperty(handle, name, reinterpret_cast<PBYTE>(&value), sizeof(value), &written, kSilent);
  return Status{st, "NCryptGetProperty"};
}

Status get_bytes_property(NCRYPT_HANDLE handle, LPCWSTR name, std::vector<std::uint8_t>& value) {
  DWORD size = 0;
  SECURITY_STATUS st = NCryptGetProperty(handle, name, nullptr, 0, &size, kSilent);
  if (st != 0) return Status{st, "NCryptGetProperty"};
  value.resize(size);
  st = NCryptGetProperty(handle, name, value.data(), size, &size, kSilent);
  if (st != 0) {
    value.clear();
    return Status{st, "NCryptGetProperty"};
  }
  value.resize(size);
  return ok_status();
}

Status get_string_property(NCRYPT_HANDLE handle, LPCWSTR name, std::string& value) {
  DWORD size = 0;
  SECURITY_STATUS st = NCryptGetProperty(handle, name, nullptr, 0, &size, kSilent);
  if (st != 0) return Status{st, "NCryptGetProperty"};
  std::vector<BYTE> buffer(size + sizeof(WCHAR));
  st = NCryptGetProperty(handle, name, buffer.data(), size, &size, kSilent);
  if (st != 0) return Status{st, "NCryptGetProperty"};
  const auto* text = reinterpret_cast<const WCHAR*>(buffer.data());
  std::size_t chars = size / sizeof(WCHAR);
  while (chars > 0 && text[chars - 1] == 0) --chars;  // the property includes the terminator
  value = narrow(text, chars);
  return ok_status();
}

}  // namespace

const char* store_location_name(StoreLocation location) {
  return location == StoreLocation::LocalMachine ? "LocalMachine" : "CurrentUser";
}

DWORD system_store_flag(StoreLocation location) {
  return location == StoreLocation::LocalMachine ? CERT_SYSTEM_STORE_LOCAL_MACHINE : CERT_SYSTEM_STORE_CURRENT_USER;
}

void sleep_ms(double milliseconds) {
  if (milliseconds <= 0) return;
  std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(milliseconds));
}

Status read_key_properties(NCRYPT_KEY_HANDLE key, KeyProperties& out) {
  // The provider handle the key hands out is a new reference we must free.
  NCRYPT_PROV_HANDLE provider = 0;
  DWORD written = 0;
  SECURITY_STATUS st = NCryptGetProperty(key, NCRYPT_PROVIDER_HANDLE_PROPERTY, reinterpret_cast<PBYTE>(&provider),
                                         sizeof(provider), &written, kSilent);
  if (st != 0) return Status{st, "NCryptGetProperty"};
  Status result = get_string_property(provider, NCRYPT_NAME_PROPERTY, out.provider);
  if (result.ok()) result = get_dword_property(provider, NCRYPT_IMPL_TYPE_PROPERTY, out.impl_type);
  NCryptFreeObject(provider);
  if (!result.ok()) return result;
  if (Status s = get_string_property(key, NCRYPT_NAME_PROPERTY, out.container); !s.ok()) return s;
  if (Status s = get_dword_property(key, NCRYPT_LENGTH_PROPERTY, out.length_bits); !s.ok()) return s;
  if (out.hardware()) {
    bool hardware = true;
    if (!read_key_traits(key, hardware, out.pss_salt).ok()) out.pss_salt = NCRYPT_TPM_PSS_SALT_SIZE_UNKNOWN;
  }
  // A provider that does not report the usage leaves it unknown rather than
  // failing the whole read: the other facts still hold.
  out.key_usage_known = get_dword_property(key, NCRYPT_KEY_USAGE_PROPERTY, out.key_usage).ok();
  if (!out.key_usage_known) out.key_usage = 0;
  return get_dword_property(key, NCRYPT_EXPORT_POLICY_PROPERTY, out.export_policy);
}

Status read_key_traits(NCRYPT_KEY_HANDLE key, bool& hardware, DWORD& pss_salt) {
  DWORD impl = 0;
  // "Impl Type" is documented as a provider property; the providers answer it
  // on key handles too (the documentation is silent on that), which spares a
  // provider handle per acquire. Fall back to the provider when a key says no.
  Status st = get_dword_property(key, NCRYPT_IMPL_TYPE_PROPERTY, impl);
  if (!st.ok()) {
    NCRYPT_PROV_HANDLE provider = 0;
    DWORD written = 0;
    SECURITY_STATUS s = NCryptGetProperty(key, NCRYPT_PROVIDER_HANDLE_PROPERTY, reinterpret_cast<PBYTE>(&provider),
                                          sizeof(provider), &written, kSilent);
    if (s != 0) return Status{s, "NCryptGetProperty"};
    st = get_dword_property(provider, NCRYPT_IMPL_TYPE_PROPERTY, impl);
    NCryptFreeObject(provider);
    if (!st.ok()) return st;
  }
  hardware = (impl & NCRYPT_IMPL_HARDWARE_FLAG) != 0;
  pss_salt = NCRYPT_TPM_PSS_SALT_SIZE_UNKNOWN;
  if (hardware) {
    // PCP reports whether the TPM makes PSS signatures with salt = hash
    // length (TPM spec 1.16+) or only the maximum salt. Absent = not known =
    // PS256 refused (cheaper than a bad signature). The documentation does not
    // say whether it is a key or a provider property: ask the key, then the
    // provider.
    DWORD salt = NCRYPT_TPM_PSS_SALT_SIZE_UNKNOWN;
    if (get_dword_property(key, NCRYPT_PCP_PSS_SALT_SIZE_PROPERTY, salt).ok()) {
      pss_salt = salt;
    } else {
      NCRYPT_PROV_HANDLE provider = 0;
      DWORD written = 0;
      if (NCryptGetProperty(key, NCRYPT_PROVIDER_HANDLE_PROPERTY, reinterpret_cast<PBYTE>(&provider),
                            sizeof(provider), &written, kSilent) == 0) {
        if (get_dword_property(provider, NCRYPT_PCP_PSS_SALT_SIZE_PROPERTY, salt).ok()) pss_salt = salt;
        NCryptFreeObject(provider);
      }
    }
  }
  return ok_status();
}

Status read_attestation(NCRYPT_KEY_HANDLE key, bool hardware, const std::string& aik,
                        const std::vector<std::uint8_t>& nonce, AttestationData& out) {
  out = AttestationData{};
  out.hardware = hardware;
  if (!hardware) return ok_status();
  NCRYPT_PROV_HANDLE provider = 0;
  DWORD written = 0;
  SECURITY_STATUS st = NCryptGetProperty(key, NCRYPT_PROVIDER_HANDLE_PROPERTY, reinterpret_cast<PBYTE>(&provider),
                                         sizeof(provider), &written, kSilent);
  if (st != 0) return Status{st, "NCryptGetProperty"};
  // PCP provider properties: PCP_PLATFORM_TYPE (TPM version, spec revision,
  // vendor) and PCP_EKCERT (the endorsement key certificate, when the TPM or
  // Windows has one). Names: the Windows SDK's ncrypt.h
  // (NCRYPT_PCP_PLATFORM_TYPE_PROPERTY, NCRYPT_PCP_EKCERT_PROPERTY); the Key
  // Storage Property Identifiers page does not list them.
  out.platform_status = get_string_property(provider, NCRYPT_PCP_PLATFORM_TYPE_PROPERTY, out.platform_type);
  out.ek_status = get_bytes_property(provider, NCRYPT_PCP_EKCERT_PROPERTY, out.ek_certificate);
  if (aik.empty()) {
    out.claim_status = Status{static_cast<HRESULT>(NTE_NOT_FOUND), "NCryptOpenKey(AIK)"};
  } else {
    NCRYPT_KEY_HANDLE authority = 0;
    const std::wstring name = widen(aik);
    st = NCryptOpenKey(provider, &authority, name.c_str(), 0, kSilent);
    if (st == static_cast<SECURITY_STATUS>(NTE_BAD_KEYSET)) {
      // AIKs made by an administrator for the machine live in the machine key set.
      st = NCryptOpenKey(provider, &authority, name.c_str(), 0, kSilent | NCRYPT_MACHINE_KEY_FLAG);
    }
    if (st != 0) {
      out.claim_status = Status{st, "NCryptOpenKey(AIK)"};
    } else {
      // TPM2_Certify of the key by the AIK. dwFlags must be 0 (NCryptCreateClaim
      // page); whether PCP can show UI here is not documented. The relying
      // party's nonce travels as NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE (49,
      // ncrypt.h) into TPMS_ATTEST.extraData; whether PCP honours it for this
      // claim type is for a real TPM to show (the verifier checks it).
      std::vector<std::uint8_t> nonce_copy(nonce);
      NCryptBuffer buffer{};
      buffer.cbBuffer = static_cast<ULONG>(nonce_copy.size());
      buffer.BufferType = NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE;
      buffer.pvBuffer = nonce_copy.data();
      NCryptBufferDesc params{};
      params.ulVersion = NCRYPTBUFFER_VERSION;
      params.cBuffers = 1;
      params.pBuffers = &buffer;
      NCryptBufferDesc* list = nonce_copy.empty() ? nullptr : &params;
      DWORD size = 0;
      st = NCryptCreateClaim(key, authority, NCRYPT_CLAIM_AUTHORITY_AND_SUBJECT, list, nullptr, 0, &size, 0);
      if (st == 0) {
        out.claim.resize(size);
        st = NCryptCreateClaim(key, authority, NCRYPT_CLAIM_AUTHORITY_AND_SUBJECT, list, out.claim.data(), size,
                               &size, 0);
        out.claim.resize(st == 0 ? size : 0);
      }
      out.claim_status = Status{st, "NCryptCreateClaim"};
      NCryptFreeObject(authority);
    }
  }
  NCryptFreeObject(provider);
  return ok_status();
}

Status read_certificate_info(PCCERT_CONTEXT cert, CertificateInfo& out) {
  out.der.assign(cert->pbCertEncoded, cert->pbCertEncoded + cert->cbCertEncoded);
  out.not_before = filetime_to_unix(cert->pCertInfo->NotBefore);
  out.not_after = filetime_to_unix(cert->pCertInfo->NotAfter);
  const DWORD chars = CertGetNameStringW(cert, CERT_NAME_SIMPLE_DISPLAY_TYPE, 0, nullptr, nullptr, 0);
  if (chars > 1) {
    std::vector<WCHAR> name(chars);
    CertGetNameStringW(cert, CERT_NAME_SIMPLE_DISPLAY_TYPE, 0, nullptr, name.data(), chars);
    out.subject = narrow(name.data(), chars - 1);
  } else {
    out.subject.clear();
  }
  return ok_status();
}

CertKey::~CertKey() { close(); }

Status CertKey::open(const Sha1& thumbprint, StoreLocation location, const RetryPolicy& policy, int* attempts) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  set_retry_policy(policy);
  thumbprint_ = thumbprint;
  location_ = location;
  closed_ = false;
  store_ = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0,
                         system_store_flag(location) | CERT_STORE_OPEN_EXISTING_FLAG | CERT_STORE_READONLY_FLAG,
                         L"My");
  if (store_ == nullptr) {
    Status st = last_error("CertOpenStore");
    closed_ = true;
    if (attempts != nullptr) *attempts = 1;
    return st;
  }
  // An open system store caches its contents: another process deleting or
  // re-importing the certificate stays invisible to CertFindCertificateInStore
  // on this handle. AUTO_RESYNC re-checks at the start of every find.
  // https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/nf-wincrypt-certcontrolstore
  // If the store refuses it, re-acquire reopens the store instead.
  reopen_store_on_reacquire_ = !CertControlStore(store_, 0, CERT_STORE_CTRL_AUTO_RESYNC, nullptr);
  int tries = 0;
  for (;;) {
    ++tries;
    Status st = find_and_acquire_locked();
    if (st.ok() || action_of(st.hr) != Action::Retry || tries >= policy.attempts) {
      if (attempts != nullptr) *attempts = tries;
      if (!st.ok()) {
        release_locked();
        closed_ = true;
      }
      return st;
    }
    lock.unlock();
    sleep_ms(policy.delay_before(tries + 1));
    lock.lock();
  }
}

Status CertKey::find_and_acquire_locked() {
  if (cert_ == nullptr) {
    CRYPT_HASH_BLOB hash{static_cast<DWORD>(thumbprint_.size()), thumbprint_.data()};
    cert_ = CertFindCertificateInStore(store_, kEncoding, 0, CERT_FIND_HASH, &hash, nullptr);
    if (cert_ == nullptr) return last_error("CertFindCertificateInStore");
  }
  DWORD key_spec = 0;
  HCRYPTPROV_OR_NCRYPT_KEY_HANDLE handle = 0;
  BOOL caller_frees = FALSE;
  if (!CryptAcquireCertificatePrivateKey(cert_, kAcquireFlags, nullptr, &handle, &key_spec, &caller_frees)) {
    return last_error("CryptAcquireCertificatePrivateKey");
  }
  key_ = static_cast<NCRYPT_KEY_HANDLE>(handle);
  caller_frees_key_ = caller_frees;
  if (!read_key_traits(key_, hardware_, pss_salt_).ok()) {
    // Unknown is treated as hardware: serialized and no PS256 is the safe side.
    hardware_ = true;
    pss_salt_ = NCRYPT_TPM_PSS_SALT_SIZE_UNKNOWN;
  }
  return ok_status();
}

void CertKey::release_locked() {
  // A key cached on the certificate context (pfCallerFreeProv == FALSE) dies
  // with the context; freeing it here too would be a double free.
  if (key_ != 0 && caller_frees_key_) NCryptFreeObject(key_);
  key_ = 0;
  caller_frees_key_ = FALSE;
  if (cert_ != nullptr) CertFreeCertificateContext(cert_);
  cert_ = nullptr;
  if (store_ != nullptr) CertCloseStore(store_, 0);
  store_ = nullptr;
}

Status CertKey::reacquire(std::uint64_t seen_generation) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (closed_) return Status{static_cast<HRESULT>(NTE_INVALID_HANDLE), kClosedApi};
  if (generation_ != seen_generation) return ok_status();  // another thread already did it
  ++generation_;
  if (key_ != 0 && caller_frees_key_) NCryptFreeObject(key_);
  key_ = 0;
  caller_frees_key_ = FALSE;
  // Look the certificate up again too: a cached key lives on the old context,
  // and a re-imported certificate is a new context.
  if (cert_ != nullptr) CertFreeCertificateContext(cert_);
  cert_ = nullptr;
  signature_size_.store(0, std::memory_order_relaxed);
  if (reopen_store_on_reacquire_) {
    if (store_ != nullptr) CertCloseStore(store_, 0);
    store_ = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0,
                           system_store_flag(location_) | CERT_STORE_OPEN_EXISTING_FLAG | CERT_STORE_READONLY_FLAG,
                           L"My");
    if (store_ == nullptr) return last_error("CertOpenStore");
  }
  return find_and_acquire_locked();
}

Status CertKey::sign(const std::uint8_t* digest, std::size_t len, Padding padding, std::vector<std::uint8_t>& out,
                     SignReport& report) {
  const RetryPolicy policy = retry_policy();
  int transient_tries = 0;
  bool reacquired = false;
  for (;;) {
    Status st;
    std::uint64_t generation = 0;
    {
      std::shared_lock<std::shared_mutex> lock(mu_);
      if (closed_) return Status{static_cast<HRESULT>(NTE_INVALID_HANDLE), kClosedApi};
      generation = generation_;
      if (padding == Padding::Pss && hardware_ && pss_salt_ != NCRYPT_TPM_PSS_SALT_SIZE_HASHSIZE) {
        // A TPM built before spec 1.16 signs PSS only with the maximum salt
        // (222 bytes for RSA-2048/SHA-256); PS256 needs 32. Refuse before the
        // TPM is asked: it would fail or, on some, return zeros.
        return Status{static_cast<HRESULT>(0x40290423u), kPssSaltApi};
      }
      ++report.attempts;
      const DWORD hint = signature_size_.load(std::memory_order_relaxed);
      if (hardware_) {
        std::lock_guard<std::mutex> device(device_mu_);
        st = sign_digest_sized(key_, digest, len, padding, hint, out);
      } else {
        st = sign_digest_sized(key_, digest, len, padding, hint, out);
      }
    }
    if (st.ok()) {
      signature_size_.store(static_cast<DWORD>(out.size()), std::memory_order_relaxed);
      return st;
    }
    const Action action = action_of(st.hr);
    if (action == Action::Reacquire && !reacquired) {
      reacquired = true;
      ++report.reacquires;
      Status again = reacquire(generation);
      if (!again.ok()) return again;
      continue;
    }
    if (action == Action::Retry) {
      ++transient_tries;
      if (transient_tries < policy.attempts) {
        sleep_ms(policy.delay_before(transient_tries + 1));
        continue;
      }
    }
    return st;
  }
}

Status CertKey::properties(KeyProperties& out) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (closed_) return Status{static_cast<HRESULT>(NTE_INVALID_HANDLE), kClosedApi};
  return read_key_properties(key_, out);
}

Status CertKey::attestation(const std::string& aik, const std::vector<std::uint8_t>& nonce, AttestationData& out) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (closed_) return Status{static_cast<HRESULT>(NTE_INVALID_HANDLE), kClosedApi};
  if (!hardware_) {
    out = AttestationData{};
    return ok_status();
  }
  // The claim is a TPM command like a signature: same lock.
  std::lock_guard<std::mutex> device(device_mu_);
  return read_attestation(key_, hardware_, aik, nonce, out);
}

Status CertKey::read_access(DaclInfo& out) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (closed_) return Status{static_cast<HRESULT>(NTE_INVALID_HANDLE), kClosedApi};
  return read_key_dacl(key_, out);
}

Status CertKey::restrict_access(const std::vector<std::uint8_t>& sid) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (closed_) return Status{static_cast<HRESULT>(NTE_INVALID_HANDLE), kClosedApi};
  return set_key_dacl(key_, sid);
}

bool CertKey::hardware() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return hardware_;
}

DWORD CertKey::pss_salt() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return pss_salt_;
}

Status CertKey::certificate(CertificateInfo& out) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (closed_ || cert_ == nullptr) return Status{static_cast<HRESULT>(NTE_INVALID_HANDLE), kClosedApi};
  return read_certificate_info(cert_, out);
}

void CertKey::set_retry_policy(const RetryPolicy& policy) {
  std::lock_guard<std::mutex> lock(policy_mu_);
  policy_ = policy;
}

RetryPolicy CertKey::retry_policy() const {
  std::lock_guard<std::mutex> lock(policy_mu_);
  return policy_;
}

void CertKey::close() {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (closed_) return;
  release_locked();
  closed_ = true;
}

bool CertKey::closed() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return closed_;
}

}  // namespace entraclaw::cng
