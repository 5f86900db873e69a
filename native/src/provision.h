// Key lifecycle for provisioning: a non-exportable RSA key in the TPM (or the
// software KSP as fallback), a self-signed certificate for it in
// CurrentUser\My (or LocalMachine\My with a machine key), listing by subject prefix, deleting certificate + key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cert_key.h"
#include "status.h"
#include "text.h"

namespace entraclaw::cng {

enum class ProviderChoice {
  Auto,      // TPM (Microsoft Platform Crypto Provider), software KSP if that fails
  Tpm,       // TPM only
  Software,  // Microsoft Software Key Storage Provider only
};

struct ProvisionRequest {
  std::string common_name;  // subject CN; no quotes (validated by the caller and here)
  std::string container;    // key container name, unique per key
  ProviderChoice provider = ProviderChoice::Auto;
  // LocalMachine: a machine key (NCRYPT_MACHINE_KEY_FLAG) and LocalMachine\My,
  // for agents run by a service, a scheduled task or a gMSA. Needs an
  // administrator (LocalMachine\My is not writable by other users).
  StoreLocation location = StoreLocation::CurrentUser;
  DWORD key_bits = 2048;
  std::int64_t not_before = 0;  // Unix seconds
  std::int64_t not_after = 0;
  // TPM key creation: transient statuses are retried under this policy and
  // never fall back to software; lockout and authorization failures fail.
  RetryPolicy policy;
};

struct ProvisionResult {
  std::string provider;           // provider that holds the key
  bool hardware = false;
  Status tpm_failure;             // why the TPM was skipped (Auto fell back), else ok
  int tpm_attempts = 0;           // TPM creation tries (transient statuses retried)
  // Why the key is not sign-only: the provider refused NCRYPT_KEY_USAGE_PROPERTY
  // (NTE_NOT_SUPPORTED / NTE_INVALID_PARAMETER / NTE_BAD_FLAGS) and kept its
  // default usage. ok when the key allows signing only.
  Status key_usage_status;
  std::vector<std::uint8_t> der;  // the stored certificate
  // A step after key creation failed and deleting the new key failed too: the
  // key container is left behind (its name is the request's container).
  Status orphan;
};

// Whether Auto may use the software KSP after the TPM failed with `hr`.
// Not after a transient status (it was retried; the TPM is there), lockout or
// failed authorization (a software key would hide a TPM that needs attention).
bool tpm_failure_allows_fallback(HRESULT hr);

Status provision_certificate(const ProvisionRequest& request, ProvisionResult& result);

struct ListedCertificate {
  CertificateInfo info;
  bool has_key_link = false;  // CERT_KEY_PROV_INFO_PROP_ID present
  std::string provider;
  std::string container;
};

struct DeleteOutcome {
  bool key_deleted = false;   // a key was actually removed (it may already be gone)
  std::string capi_provider;  // set when refused: the key belongs to this legacy CAPI CSP
  // DER of another certificate linking the same key container: the key was
  // kept for it and only the certificate was deleted.
  std::vector<std::uint8_t> key_shared_with;
};

// Certificates in `location`\My whose simple display name starts with `prefix`.
Status list_certificates(StoreLocation location, const std::string& prefix, std::vector<ListedCertificate>& out);

// Delete the certificate and, when `delete_key`, the key it links to. A key
// held by a legacy CAPI CSP (dwProvType != 0) is refused: nothing is deleted
// and `out.capi_provider` names the CSP (deleting only the certificate would
// leak the key).
Status delete_certificate(StoreLocation location, const Sha1& thumbprint, bool delete_key, DeleteOutcome& out);

}  // namespace entraclaw::cng
