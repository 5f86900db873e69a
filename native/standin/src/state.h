// Internals shared by the stand-in's translation units: handle registry,
// counters, fault injection, key and certificate stores.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "entraclaw_standin/control.h"
#include "entraclaw_standin/windows_standin.h"

namespace standin {

// Every exported Win32 function, for counters and fault injection.
#define STANDIN_FUNCTIONS(X)                                                                                   \
  X(CertOpenStore) X(CertCloseStore) X(CertControlStore) X(CertFindCertificateInStore) X(CertEnumCertificatesInStore)             \
  X(CertDuplicateCertificateContext) X(CertFreeCertificateContext) X(CertDeleteCertificateFromStore)          \
  X(CertAddCertificateContextToStore) X(CertGetCertificateContextProperty) X(CertSetCertificateContextProperty) \
  X(CertGetNameStringW) X(CertStrToNameW) X(CertCreateSelfSignCertificate) X(CryptAcquireCertificatePrivateKey) \
  X(NCryptOpenStorageProvider) X(NCryptOpenKey) X(NCryptCreatePersistedKey) X(NCryptSetProperty)               \
  X(NCryptGetProperty) X(NCryptFinalizeKey) X(NCryptDeleteKey) X(NCryptFreeObject) X(NCryptSignHash)           \
  X(NCryptCreateClaim)                                                                                           \
  X(CryptProtectData) X(CryptUnprotectData) X(LocalFree) STANDIN_ADVAPI_FUNCTIONS(X)

// advapi32 (advapi.cpp): process token, SIDs, ACLs, named security info.
#define STANDIN_ADVAPI_FUNCTIONS(X)                                                                            \
  X(OpenProcessToken) X(GetTokenInformation) X(CloseHandle) X(IsValidSid) X(IsWellKnownSid)                  \
  X(ConvertSidToStringSidW) X(LookupAccountSidW) X(LookupAccountNameW) X(InitializeAcl) X(AddAccessAllowedAceEx) X(IsValidAcl)     \
  X(GetAce) X(GetSecurityDescriptorControl) X(SetNamedSecurityInfoW) X(GetNamedSecurityInfoW)

enum class Fn {
#define STANDIN_ENUM(name) name,
  STANDIN_FUNCTIONS(STANDIN_ENUM)
#undef STANDIN_ENUM
      Count
};

// Count the call and return an injected status (0 = proceed normally).
int32_t enter(Fn fn);
// Record whether a call that accepts NCRYPT_SILENT_FLAG (or
// CRYPT_ACQUIRE_SILENT_FLAG) got it: without it a key with a UI policy would
// put up a dialog and block a headless agent.
void note_silent(Fn fn, bool silent);
int fn_index(const char* name);

struct EvpKeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using EvpKey = std::unique_ptr<EVP_PKEY, EvpKeyDeleter>;
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

// A security descriptor as the stand-in keeps it (files and keys): owner SID
// bytes, DACL bytes (AclSize; empty = NULL DACL), SE_* control bits.
struct SecurityRecord {
  std::vector<BYTE> owner;
  std::vector<BYTE> dacl;
  WORD control = 0;
};

struct KeyRecord {
  std::string provider;  // UTF-8
  std::wstring container;
  EvpKey pkey;
  DWORD length_bits = 2048;
  DWORD export_policy = 0;
  bool hardware = false;
  bool finalized = false;
  std::atomic<bool> deleted{false};
  // TPM behaviour (hardware keys): what "PSS Salt Size" reads, and what a
  // max-salt-only TPM does with a hash-size salt (refuse with
  // TPM_E_PCP_UNSUPPORTED_PSS_SALT, or hand back zeros).
  DWORD pss_salt = NCRYPT_TPM_PSS_SALT_SIZE_HASHSIZE;
  bool pss_zero_signature = false;
  bool ui_policy = false;      // signing needs a dialog (PIN/consent)
  DWORD legacy_spec = 0;       // dwLegacyKeySpec NCryptOpenKey must pass (AT_* for keys imported from CAPI)
  bool is_aik = false;         // an attestation identity key (restricted signing key)
  uint32_t tpma = 0;           // TPMA_OBJECT the claim reports (0 = derived from `key_usage`)
  // NCRYPT_KEY_USAGE_PROPERTY: both providers default to every usage for RSA
  // keys; a caller narrows it before NCryptFinalizeKey. `key_usage_readable`
  // false: the key handle refuses to report it (a provider that does not).
  DWORD key_usage = NCRYPT_ALLOW_ALL_USAGES;
  bool key_usage_readable = true;
  // false: the key handle does not answer "PSS Salt Size" (only the provider may).
  bool pss_salt_on_key = true;
  std::atomic<int> active_signs{0};
  // Bumped by standin_evict_key: handles opened before go stale (NTE_INVALID_HANDLE)
  // while the key itself stays, as after a TPM resource-manager eviction or a
  // KeyIso restart; a handle opened afterwards works.
  std::atomic<uint64_t> epoch{0};
  bool machine = false;     // NCRYPT_MACHINE_KEY_FLAG at creation: the machine key set
  SecurityRecord security;  // NCRYPT_SECURITY_DESCR_PROPERTY (guarded by state().mu)
};

struct KeyLink {
  std::wstring provider;
  std::wstring container;
  DWORD flags = 0;
  DWORD key_spec = 0;
  DWORD prov_type = 0;  // 0 = CNG key storage provider; PROV_RSA_FULL etc. = legacy CAPI CSP
};

struct CertEntry {
  std::vector<BYTE> der;
  std::array<BYTE, 20> sha1{};
  std::string subject;  // CN, UTF-8
  FILETIME not_before{};
  FILETIME not_after{};
  bool has_link = false;
  KeyLink link;
};

enum class Kind { Store, Cert, Key, Provider, Local, Token };

// A system store handle caches what it saw when it was opened: changes made by
// others (another process deleting or re-importing a certificate) stay
// invisible until CertControlStore(CERT_STORE_CTRL_RESYNC) or, with
// CERT_STORE_CTRL_AUTO_RESYNC, the next find/enumeration from the start.
// https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/nf-wincrypt-certcontrolstore
struct StoreObj {
  int location = 0;
  bool readonly = true;
  bool auto_resync = false;
  std::vector<std::shared_ptr<CertEntry>> snapshot;
};

struct CertObj {
  CERT_CONTEXT ctx{};  // first member: PCCERT_CONTEXT points here
  CERT_INFO info{};
  std::shared_ptr<CertEntry> entry;
  int location = 0;  // 0 = not in a system store (self-signed temp context)
  NCRYPT_KEY_HANDLE cached_key = 0;
};

struct KeyObj {
  explicit KeyObj(std::shared_ptr<KeyRecord> r) : record(std::move(r)), epoch(record->epoch.load()) {}
  std::shared_ptr<KeyRecord> record;
  uint64_t epoch;  // the record's epoch when this handle was opened
};

struct ProviderObj {
  std::string name;
  bool hardware = false;
};

struct State {
  std::mutex mu;
  std::map<int, std::vector<std::shared_ptr<CertEntry>>> stores;
  std::map<std::pair<std::string, std::wstring>, std::shared_ptr<KeyRecord>> keys;
  std::unordered_map<std::uintptr_t, Kind> live;
  std::map<std::string, int32_t> provider_status;
  std::atomic<uint32_t> latency_us{0};
  std::atomic<bool> null_signature{false};
  std::atomic<bool> caller_frees_key{true};
  std::atomic<uint64_t> invalid_frees{0};
  std::atomic<uint32_t> tpm_max_bits{2048};
  std::atomic<int> max_overlap_hardware{0};
  std::atomic<int> max_overlap_software{0};
  std::atomic<uint64_t> ui_prompts{0};
  std::atomic<int> claim_tamper{0};
  std::atomic<int64_t> provider_pss_salt{-1};  // "PSS Salt Size" on a PCP provider handle (-1 = not answered)
  std::atomic<bool> pcp_setproperty_flags{true};  // false: PCP NCryptSetProperty refuses dwFlags != 0 (NTE_BAD_FLAGS)
  std::map<int, bool> store_missing;               // a location whose My store was never created
  std::vector<BYTE> ek_cert;      // what PCP_EKCERT reads (empty = not readable)
  std::string platform_type = "TPM-Version:2.0 -Level:0-Revision:1.59-VendorId:0x53544e44-Firmware:0x1";
};

State& state();

// Handle registry (caller holds state().mu).
void track(const void* handle, Kind kind);
void track(std::uintptr_t handle, Kind kind);
bool is_live(std::uintptr_t handle, Kind kind);
bool untrack(std::uintptr_t handle, Kind kind);  // false (and counted) if it was not live

// The entries a store handle sees (its snapshot, or the live store).
std::vector<std::shared_ptr<CertEntry>>& visible_entries(StoreObj* store);

// Certificate contexts (caller holds state().mu).
CertObj* new_cert_context(const std::shared_ptr<CertEntry>& entry, int location, HCERTSTORE store);
void free_cert_context_locked(CertObj* obj);

// Parse a certificate into a store entry (nullptr if it is not DER X.509).
std::shared_ptr<CertEntry> make_entry(const BYTE* der, size_t len);

// wchar_t is UTF-32 here: conversions are per code point (ASCII in practice).
std::string utf8(const std::wstring& text);
std::wstring wide(const std::string& text);

constexpr const char* kSoftwareProvider = "Microsoft Software Key Storage Provider";
constexpr const char* kPlatformProvider = "Microsoft Platform Crypto Provider";

FILETIME unix_to_filetime(int64_t seconds);

// Allocations the caller releases with LocalFree (tracked as Kind::Local).
void* local_alloc(size_t size);

// advapi.cpp: forget file security descriptors and the configured account.
void advapi_reset();

// advapi.cpp, for keys. The descriptor a new key gets: owner = the calling
// account; GENERIC_ALL for LocalSystem, Administrators (machine keys) and the
// caller.
SecurityRecord default_key_security(bool machine);
// Whether the calling account holds every bit of `desired` (generic rights mapped).
bool key_access_granted(const SecurityRecord& sd, ACCESS_MASK desired);
// The parts (OWNER_/DACL_SECURITY_INFORMATION) of `sd` as one self-relative block.
std::vector<BYTE> self_relative(const SecurityRecord& sd, DWORD parts);
// Apply the DACL of a self-relative descriptor; 0 or an NTE_ status.
int32_t apply_self_relative_dacl(SecurityRecord& sd, const BYTE* data, size_t size);

}  // namespace standin
