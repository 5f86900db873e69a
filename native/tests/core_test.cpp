// C++ test driver for the CNG core against the stand-in (no Python). Run by
// scripts/native_sanitize.sh under ASan + UBSan; exits non-zero on any failure.
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <cstdlib>
#include <functional>
#include <unistd.h>
#include <string>
#include <thread>
#include <vector>

#include "cert_key.h"
#include "check.h"
#include "data_protection.h"
#include "file_security.h"
#include "entraclaw_standin/control.h"
#include "provision.h"
#include "sign.h"
#include "status.h"
#include "text.h"

namespace cng = entraclaw::cng;

namespace {

std::vector<std::uint8_t> sha256(const std::string& data) {
  std::vector<std::uint8_t> out(SHA256_DIGEST_LENGTH);
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data());
  return out;
}

std::string sha1_hex(const std::vector<std::uint8_t>& der) {
  unsigned char hash[SHA_DIGEST_LENGTH];
  SHA1(der.data(), der.size(), hash);
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char b : hash) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xF]);
  }
  return out;
}

// Verify with OpenSSL against the certificate's public key.
bool verify(const std::vector<std::uint8_t>& cert_der, const std::vector<std::uint8_t>& digest,
            const std::vector<std::uint8_t>& signature, cng::Padding padding) {
  const unsigned char* p = cert_der.data();
  X509* cert = d2i_X509(nullptr, &p, static_cast<long>(cert_der.size()));
  if (cert == nullptr) return false;
  EVP_PKEY* key = X509_get_pubkey(cert);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key, nullptr);
  bool ok = EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1;
  if (padding == cng::Padding::Pss) {
    ok = ok && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, 32) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1;
  } else {
    ok = ok && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1;
  }
  ok = ok && EVP_PKEY_verify(ctx, signature.data(), signature.size(), digest.data(), digest.size()) == 1;
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(key);
  X509_free(cert);
  return ok;
}

struct Provisioned {
  std::vector<std::uint8_t> der;
  cng::Sha1 thumbprint{};
  std::string container;
};

Provisioned provision(const std::string& cn, cng::ProviderChoice choice, cng::ProvisionResult* out = nullptr) {
  static int counter = 0;
  cng::ProvisionRequest request;
  request.common_name = cn;
  request.container = "core-test-" + std::to_string(++counter);
  request.provider = choice;
  request.not_before = static_cast<std::int64_t>(std::time(nullptr)) - 60;
  request.not_after = request.not_before + 86400;
  cng::ProvisionResult result;
  CHECK_OK(cng::provision_certificate(request, result));
  Provisioned p;
  p.der = result.der;
  p.container = request.container;
  CHECK(cng::parse_sha1_hex(sha1_hex(result.der), p.thumbprint));
  if (out != nullptr) *out = result;
  return p;
}

void expect_clean() {
  CHECK(standin_open_handles(nullptr) == 0);
  CHECK(standin_invalid_frees() == 0);
}

void test_status_table() {
  std::size_t n = 0;
  const cng::StatusInfo* rows = cng::status_table(&n);
  CHECK(n >= 34);
  for (std::size_t i = 0; i < n; ++i) {
    CHECK(cng::find_status(rows[i].code) == &rows[i]);
    for (std::size_t j = i + 1; j < n; ++j) CHECK(rows[i].code != rows[j].code);
  }
  CHECK(cng::action_of(NTE_BAD_KEYSET) == cng::Action::Reacquire);
  CHECK(cng::action_of(TPM_20_E_LOCKOUT) == cng::Action::None);
  CHECK(cng::category_of(TPM_20_E_LOCKOUT) == cng::Category::LockedOut);
  CHECK(cng::action_of(STATUS_UNSUCCESSFUL) == cng::Action::Retry);
  CHECK(cng::action_of(static_cast<HRESULT>(0x80290402u)) == cng::Action::Reacquire);  // TPM_E_PCP_INVALID_HANDLE
  CHECK(cng::action_of(static_cast<HRESULT>(0x8029040Fu)) == cng::Action::Reacquire);  // TPM_E_KEY_NOT_LOADED
  CHECK(cng::find_status(0x12345678u) == nullptr);
  CHECK(static_cast<std::uint32_t>(cng::hresult_from_last_error(ERROR_INVALID_DATA)) == 0x8007000Du);
  CHECK(cng::hresult_from_last_error(static_cast<DWORD>(CRYPT_E_NOT_FOUND)) == CRYPT_E_NOT_FOUND);
  // A failed BOOL API with GetLastError() == 0 must not read as success.
  CHECK(static_cast<std::uint32_t>(cng::hresult_from_last_error(0)) == 0x80004005u);  // E_FAIL
}

