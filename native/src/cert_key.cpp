#include "cert_key.h"

#include <chrono>
#include <thread>

namespace entraclaw::cng {

const char* const kClosedApi = "entraclaw.CertKey (closed)";

namespace {

constexpr DWORD kEncoding = X509_ASN_ENCODING | PKCS_7_ASN_ENCODING;
constexpr DWORD kAcquireFlags = CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG | CRYPT_ACQUIRE_SILENT_FLAG;

Status last_error(const char* api) { return Status{hresult_from_last_error(GetLastError()), api}; }

Status get_dword_property(NCRYPT_HANDLE handle, LPCWSTR name, DWORD& value) {
  DWORD written = 0;
  SECURITY_STATUS st =
      NCryptGetProperty(handle, name, reinterpret_cast<PBYTE>(&value), sizeof(value), &written, 0);
  return Status{st, "NCryptGetProperty"};
}

Status get_string_property(NCRYPT_HANDLE handle, LPCWSTR name, std::string& value) {
  DWORD size = 0;
  SECURITY_STATUS st = NCryptGetProperty(handle, name, nullptr, 0, &size, 0);
  if (st != 0) return Status{st, "NCryptGetProperty"};
  std::vector<BYTE> buffer(size + sizeof(WCHAR));
  st = NCryptGetProperty(handle, name, buffer.data(), size, &size, 0);
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
                                         sizeof(provider), &written, 0);
  if (st != 0) return Status{st, "NCryptGetProperty"};
  Status result = get_string_property(provider, NCRYPT_NAME_PROPERTY, out.provider);
  if (result.ok()) result = get_dword_property(provider, NCRYPT_IMPL_TYPE_PROPERTY, out.impl_type);
  NCryptFreeObject(provider);
  if (!result.ok()) return result;
  if (Status s = get_string_property(key, NCRYPT_NAME_PROPERTY, out.container); !s.ok()) return s;
  if (Status s = get_dword_property(key, NCRYPT_LENGTH_PROPERTY, out.length_bits); !s.ok()) return s;
  return get_dword_property(key, NCRYPT_EXPORT_POLICY_PROPERTY, out.export_policy);
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
      ++report.attempts;
      st = sign_digest_sized(key_, digest, len, padding, signature_size_.load(std::memory_order_relaxed), out);
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
