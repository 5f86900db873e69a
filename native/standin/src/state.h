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
  X(CertOpenStore) X(CertCloseStore) X(CertFindCertificateInStore) X(CertEnumCertificatesInStore)             \
  X(CertDuplicateCertificateContext) X(CertFreeCertificateContext) X(CertDeleteCertificateFromStore)          \
  X(CertAddCertificateContextToStore) X(CertGetCertificateContextProperty) X(CertSetCertificateContextProperty) \
  X(CertGetNameStringW) X(CertStrToNameW) X(CertCreateSelfSignCertificate) X(CryptAcquireCertificatePrivateKey) \
  X(NCryptOpenStorageProvider) X(NCryptOpenKey) X(NCryptCreatePersistedKey) X(NCryptSetProperty)               \
  X(NCryptGetProperty) X(NCryptFinalizeKey) X(NCryptDeleteKey) X(NCryptFreeObject) X(NCryptSignHash)           \
  X(CryptProtectData) X(CryptUnprotectData) X(LocalFree) STANDIN_ADVAPI_FUNCTIONS(X)

// advapi32 (advapi.cpp): process token, SIDs, ACLs, named security info.
#define STANDIN_ADVAPI_FUNCTIONS(X)                                                                            \
  X(OpenProcessToken) X(GetTokenInformation) X(CloseHandle) X(IsValidSid) X(IsWellKnownSid)                  \
  X(ConvertSidToStringSidW) X(LookupAccountSidW) X(InitializeAcl) X(AddAccessAllowedAceEx) X(IsValidAcl)     \
  X(GetAce) X(GetSecurityDescriptorControl) X(SetNamedSecurityInfoW) X(GetNamedSecurityInfoW)

enum class Fn {
#define STANDIN_ENUM(name) name,
  STANDIN_FUNCTIONS(STANDIN_ENUM)
#undef STANDIN_ENUM
      Count
};

// Count the call and return an injected status (0 = proceed normally).
int32_t enter(Fn fn);
int fn_index(const char* name);

struct EvpKeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using EvpKey = std::unique_ptr<EVP_PKEY, EvpKeyDeleter>;
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

struct KeyRecord {
  std::string provider;  // UTF-8
  std::wstring container;
  EvpKey pkey;
  DWORD length_bits = 2048;
  DWORD export_policy = 0;
  bool hardware = false;
  bool finalized = false;
  std::atomic<bool> deleted{false};
};

struct KeyLink {
  std::wstring provider;
  std::wstring container;
  DWORD flags = 0;
  DWORD key_spec = 0;
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

struct StoreObj {
  int location = 0;
  bool readonly = true;
};

struct CertObj {
  CERT_CONTEXT ctx{};  // first member: PCCERT_CONTEXT points here
  CERT_INFO info{};
  std::shared_ptr<CertEntry> entry;
  int location = 0;  // 0 = not in a system store (self-signed temp context)
  NCRYPT_KEY_HANDLE cached_key = 0;
};

struct KeyObj {
  std::shared_ptr<KeyRecord> record;
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
};

State& state();

// Handle registry (caller holds state().mu).
void track(const void* handle, Kind kind);
void track(std::uintptr_t handle, Kind kind);
bool is_live(std::uintptr_t handle, Kind kind);
bool untrack(std::uintptr_t handle, Kind kind);  // false (and counted) if it was not live

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

}  // namespace standin