void test_text() {
  const std::string s = "entraclaw-\xC3\xA9\xE2\x82\xAC\xF0\x9F\x94\x91";  // é € 🔑
  CHECK(cng::narrow(cng::widen(s)) == s);
  cng::Sha1 h{};
  CHECK(cng::parse_sha1_hex("00112233445566778899aabbccddeeffAABBCCDD", h));
  CHECK(h[0] == 0x00 && h[9] == 0x99 && h[19] == 0xDD);
  CHECK(!cng::parse_sha1_hex("0011", h));
  CHECK(!cng::parse_sha1_hex("zz112233445566778899aabbccddeeffAABBCCDD", h));
  const SYSTEMTIME t = cng::unix_to_systemtime(951782400);  // 2000-02-29 00:00:00 UTC, a Tuesday
  CHECK(t.wYear == 2000 && t.wMonth == 2 && t.wDay == 29 && t.wDayOfWeek == 2 && t.wHour == 0);
  FILETIME ft{};
  const std::uint64_t ticks = 951782400ULL * 10000000ULL + 116444736000000000ULL;
  ft.dwLowDateTime = static_cast<DWORD>(ticks);
  ft.dwHighDateTime = static_cast<DWORD>(ticks >> 32);
  CHECK(cng::filetime_to_unix(ft) == 951782400);
}

void test_sign_digest_free_function() {
  standin_reset();
  Provisioned p = provision("entraclaw-core-free", cng::ProviderChoice::Software);
  HCERTSTORE store = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0,
                                   CERT_SYSTEM_STORE_CURRENT_USER | CERT_STORE_READONLY_FLAG, L"My");
  CHECK(store != nullptr);
  CRYPT_HASH_BLOB hash{20, p.thumbprint.data()};
  PCCERT_CONTEXT cert = CertFindCertificateInStore(store, X509_ASN_ENCODING, 0, CERT_FIND_HASH, &hash, nullptr);
  CHECK(cert != nullptr);
  HCRYPTPROV_OR_NCRYPT_KEY_HANDLE key = 0;
  DWORD spec = 0;
  BOOL caller_frees = FALSE;
  CHECK(CryptAcquireCertificatePrivateKey(cert, CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG | CRYPT_ACQUIRE_SILENT_FLAG,
                                          nullptr, &key, &spec, &caller_frees));
  const auto digest = sha256("free function");
  for (cng::Padding pad : {cng::Padding::Pkcs1, cng::Padding::Pss}) {
    std::vector<std::uint8_t> sig;
    CHECK_OK(cng::sign_digest(key, digest.data(), digest.size(), pad, sig));
    CHECK(sig.size() == 256);
    CHECK(verify(p.der, digest, sig, pad));
  }
  std::vector<std::uint8_t> sig;
  CHECK(cng::sign_digest(key, digest.data(), 31, cng::Padding::Pkcs1, sig).hr == NTE_INVALID_PARAMETER);
  standin_fail("NCryptSignHash", NTE_BUFFER_TOO_SMALL, 1, 1);  // the sign after the size query
  CHECK_OK(cng::sign_digest(key, digest.data(), digest.size(), cng::Padding::Pkcs1, sig));
  CHECK(verify(p.der, digest, sig, cng::Padding::Pkcs1));
  standin_fail("NCryptSignHash", NTE_BUFFER_TOO_SMALL, -1, 0);
  cng::Status st = cng::sign_digest_sized(key, digest.data(), digest.size(), cng::Padding::Pkcs1, 256, sig);
  CHECK(st.hr == NTE_BUFFER_TOO_SMALL && sig.empty());  // bounded: gives up instead of looping
  standin_clear_faults();
  if (caller_frees) NCryptFreeObject(key);
  CertFreeCertificateContext(cert);
  CertCloseStore(store, 0);
  expect_clean();
}

