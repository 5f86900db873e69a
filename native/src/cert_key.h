// A certificate in a system store and its private key, kept open between
// signatures. The warm path is one NCryptSignHash call.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "file_security.h"
#include "retry.h"
#include "sign.h"
#include "status.h"
#include "text.h"
#include "win32.h"

namespace entraclaw::cng {

enum class StoreLocation { CurrentUser, LocalMachine };

const char* store_location_name(StoreLocation location);  // "CurrentUser" / "LocalMachine"
DWORD system_store_flag(StoreLocation location);           // CERT_SYSTEM_STORE_*

// `api` of the Status returned once close() ran; callers turn it into their
// "used after close" error.
extern const char* const kClosedApi;
// `api` of the Status sign() returns when it refuses PS256 before calling the
// TPM ("PSS Salt Size" is not NCRYPT_TPM_PSS_SALT_SIZE_HASHSIZE).
extern const char* const kPssSaltApi;

struct KeyProperties {
  std::string provider;     // NCRYPT_NAME_PROPERTY of the key's provider
  std::string container;    // NCRYPT_NAME_PROPERTY of the key
  DWORD length_bits = 0;    // NCRYPT_LENGTH_PROPERTY
  DWORD impl_type = 0;      // NCRYPT_IMPL_TYPE_PROPERTY of the provider
  DWORD export_policy = 0;  // NCRYPT_EXPORT_POLICY_PROPERTY, as read
  DWORD pss_salt = NCRYPT_TPM_PSS_SALT_SIZE_UNKNOWN;  // "PSS Salt Size" (hardware keys)
  DWORD key_usage = 0;      // NCRYPT_KEY_USAGE_PROPERTY (NCRYPT_ALLOW_* bits), valid when key_usage_known
  bool key_usage_known = false;
  bool hardware() const { return (impl_type & NCRYPT_IMPL_HARDWARE_FLAG) != 0; }
  // A TPM key cannot leave the TPM whatever the property says: PCP has been
  // reported to read back a policy with the export bits set for keys it can
  // never export. What decides is the implementation type.
  bool exportable() const {
    if (hardware()) return false;
    return (export_policy & (NCRYPT_ALLOW_EXPORT_FLAG | NCRYPT_ALLOW_PLAINTEXT_EXPORT_FLAG)) != 0;
  }
};

// What the provider can show about where a key lives. Each part has its own
// status: a part the provider cannot give does not hide the others.
struct AttestationData {
  bool hardware = false;
  std::string platform_type;                // NCRYPT_PCP_PLATFORM_TYPE_PROPERTY
  Status platform_status;
  std::vector<std::uint8_t> ek_certificate;  // NCRYPT_PCP_EKCERT_PROPERTY (DER)
  Status ek_status;
  std::vector<std::uint8_t> claim;           // NCryptCreateClaim(AUTHORITY_AND_SUBJECT) with the AIK
  Status claim_status;
};

struct CertificateInfo {
  std::vector<std::uint8_t> der;
  std::int64_t not_before = 0;  // Unix seconds
  std::int64_t not_after = 0;
  std::string subject;          // CERT_NAME_SIMPLE_DISPLAY_TYPE
};

// What one sign() call went through, for errors and tests.
struct SignReport {
  int attempts = 0;    // NCryptSignHash rounds (a round may be size query + sign)
  int reacquires = 0;  // key re-opened after a stale handle
};

class CertKey {
 public:
  CertKey() = default;
  ~CertKey();
  CertKey(const CertKey&) = delete;
  CertKey& operator=(const CertKey&) = delete;

  // Open `location`\My, find the certificate by SHA-1 hash, acquire its NCrypt
  // key silently. Transient statuses are retried under `policy`.
  Status open(const Sha1& thumbprint, StoreLocation location, const RetryPolicy& policy, int* attempts);

  // Sign a SHA-256 digest. Stale handle -> re-acquire once; transient -> retry
  // under the policy; lockout and everything else -> fail at once.
  Status sign(const std::uint8_t* digest, std::size_t len, Padding padding, std::vector<std::uint8_t>& out,
              SignReport& report);

  Status properties(KeyProperties& out);
  Status certificate(CertificateInfo& out);
  // Platform type, EK certificate and, when `aik` names an AIK container in
  // the Platform Crypto Provider, a key attestation claim. Software keys: none.
  // `nonce` (may be empty) goes to NCryptCreateClaim as an
  // NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE buffer: TPMS_ATTEST.extraData.
  Status attestation(const std::string& aik, const std::vector<std::uint8_t>& nonce, AttestationData& out);
  // Who may use the key (key_access.h): read its owner and DACL, or replace
  // the DACL by one grant to `sid`.
  Status read_access(DaclInfo& out);
  Status restrict_access(const std::vector<std::uint8_t>& sid);
  bool hardware() const;
  DWORD pss_salt() const;

  void set_retry_policy(const RetryPolicy& policy);
  RetryPolicy retry_policy() const;

  // Free key (only if we own it), certificate context and store, once.
  void close();
  bool closed() const;
  StoreLocation location() const { return location_; }

 private:
  Status find_and_acquire_locked();
  Status reacquire(std::uint64_t seen_generation);
  void release_locked();

  mutable std::shared_mutex mu_;  // shared: signing; exclusive: open/re-acquire/close
  mutable std::mutex policy_mu_;
  RetryPolicy policy_;
  Sha1 thumbprint_{};
  StoreLocation location_ = StoreLocation::CurrentUser;
  HCERTSTORE store_ = nullptr;
  PCCERT_CONTEXT cert_ = nullptr;
  NCRYPT_KEY_HANDLE key_ = 0;
  BOOL caller_frees_key_ = FALSE;
  std::uint64_t generation_ = 0;
  bool closed_ = false;
  bool hardware_ = false;               // read when the key is (re-)acquired
  DWORD pss_salt_ = NCRYPT_TPM_PSS_SALT_SIZE_UNKNOWN;
  bool reopen_store_on_reacquire_ = false;  // CERT_STORE_CTRL_AUTO_RESYNC was refused
  // The TPM runs one command at a time and nothing documents concurrent
  // NCryptSignHash on one PCP key handle (the NCryptSignHash page is silent on
  // thread safety); Chromium serializes platform-key operations too. Hardware
  // keys sign under this lock; software keys stay parallel.
  std::mutex device_mu_;
  std::atomic<DWORD> signature_size_{0};
};

// Read key and certificate facts through handles the caller owns.
Status read_key_properties(NCRYPT_KEY_HANDLE key, KeyProperties& out);
// Hardware flag and, for hardware keys, "PSS Salt Size" (UNKNOWN when the
// provider does not report it).
Status read_key_traits(NCRYPT_KEY_HANDLE key, bool& hardware, DWORD& pss_salt);
Status read_attestation(NCRYPT_KEY_HANDLE key, bool hardware, const std::string& aik,
                        const std::vector<std::uint8_t>& nonce, AttestationData& out);
Status read_certificate_info(PCCERT_CONTEXT cert, CertificateInfo& out);

// Sleep without holding any lock (the GIL is already released by the binding).
void sleep_ms(double milliseconds);

}  // namespace entraclaw::cng
