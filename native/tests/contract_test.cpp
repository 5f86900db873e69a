// Issue 14: the documented Win32 contracts the core follows, against the
// stand-in modelling them (no Python). Run by scripts/native_sanitize.sh under
// ASan + UBSan next to core_test.cpp; exits non-zero on any failure.
#include <openssl/sha.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "check.h"
#include "data_protection.h"
#include "entraclaw_standin/control.h"
#include "provision.h"
#include "status.h"
#include "text.h"

namespace cng = entraclaw::cng;

namespace {

cng::ProvisionRequest request_for(const std::string& cn, const std::string& container, cng::ProviderChoice choice) {
  cng::ProvisionRequest request;
  request.common_name = cn;
  request.container = container;
  request.provider = choice;
  request.not_before = static_cast<std::int64_t>(std::time(nullptr)) - 60;
  request.not_after = request.not_before + 86400;
  request.policy = cng::RetryPolicy{1, 0, 1, 0};
  return request;
}

cng::Sha1 thumbprint_of(const std::vector<std::uint8_t>& der) {
  cng::Sha1 out{};
  SHA1(der.data(), der.size(), out.data());
  return out;
}

void expect_clean(const char* where) {
  const auto open = standin_open_handles(nullptr);
  const auto invalid = standin_invalid_frees();
  if (open != 0 || invalid != 0) {
    std::fprintf(stderr, "  %s: %lld open handles, %llu invalid frees\n", where, static_cast<long long>(open),
                 static_cast<unsigned long long>(invalid));
  }
  CHECK(open == 0);
  CHECK(invalid == 0);
}

// NCryptDeleteKey frees its handle only on success; after a failure the
// caller frees it with NCryptFreeObject.
// https://learn.microsoft.com/en-us/windows/win32/api/ncrypt/nf-ncrypt-ncryptdeletekey
void test_delete_key_frees_only_on_success() {
  standin_reset();
  cng::ProvisionResult made;
  CHECK(cng::provision_certificate(request_for("entraclaw-contract-del", "contract-del", cng::ProviderChoice::Software),
                                   made)
            .ok());
  const cng::Sha1 thumb = thumbprint_of(made.der);
  standin_fail("NCryptDeleteKey", static_cast<int32_t>(NTE_PERM), 1, 0);
  cng::DeleteOutcome outcome;
  const cng::Status st = cng::delete_certificate(cng::StoreLocation::CurrentUser, thumb, true, outcome);
  CHECK(st.hr == NTE_PERM && std::strcmp(st.api, "NCryptDeleteKey") == 0);
  CHECK(!outcome.key_deleted && standin_key_exists(kSoftware, "contract-del"));
  CHECK(standin_certificate_count(STANDIN_CURRENT_USER) == 1);  // key first: the certificate stays findable
  expect_clean("delete failed");
  CHECK(cng::delete_certificate(cng::StoreLocation::CurrentUser, thumb, true, outcome).ok());
  CHECK(outcome.key_deleted && !standin_key_exists(kSoftware, "contract-del"));
  expect_clean("delete retried");
}

// A failure after the key exists deletes it again; when that delete fails too
// the result says so (orphan) and the handle is still freed exactly once.
void test_rollback_reports_an_orphan() {
  standin_reset();
  standin_fail("CertAddCertificateContextToStore", static_cast<int32_t>(E_ACCESSDENIED), 1, 0);
  standin_fail("NCryptDeleteKey", static_cast<int32_t>(NTE_PERM), 1, 0);
  cng::ProvisionResult result;
  const cng::Status st =
      cng::provision_certificate(request_for("entraclaw-contract-orphan", "contract-orphan", cng::ProviderChoice::Software),
                                 result);
  CHECK(st.hr == E_ACCESSDENIED);
  CHECK(result.orphan.hr == NTE_PERM && std::strcmp(result.orphan.api, "NCryptDeleteKey") == 0);
  CHECK(standin_key_exists(kSoftware, "contract-orphan"));
  expect_clean("rollback with failed delete");
  // Clean rollback: no orphan reported.
  standin_fail("CertAddCertificateContextToStore", static_cast<int32_t>(E_ACCESSDENIED), 1, 0);
  cng::ProvisionResult clean;
  CHECK(cng::provision_certificate(request_for("entraclaw-contract-orphan2", "contract-orphan2",
                                               cng::ProviderChoice::Software),
                                   clean)
            .hr == E_ACCESSDENIED);
  CHECK(clean.orphan.ok() && !standin_key_exists(kSoftware, "contract-orphan2"));
  expect_clean("clean rollback");
}

// CERT_STORE_OPEN_EXISTING_FLAG: "only open an existing store". A profile
// without a My store gets one created by provisioning.
// https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/nf-wincrypt-certopenstore
void test_provision_creates_a_missing_my_store() {
  standin_reset();
  standin_set_store_missing(STANDIN_CURRENT_USER, 1);
  std::vector<cng::ListedCertificate> listed;
  CHECK(cng::list_certificates(cng::StoreLocation::CurrentUser, "entraclaw-", listed).ok() && listed.empty());
  CHECK(!standin_store_exists(STANDIN_CURRENT_USER));  // listing does not create it
  cng::ProvisionResult result;
  const cng::Status st =
      cng::provision_certificate(request_for("entraclaw-contract-store", "contract-store", cng::ProviderChoice::Auto),
                                 result);
  if (!st.ok()) std::fprintf(stderr, "  provision: 0x%08X from %s\n", st.code(), st.api);
  CHECK(st.ok());
  CHECK(standin_store_exists(STANDIN_CURRENT_USER) && standin_certificate_count(STANDIN_CURRENT_USER) == 1);
  CHECK(cng::list_certificates(cng::StoreLocation::CurrentUser, "entraclaw-", listed).ok() && listed.size() == 1);
  expect_clean("missing store");
}

// Two certificates linking one key container (certreq -renew): deleting one
// keeps the key for the other.
void test_shared_key_container_is_kept() {
  standin_reset();
  cng::ProvisionResult first;
  CHECK(cng::provision_certificate(request_for("entraclaw-contract-shared", "contract-shared", cng::ProviderChoice::Software),
                                   first)
            .ok());
  const cng::Sha1 first_thumb = thumbprint_of(first.der);
  // A second certificate for the same key, linked to the same container: what
  // a renewal on the same key adds.
  CHECK(standin_add_linked_certificate(STANDIN_CURRENT_USER, first.der.data(), first.der.size(), "renewed") == 0);
  cng::DeleteOutcome outcome;
  CHECK(cng::delete_certificate(cng::StoreLocation::CurrentUser, first_thumb, true, outcome).ok());
  CHECK(!outcome.key_deleted && !outcome.key_shared_with.empty());
  CHECK(standin_key_exists(kSoftware, "contract-shared"));
  CHECK(standin_certificate_count(STANDIN_CURRENT_USER) == 1);
  // The last certificate on the key takes the key with it.
  const cng::Sha1 renewed = thumbprint_of(outcome.key_shared_with);
  CHECK(cng::delete_certificate(cng::StoreLocation::CurrentUser, renewed, true, outcome).ok());
  CHECK(outcome.key_deleted && outcome.key_shared_with.empty() && !standin_key_exists(kSoftware, "contract-shared"));
  expect_clean("shared container");
}

// PCP answering NTE_BAD_FLAGS to a flag on NCryptSetProperty: the call is
// repeated with 0 and the key stays in the TPM (no software fallback).
void test_pcp_bad_flags_retried_with_zero() {
  standin_reset();
  standin_set_pcp_setproperty_flags(0);
  cng::ProvisionResult result;
  CHECK(cng::provision_certificate(request_for("entraclaw-contract-flags", "contract-flags", cng::ProviderChoice::Auto),
                                   result)
            .ok());
  CHECK(result.hardware && result.provider == kPlatform && result.tpm_failure.ok());
  CHECK(result.key_usage_status.ok());  // sign-only still applied
  // NTE_BAD_FLAGS that persists is an error, never a software key.
  standin_fail("NCryptSetProperty", static_cast<int32_t>(NTE_BAD_FLAGS), -1, 0);
  cng::ProvisionResult refused;
  const cng::Status st =
      cng::provision_certificate(request_for("entraclaw-contract-flags2", "contract-flags2", cng::ProviderChoice::Auto),
                                 refused);
  CHECK(st.hr == NTE_BAD_FLAGS && std::strcmp(st.api, "NCryptSetProperty") == 0);
  CHECK(!standin_key_exists(kSoftware, "contract-flags2") && !standin_key_exists(kPlatform, "contract-flags2"));
  standin_clear_faults();
  expect_clean("bad flags");
}

// DATA_BLOB.cbData is a DWORD: 4 GiB and more is refused, never truncated.
// Only the first bytes exist: a correct core never reads them.
void test_dpapi_refuses_more_than_maxdword() {
  standin_reset();
  const std::uint8_t small[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<std::uint8_t> out;
  const std::size_t huge = static_cast<std::size_t>(MAXDWORD) + 6;  // truncates to 5
  cng::Status st = cng::protect_data(small, huge, nullptr, 0, "", out);
  CHECK(st.hr == E_INVALIDARG && std::strcmp(st.api, "CryptProtectData") == 0 && out.empty());
  st = cng::unprotect_data(small, huge, nullptr, 0, out);
  CHECK(st.hr == E_INVALIDARG && std::strcmp(st.api, "CryptUnprotectData") == 0);
  st = cng::protect_data(small, sizeof(small), small, huge, "", out);
  CHECK(st.hr == E_INVALIDARG);
  CHECK(standin_call_count("CryptProtectData") == 0 && standin_call_count("CryptUnprotectData") == 0);
  expect_clean("dpapi");
}

}  // namespace

int main() {
  test_delete_key_frees_only_on_success();
  test_rollback_reports_an_orphan();
  test_provision_creates_a_missing_my_store();
  test_shared_key_container_is_kept();
  test_pcp_bad_flags_retried_with_zero();
  test_dpapi_refuses_more_than_maxdword();
  standin_reset();
  return report("contract_test: ");
}