void test_cert_key() {
  standin_reset();
  cng::ProvisionResult result;
  Provisioned p = provision("entraclaw-core-key", cng::ProviderChoice::Auto, &result);
  CHECK(result.hardware);
  CHECK(result.provider == kPlatform);
  cng::RetryPolicy fast{2, 0.0, 2.0, 0.0};
  {
    cng::CertKey key;
    int attempts = 0;
    CHECK_OK(key.open(p.thumbprint, cng::StoreLocation::CurrentUser, fast, &attempts));
    CHECK(attempts == 1);
    cng::KeyProperties props;
    CHECK_OK(key.properties(props));
    CHECK(props.provider == kPlatform && props.hardware() && !props.exportable() && props.length_bits == 2048);
    cng::CertificateInfo info;
    CHECK_OK(key.certificate(info));
    CHECK(info.der == p.der && info.subject == "entraclaw-core-key" && info.not_after - info.not_before == 86400);

    const auto digest = sha256("cert key");
    std::vector<std::uint8_t> sig;
    cng::SignReport report;
    CHECK_OK(key.sign(digest.data(), digest.size(), cng::Padding::Pss, sig, report));
    CHECK(verify(p.der, digest, sig, cng::Padding::Pss));
    standin_reset_counters();
    report = {};
    CHECK_OK(key.sign(digest.data(), digest.size(), cng::Padding::Pkcs1, sig, report));
    CHECK(standin_total_calls() == 1);  // warm path: one NCryptSignHash

    standin_fail("NCryptSignHash", TPM_E_RETRY, 1, 0);
    report = {};
    CHECK_OK(key.sign(digest.data(), digest.size(), cng::Padding::Pkcs1, sig, report));
    CHECK(report.attempts == 2);

    standin_fail("NCryptSignHash", TPM_20_E_LOCKOUT, -1, 0);
    report = {};
    CHECK(key.sign(digest.data(), digest.size(), cng::Padding::Pkcs1, sig, report).hr == TPM_20_E_LOCKOUT);
    CHECK(report.attempts == 1);
    standin_clear_faults();

    standin_reset_counters();
    standin_fail("NCryptSignHash", NTE_BAD_KEYSET, 1, 0);
    report = {};
    CHECK_OK(key.sign(digest.data(), digest.size(), cng::Padding::Pkcs1, sig, report));
    CHECK(report.reacquires == 1);
    CHECK(standin_call_count("CryptAcquireCertificatePrivateKey") == 1);
    CHECK(verify(p.der, digest, sig, cng::Padding::Pkcs1));

    standin_remove_key(kPlatform, p.container.c_str());
    report = {};
    cng::Status st = key.sign(digest.data(), digest.size(), cng::Padding::Pkcs1, sig, report);
    CHECK(st.hr == NTE_BAD_KEYSET && std::strcmp(st.api, "CryptAcquireCertificatePrivateKey") == 0);
    key.close();
    key.close();
    CHECK(key.closed());
    st = key.sign(digest.data(), digest.size(), cng::Padding::Pkcs1, sig, report);
    CHECK(st.api == cng::kClosedApi);
  }
  expect_clean();
}

// Sign `each` digests on each of `threads` threads at once (PSS and PKCS#1
// alternating when `mix_pss`); `while_running` runs after the threads start.
// Returns how many signatures verified under the certificate `der`.
int sign_concurrently(cng::CertKey& key, const std::vector<std::uint8_t>& der, int threads, int each, bool mix_pss,
                      const std::function<void()>& while_running = nullptr) {
  std::atomic<int> good{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < each; ++i) {
        const auto digest = sha256(std::to_string(t) + ":" + std::to_string(i));
        const cng::Padding pad = mix_pss && (t + i) % 2 ? cng::Padding::Pss : cng::Padding::Pkcs1;
        std::vector<std::uint8_t> sig;
        cng::SignReport report;
        if (key.sign(digest.data(), digest.size(), pad, sig, report).ok() && verify(der, digest, sig, pad)) ++good;
      }
    });
  }
  if (while_running) while_running();
  for (auto& th : pool) th.join();
  return good.load();
}

void test_threads() {
  standin_reset();
  Provisioned p = provision("entraclaw-core-threads", cng::ProviderChoice::Software);
  cng::CertKey key;
  CHECK_OK(key.open(p.thumbprint, cng::StoreLocation::CurrentUser, cng::RetryPolicy{}, nullptr));
  standin_set_sign_latency_us(2000);
  // The key's handles go stale while six threads sign (an eviction): every
  // thread holding the old handle fails once, and one re-acquire serves them
  // all. The eviction is tied to the handle, not to a count of calls: an
  // injected "next 3 calls fail" also fails a thread's retry on the NEW handle
  // when another thread's call was slower, which real staleness never does
  // (that made this test fail 59/60 now and then).
  const auto acquires_before = standin_call_count("CryptAcquireCertificatePrivateKey");
  const std::string container = p.container;
  const auto signs_before = standin_call_count("NCryptSignHash");
  const int good = sign_concurrently(key, p.der, 6, 10, true, [&container, signs_before] {
    // Mid-run: after a dozen signing calls, with 48+ still to come.
    while (standin_call_count("NCryptSignHash") - signs_before < 12) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    CHECK(standin_evict_key(kSoftware, container.c_str()) == 1);
  });
  CHECK(good == 60);
  CHECK(standin_call_count("CryptAcquireCertificatePrivateKey") - acquires_before == 1);
  key.close();
  standin_set_sign_latency_us(0);
  expect_clean();
}

