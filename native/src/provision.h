// Key lifecycle for provisioning: a non-exportable RSA key in the TPM (or the
// software KSP as fallback), a self-signed certificate for it in
// CurrentUser\My, listing by subject prefix, deleting certificate + key.
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
  DWORD key_bits = 2048;
  std::int64_t not_before = 0;  // Unix seconds
  std::int64_t not_after = 0;
};

struct ProvisionResult {
  std::string provider;           // provider that holds the key
  bool hardware = false;
  Status tpm_failure;             // why the TPM was skipped (Auto fell back), else ok
  std::vector<std::uint8_t> der;  // the stored certificate
};

Status provision_certificate(const ProvisionRequest& request, ProvisionResult& result);

struct ListedCertificate {
  CertificateInfo info;
  bool has_key_link = false;  // CERT_KEY_PROV_INFO_PROP_ID present
  std::string provider;
  std::string container;
};

// Certificates in `location`\My whose simple display name starts with `prefix`.
Status list_certificates(StoreLocation location, const std::string& prefix, std::vector<ListedCertificate>& out);

// Delete the certificate and, when `delete_key`, the key it links to.
// `key_deleted` says whether a key was actually removed (it may already be gone).
Status delete_certificate(StoreLocation location, const Sha1& thumbprint, bool delete_key, bool& key_deleted);

}  // namespace entraclaw::cng