void test_open_failures() {
  standin_reset();
  cng::CertKey key;
  cng::Sha1 missing{};
  cng::Status st = key.open(missing, cng::StoreLocation::LocalMachine, cng::RetryPolicy{}, nullptr);
  CHECK(st.hr == CRYPT_E_NOT_FOUND && std::strcmp(st.api, "CertFindCertificateInStore") == 0);
  CHECK(key.closed());
  expect_clean();
}

void test_provision_fallback_list_delete() {
  standin_reset();
  standin_set_provider_status(kPlatform, TBS_E_TPM_NOT_FOUND);
  cng::ProvisionResult result;
  Provisioned a = provision("entraclaw-core-list-a", cng::ProviderChoice::Auto, &result);
  CHECK(!result.hardware && result.provider == kSoftware && result.tpm_failure.hr == TBS_E_TPM_NOT_FOUND);
  Provisioned b = provision("entraclaw-core-list-b", cng::ProviderChoice::Software);
  provision("other-core", cng::ProviderChoice::Software);
  std::vector<cng::ListedCertificate> listed;
  CHECK_OK(cng::list_certificates(cng::StoreLocation::CurrentUser, "entraclaw-core-list-", listed));
  CHECK(listed.size() == 2);
  for (const auto& item : listed) CHECK(item.has_key_link && item.provider == kSoftware);
  cng::DeleteOutcome outcome;
  CHECK_OK(cng::delete_certificate(cng::StoreLocation::CurrentUser, a.thumbprint, true, outcome));
  CHECK(outcome.key_deleted && !standin_key_exists(kSoftware, a.container.c_str()));
  CHECK(cng::delete_certificate(cng::StoreLocation::CurrentUser, a.thumbprint, true, outcome).hr ==
        CRYPT_E_NOT_FOUND);
  CHECK_OK(cng::list_certificates(cng::StoreLocation::CurrentUser, "entraclaw-core-list-", listed));
  CHECK(listed.size() == 1 && listed[0].info.der == b.der);

  // Rollback: a failure after the key exists must delete the key again.
  standin_fail("CertSetCertificateContextProperty", E_ACCESSDENIED, 1, 0);
  cng::ProvisionRequest request;
  request.common_name = "entraclaw-core-rollback";
  request.container = "core-test-rollback";
  request.provider = cng::ProviderChoice::Software;
  request.not_after = 86400;
  cng::ProvisionResult ignored;
  CHECK(cng::provision_certificate(request, ignored).hr == E_ACCESSDENIED);
  CHECK(!standin_key_exists(kSoftware, "core-test-rollback"));
  request.common_name = "bad\"name";
  CHECK(cng::provision_certificate(request, ignored).hr == E_INVALIDARG);
  expect_clean();
}

// Issue 8 under the sanitizers: serialized hardware signing, PS256 refusal,
// store resync, delete that frees once, attestation claims, creation retry.
void test_tpm_behaviour() {
  standin_reset();
  cng::ProvisionResult result;
  Provisioned p = provision("entraclaw-core-tpm", cng::ProviderChoice::Tpm, &result);
  CHECK(result.hardware);
  {
    cng::CertKey key;
    CHECK_OK(key.open(p.thumbprint, cng::StoreLocation::CurrentUser, cng::RetryPolicy{}, nullptr));
    CHECK(key.hardware() && key.pss_salt() == NCRYPT_TPM_PSS_SALT_SIZE_HASHSIZE);
    cng::KeyProperties props;
    CHECK_OK(key.properties(props));
    CHECK(props.key_usage_known && props.key_usage == NCRYPT_ALLOW_SIGNING_FLAG);
    standin_set_sign_latency_us(3000);
    const int good = sign_concurrently(key, p.der, 4, 4, false);
    standin_set_sign_latency_us(0);
    CHECK(good == 16);
    CHECK(standin_max_sign_overlap(1) == 1);

    // A TPM that only makes max-salt PSS: PS256 refused before the TPM is called.
    standin_set_key_option(kPlatform, p.container.c_str(), "pss_salt", NCRYPT_TPM_PSS_SALT_SIZE_MAXIMUM);
    standin_fail("NCryptSignHash", NTE_INVALID_HANDLE, 1, 0);  // re-acquire re-reads the property
    const auto digest = sha256("pss");
    std::vector<std::uint8_t> sig;
    cng::SignReport report;
    CHECK_OK(key.sign(digest.data(), digest.size(), cng::Padding::Pkcs1, sig, report));
    standin_reset_counters();
    cng::Status st = key.sign(digest.data(), digest.size(), cng::Padding::Pss, sig, report);
    CHECK(st.code() == 0x40290423u && st.api == cng::kPssSaltApi);
    CHECK(standin_call_count("NCryptSignHash") == 0);
    CHECK(standin_calls_without_silent(nullptr) == 0);

    // "PSS Salt Size" answered only by the provider handle: its answer decides.
    standin_set_key_option(kPlatform, p.container.c_str(), "pss_salt", NCRYPT_TPM_PSS_SALT_SIZE_HASHSIZE);
    standin_set_key_option(kPlatform, p.container.c_str(), "pss_salt_on_key", 0);
    standin_set_provider_pss_salt(NCRYPT_TPM_PSS_SALT_SIZE_HASHSIZE);
    standin_fail("NCryptSignHash", NTE_INVALID_HANDLE, 1, 0);
    CHECK_OK(key.sign(digest.data(), digest.size(), cng::Padding::Pkcs1, sig, report));
    CHECK(key.pss_salt() == NCRYPT_TPM_PSS_SALT_SIZE_HASHSIZE);
    CHECK_OK(key.sign(digest.data(), digest.size(), cng::Padding::Pss, sig, report));
    CHECK(standin_open_handles("provider") == 0);  // the fallback frees the provider handle it asked

    // Attestation claim through an AIK, and with tampering (the parser lives in Python).
    CHECK(standin_create_aik("core-aik") == 0);
    for (int mode = 0; mode <= 4; ++mode) {
      standin_set_claim_tamper(mode);
      cng::AttestationData data;
      CHECK_OK(key.attestation("core-aik", {}, data));
      CHECK(data.claim_status.ok() && data.claim.size() > 200);
      CHECK(data.platform_status.ok() && data.platform_type.find("TPM-Version:2.0") == 0);
      CHECK(!data.ek_status.ok());  // no EK certificate set
    }
    standin_set_claim_tamper(0);
    cng::AttestationData none;
    CHECK_OK(key.attestation("", {}, none));
    CHECK(none.claim.empty() && !none.claim_status.ok());
    key.close();
  }
  // NCryptDeleteKey that fails leaves its handle to the caller, who frees it
  // once (documented contract; contract_test.cpp covers the rest).
  standin_fail("NCryptDeleteKey", NTE_PERM, 1, 0);
  cng::DeleteOutcome outcome;
  CHECK(cng::delete_certificate(cng::StoreLocation::CurrentUser, p.thumbprint, true, outcome).hr == NTE_PERM);
  CHECK(standin_invalid_frees() == 0 && standin_open_handles("key") == 0);
  CHECK_OK(cng::delete_certificate(cng::StoreLocation::CurrentUser, p.thumbprint, true, outcome));
  CHECK(outcome.key_deleted);

  // Creation: transient retried in the TPM, lockout never falls back.
  standin_fail("NCryptFinalizeKey", TPM_20_E_RETRY, 1, 0);
  cng::ProvisionResult retried;
  provision("entraclaw-core-retry", cng::ProviderChoice::Auto, &retried);
  CHECK(retried.hardware && retried.tpm_attempts == 2);
  CHECK(retried.key_usage_status.ok());
  // A provider that refuses the Key Usage property still makes the TPM key (default usage), and says so.
  standin_fail("NCryptSetProperty", NTE_NOT_SUPPORTED, 1, 2);
  cng::ProvisionResult generic;
  provision("entraclaw-core-generic", cng::ProviderChoice::Auto, &generic);
  CHECK(generic.hardware && generic.key_usage_status.hr == NTE_NOT_SUPPORTED);
  standin_fail("NCryptFinalizeKey", TPM_20_E_LOCKOUT, 1, 0);
  cng::ProvisionRequest request;
  request.common_name = "entraclaw-core-locked";
  request.container = "core-test-locked";
  request.not_after = 86400;
  cng::ProvisionResult locked;
  CHECK(cng::provision_certificate(request, locked).hr == TPM_20_E_LOCKOUT);
  CHECK(!standin_key_exists(kSoftware, "core-test-locked"));
  expect_clean();
}

void test_dpapi() {
  standin_reset();
  const std::string secret = "dpapi secret";
  const std::string entropy = "entropy";
  std::vector<std::uint8_t> blob;
  std::vector<std::uint8_t> plain;
  const auto* s = reinterpret_cast<const std::uint8_t*>(secret.data());
  const auto* e = reinterpret_cast<const std::uint8_t*>(entropy.data());
  CHECK_OK(cng::protect_data(s, secret.size(), e, entropy.size(), "descr", blob));
  CHECK_OK(cng::unprotect_data(blob.data(), blob.size(), e, entropy.size(), plain));
  CHECK(std::string(plain.begin(), plain.end()) == secret);
  cng::Status st = cng::unprotect_data(blob.data(), blob.size(), e, entropy.size() - 1, plain);
  CHECK(st.code() == 0x8007000Du && std::strcmp(st.api, "CryptUnprotectData") == 0);
  blob[blob.size() / 2] ^= 0x40;
  CHECK(!cng::unprotect_data(blob.data(), blob.size(), e, entropy.size(), plain).ok());
  CHECK(cng::system_message(NTE_BAD_KEYSET).empty());  // no message tables in the stand-in
  expect_clean();
}

// --- owner-only DACL (file_security.cpp) -------------------------------------

std::vector<std::uint8_t> make_sid(std::uint8_t authority, const std::vector<std::uint32_t>& subs) {
  std::vector<std::uint8_t> sid(8 + 4 * subs.size(), 0);
  sid[0] = 1;
  sid[1] = static_cast<std::uint8_t>(subs.size());
  sid[7] = authority;
  if (!subs.empty()) std::memcpy(sid.data() + 8, subs.data(), 4 * subs.size());
  return sid;
}

void check_owner_only_acl(const std::vector<std::uint8_t>& acl, const std::vector<std::uint8_t>& sid,
                          std::uint8_t flags) {
  // Byte layout from winnt.h: ACL header (8), ACE_HEADER (4), mask (4), SID.
  CHECK(acl.size() == 8 + 8 + sid.size());
  CHECK(acl.size() % 4 == 0);
  ACL head;
  std::memcpy(&head, acl.data(), sizeof head);
  CHECK(head.AclRevision == ACL_REVISION);
  CHECK(head.AclSize == acl.size());
  CHECK(head.AceCount == 1);
  ACE_HEADER ace;
  std::memcpy(&ace, acl.data() + 8, sizeof ace);
  CHECK(ace.AceType == ACCESS_ALLOWED_ACE_TYPE);
  CHECK(ace.AceFlags == flags);
  CHECK(ace.AceSize == 8 + sid.size());
  std::uint32_t mask = 0;
  std::memcpy(&mask, acl.data() + 12, 4);
  CHECK(mask == 0x001F01FFu);
  CHECK(std::memcmp(acl.data() + 16, sid.data(), sid.size()) == 0);
}

void test_owner_only_acl_builder() {
  standin_reset();
  const auto user = make_sid(5, {21, 3623811015u, 3361044348u, 30300820u, 1001});
  std::vector<std::uint8_t> acl;
  CHECK_OK(cng::build_owner_only_acl(user, false, acl));
  check_owner_only_acl(acl, user, 0);
  CHECK_OK(cng::build_owner_only_acl(user, true, acl));
  check_owner_only_acl(acl, user, OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE);
  // Shortest and longest SIDs Windows allows (0 and 15 sub-authorities).
  const auto world = make_sid(1, {});
  CHECK_OK(cng::build_owner_only_acl(world, false, acl));
  check_owner_only_acl(acl, world, 0);
  const auto longest = make_sid(5, std::vector<std::uint32_t>(15, 7));
  CHECK_OK(cng::build_owner_only_acl(longest, false, acl));
  check_owner_only_acl(acl, longest, 0);
  std::string text;
  CHECK_OK(cng::sid_to_string(longest.data(), text));
  CHECK(text == "S-1-5-7-7-7-7-7-7-7-7-7-7-7-7-7-7-7");

  std::vector<std::uint8_t> bad = user;
  bad[0] = 2;  // SID revision 2 does not exist
  cng::Status st = cng::build_owner_only_acl(bad, false, acl);
  CHECK(st.code() == 0x80070539u && std::strcmp(st.api, "IsValidSid") == 0);
  CHECK(cng::build_owner_only_acl({}, false, acl).code() == 0x80070539u);
  standin_fail("AddAccessAllowedAceEx", 8 /* ERROR_NOT_ENOUGH_MEMORY */, 1, 0);
  st = cng::build_owner_only_acl(user, false, acl);
  CHECK(st.code() == 0x80070008u && std::strcmp(st.api, "AddAccessAllowedAceEx") == 0);

  // The size the builder computes is exact: four bytes less and the ACE does not fit.
  std::vector<std::uint8_t> tight(8 + 8 + user.size() - 4, 0);
  auto* pacl = reinterpret_cast<PACL>(tight.data());
  CHECK(InitializeAcl(pacl, static_cast<DWORD>(tight.size()), ACL_REVISION));
  CHECK(!AddAccessAllowedAceEx(pacl, ACL_REVISION, 0, FILE_ALL_ACCESS, const_cast<std::uint8_t*>(user.data())));
  CHECK(GetLastError() == ERROR_ALLOTTED_SPACE_EXCEEDED);
  expect_clean();
}

void test_owner_only_dacl_on_a_file() {
  standin_reset();
  char name[] = "/tmp/entraclaw-core-test-XXXXXX";
  const int fd = mkstemp(name);
  CHECK(fd >= 0);
  if (fd < 0) return;
  close(fd);

  std::vector<std::uint8_t> me;
  std::string me_text;
  CHECK_OK(cng::current_user_sid(me, me_text));
  CHECK(me_text == standin_default_user_sid());

  cng::DaclInfo before;
  CHECK_OK(cng::read_dacl(name, before));
  CHECK(!before.is_protected && before.aces.size() == 3);

  cng::OwnerOnlyResult result;
  CHECK_OK(cng::set_owner_only_dacl(name, false, result));
  CHECK(result.owner_set && result.sid == me_text);
  cng::DaclInfo after;
  CHECK_OK(cng::read_dacl(name, after));
  CHECK(after.is_protected && after.dacl_present && after.owner_sid == me_text);
  CHECK(after.aces.size() == 1);
  if (after.aces.size() == 1) {
    CHECK(after.aces[0].sid == me_text && after.aces[0].mask == 0x001F01FFu);
    CHECK(after.aces[0].type == ACCESS_ALLOWED_ACE_TYPE && after.aces[0].flags == 0);
  }

  // Without PROTECTED_DACL_SECURITY_INFORMATION inheritance stays on: the
  // parent's ACEs come back after the explicit one.
  std::vector<std::uint8_t> acl;
  CHECK_OK(cng::build_owner_only_acl(me, false, acl));
  std::wstring wname = cng::widen(name);
  CHECK(SetNamedSecurityInfoW(&wname[0], SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, nullptr, nullptr,
                              reinterpret_cast<PACL>(acl.data()), nullptr) == ERROR_SUCCESS);
  CHECK_OK(cng::read_dacl(name, after));
  CHECK(!after.is_protected && after.aces.size() == 4);

  // Owner refused: the DACL still goes on.
  standin_fail("SetNamedSecurityInfoW", ERROR_INVALID_OWNER, 1, 0);
  CHECK_OK(cng::set_owner_only_dacl(name, false, result));
  CHECK(!result.owner_set && result.owner_status.code() == 0x8007051Bu);
  CHECK_OK(cng::read_dacl(name, after));
  CHECK(after.is_protected && after.aces.size() == 1);

  // Another account: the access check refuses it, no fault injected.
  CHECK(standin_set_current_sid("S-1-5-20", nullptr, nullptr) == 0);
  cng::Status st = cng::set_owner_only_dacl(name, false, result);
  CHECK(st.code() == 0x80070005u && std::strcmp(st.api, "SetNamedSecurityInfoW") == 0);
  st = cng::read_dacl(name, after);
  CHECK(st.code() == 0x80070005u && std::strcmp(st.api, "GetNamedSecurityInfoW") == 0);
  CHECK(standin_set_current_sid(nullptr, nullptr, nullptr) == 0);
  unlink(name);
  st = cng::read_dacl(name, after);
  CHECK(st.code() == 0x80070002u);
  expect_clean();
}

void test_current_account_kinds() {
  standin_reset();
  struct Case {
    const char* sid;
    cng::AccountKind kind;
    const char* name;
  };
  const Case cases[] = {
      {"S-1-5-18", cng::AccountKind::LocalSystem, "SYSTEM"},
      {"S-1-5-19", cng::AccountKind::LocalService, "LOCAL SERVICE"},
      {"S-1-5-20", cng::AccountKind::NetworkService, "NETWORK SERVICE"},
      {"S-1-5-21-1-2-3-500", cng::AccountKind::User, ""},
  };
  for (const auto& c : cases) {
    CHECK(standin_set_current_sid(c.sid, nullptr, nullptr) == 0);
    cng::AccountInfo info;
    CHECK_OK(cng::current_account(info));
    CHECK(info.sid == c.sid && info.kind == c.kind && info.name == c.name);
    // An unmapped SID is not a failure; the lookup status says why there is no name.
    CHECK(info.name.empty() == (info.lookup.code() == 0x80070534u));
  }
  CHECK(standin_set_current_sid("S-1-5-x", nullptr, nullptr) == -1);
  CHECK(std::strcmp(cng::account_kind_name(cng::AccountKind::LocalService), "LocalService") == 0);
  standin_fail("GetTokenInformation", ERROR_ACCESS_DENIED, 1, 0);
  cng::AccountInfo info;
  cng::Status st = cng::current_account(info);
  CHECK(st.code() == 0x80070005u && std::strcmp(st.api, "GetTokenInformation") == 0);
  expect_clean();
}

// setup --machine: a machine key in LocalMachine\My whose DACL grants one
// service account only. The installer keeps READ_CONTROL | WRITE_DAC as owner
// (it can read and repair the grant) but can no longer open the key to sign.
void test_machine_key_for_one_account() {
  standin_reset();
  cng::ProvisionRequest request;
  request.common_name = "entraclaw-core-machine";
  request.container = "core-test-machine";
  request.provider = cng::ProviderChoice::Software;
  request.location = cng::StoreLocation::LocalMachine;
  request.not_before = static_cast<std::int64_t>(std::time(nullptr)) - 60;
  request.not_after = request.not_before + 86400;
  cng::ProvisionResult result;
  CHECK_OK(cng::provision_certificate(request, result));
  cng::Sha1 thumbprint{};
  CHECK(cng::parse_sha1_hex(sha1_hex(result.der), thumbprint));
  CHECK(standin_certificate_count(STANDIN_LOCAL_MACHINE) == 1 && standin_certificate_count(STANDIN_CURRENT_USER) == 0);
  std::vector<cng::ListedCertificate> listed;
  CHECK_OK(cng::list_certificates(cng::StoreLocation::LocalMachine, "entraclaw-core-machine", listed));
  CHECK(listed.size() == 1);

  // The machine key set is its own namespace: a user-key open does not find it.
  cng::CertKey installer;
  CHECK_OK(installer.open(thumbprint, cng::StoreLocation::LocalMachine, cng::RetryPolicy{}, nullptr));
  const auto digest = sha256("machine");
  std::vector<std::uint8_t> sig;
  cng::SignReport report;
  CHECK_OK(installer.sign(digest.data(), digest.size(), cng::Padding::Pkcs1, sig, report));
  cng::DaclInfo before;
  CHECK_OK(installer.read_access(before));
  CHECK(before.aces.size() == 3 && before.owner_sid == standin_default_user_sid());

  std::vector<std::uint8_t> service;
  cng::AccountInfo who;
  CHECK_OK(cng::lookup_account("NT AUTHORITY\\NETWORK SERVICE", service, who));
  CHECK(who.sid == "S-1-5-20" && who.kind == cng::AccountKind::NetworkService && who.name == "NETWORK SERVICE");
  CHECK(standin_add_account("S-1-5-21-1-2-3-1105", "agent$", "CONTOSO") == 0);
  std::vector<std::uint8_t> gmsa;
  CHECK_OK(cng::lookup_account("contoso\\AGENT$", gmsa, who));
  CHECK(who.sid == "S-1-5-21-1-2-3-1105" && who.domain == "CONTOSO");
  cng::Status missing = cng::lookup_account("CONTOSO\\nobody", gmsa, who);
  CHECK(missing.code() == 0x80070534u && std::strcmp(missing.api, "LookupAccountNameW") == 0);  // ERROR_NONE_MAPPED

  CHECK_OK(installer.restrict_access(service));
  cng::DaclInfo after;
  CHECK_OK(installer.read_access(after));
  CHECK(after.is_protected && after.dacl_present && after.aces.size() == 1);
  CHECK(after.aces[0].sid == "S-1-5-20" && after.aces[0].mask == GENERIC_ALL && after.aces[0].type == 0);
  CHECK(after.owner_sid == standin_default_user_sid());
  installer.close();

  // The installer can no longer open it ("Keyset does not exist")...
  cng::CertKey denied;
  cng::Status st = denied.open(thumbprint, cng::StoreLocation::LocalMachine, cng::RetryPolicy{}, nullptr);
  CHECK(st.hr == NTE_BAD_KEYSET && std::strcmp(st.api, "CryptAcquireCertificatePrivateKey") == 0);
  // ...the service account can, and signs.
  CHECK(standin_set_current_sid("S-1-5-20", "NETWORK SERVICE", "NT AUTHORITY") == 0);
  cng::CertKey agent;
  CHECK_OK(agent.open(thumbprint, cng::StoreLocation::LocalMachine, cng::RetryPolicy{}, nullptr));
  CHECK_OK(agent.sign(digest.data(), digest.size(), cng::Padding::Pss, sig, report));
  CHECK(verify(result.der, digest, sig, cng::Padding::Pss));
  agent.close();
  // Rotation as the service account deletes the old machine key and certificate.
  cng::DeleteOutcome outcome;
  CHECK_OK(cng::delete_certificate(cng::StoreLocation::LocalMachine, thumbprint, true, outcome));
  CHECK(outcome.key_deleted && !standin_key_exists(kSoftware, "core-test-machine"));
  standin_set_current_sid(nullptr, nullptr, nullptr);
  expect_clean();
}

}  // namespace

int main() {
  test_status_table();
  test_text();
  test_sign_digest_free_function();
  test_cert_key();
  test_threads();
  test_open_failures();
  test_provision_fallback_list_delete();
  test_tpm_behaviour();
  test_dpapi();
  test_owner_only_acl_builder();
  test_owner_only_dacl_on_a_file();
  test_current_account_kinds();
  test_machine_key_for_one_account();
  standin_reset();
  return report("");
}
