// Counters, fault injection, the handle registry and the control API.
#include "state.h"

#include <dlfcn.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>

namespace standin {
namespace {

const char* const kFnNames[] = {
#define STANDIN_NAME(name) #name,
    STANDIN_FUNCTIONS(STANDIN_NAME)
#undef STANDIN_NAME
};

struct Fault {
  int32_t status;
  int remaining;  // -1 = forever
  int skip;
};

std::array<std::atomic<uint64_t>, static_cast<size_t>(Fn::Count)> g_calls{};
std::array<std::atomic<uint64_t>, static_cast<size_t>(Fn::Count)> g_unsilent{};
std::atomic<bool> g_any_faults{false};
std::mutex g_fault_mu;
std::array<std::deque<Fault>, static_cast<size_t>(Fn::Count)> g_faults;
thread_local DWORD t_last_error = 0;

int64_t asn1_to_unix(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

FILETIME unix_to_filetime(int64_t seconds) {
  const uint64_t ticks = static_cast<uint64_t>(seconds * 10000000LL + 116444736000000000LL);
  return FILETIME{static_cast<DWORD>(ticks & 0xFFFFFFFFu), static_cast<DWORD>(ticks >> 32)};
}

State& state() {
  static State* s = new State();  // never destroyed: late frees at exit stay valid
  return *s;
}

int fn_index(const char* name) {
  if (name == nullptr) return -1;
  for (size_t i = 0; i < static_cast<size_t>(Fn::Count); ++i) {
    if (std::strcmp(kFnNames[i], name) == 0) return static_cast<int>(i);
  }
  return -1;
}

int32_t enter(Fn fn) {
  const auto i = static_cast<size_t>(fn);
  g_calls[i].fetch_add(1, std::memory_order_relaxed);
  if (!g_any_faults.load(std::memory_order_acquire)) return 0;
  std::lock_guard<std::mutex> lock(g_fault_mu);
  auto& queue = g_faults[i];
  if (queue.empty()) return 0;
  Fault& f = queue.front();
  if (f.skip > 0) {
    --f.skip;
    return 0;
  }
  const int32_t status = f.status;
  if (f.remaining > 0 && --f.remaining == 0) queue.pop_front();
  return status;
}

void note_silent(Fn fn, bool silent) {
  if (!silent) g_unsilent[static_cast<size_t>(fn)].fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::shared_ptr<CertEntry>>& visible_entries(StoreObj* store) {
  if (store->auto_resync) store->snapshot = state().stores[store->location];
  return store->snapshot;
}

void track(std::uintptr_t handle, Kind kind) { state().live[handle] = kind; }
void track(const void* handle, Kind kind) { track(reinterpret_cast<std::uintptr_t>(handle), kind); }

bool is_live(std::uintptr_t handle, Kind kind) {
  auto it = state().live.find(handle);
  return it != state().live.end() && it->second == kind;
}

bool untrack(std::uintptr_t handle, Kind kind) {
  auto it = state().live.find(handle);
  if (it == state().live.end() || it->second != kind) {
    state().invalid_frees.fetch_add(1);
    return false;
  }
  state().live.erase(it);
  return true;
}

CertObj* new_cert_context(const std::shared_ptr<CertEntry>& entry, int location, HCERTSTORE store) {
  auto* obj = new CertObj();
  obj->entry = entry;
  obj->location = location;
  obj->ctx.dwCertEncodingType = X509_ASN_ENCODING | PKCS_7_ASN_ENCODING;
  obj->ctx.pbCertEncoded = entry->der.data();
  obj->ctx.cbCertEncoded = static_cast<DWORD>(entry->der.size());
  obj->ctx.pCertInfo = &obj->info;
  obj->ctx.hCertStore = store;
  obj->info.dwVersion = 2;
  obj->info.NotBefore = entry->not_before;
  obj->info.NotAfter = entry->not_after;
  track(static_cast<const void*>(&obj->ctx), Kind::Cert);
  return obj;
}

void free_cert_context_locked(CertObj* obj) {
  // A key cached on the context (pfCallerFreeProv == FALSE) dies with it.
  if (obj->cached_key != 0 && untrack(obj->cached_key, Kind::Key)) {
    delete reinterpret_cast<KeyObj*>(obj->cached_key);
  }
  delete obj;
}

std::shared_ptr<CertEntry> make_entry(const BYTE* der, size_t len) {
  const unsigned char* p = der;
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(len)));
  if (!cert || p != der + len) return nullptr;
  auto entry = std::make_shared<CertEntry>();
  entry->der.assign(der, der + len);
  SHA1(der, len, entry->sha1.data());
  X509_NAME* name = X509_get_subject_name(cert.get());
  const int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx >= 0) {
    unsigned char* text = nullptr;
    const int n = ASN1_STRING_to_UTF8(&text, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
    if (n >= 0) entry->subject.assign(reinterpret_cast<char*>(text), static_cast<size_t>(n));
    OPENSSL_free(text);
  }
  entry->not_before = unix_to_filetime(asn1_to_unix(X509_get0_notBefore(cert.get())));
  entry->not_after = unix_to_filetime(asn1_to_unix(X509_get0_notAfter(cert.get())));
  return entry;
}

std::string utf8(const std::wstring& text) {
  std::string out;
  for (wchar_t c : text) {
    const auto cp = static_cast<uint32_t>(c);
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return out;
}

std::wstring wide(const std::string& text) {
  std::wstring out;
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    uint32_t cp = b;
    size_t n = 1;
    if (b >= 0xF0) {
      n = 4;
      cp = b & 0x07;
    } else if (b >= 0xE0) {
      n = 3;
      cp = b & 0x0F;
    } else if (b >= 0xC0) {
      n = 2;
      cp = b & 0x1F;
    }
    for (size_t k = 1; k < n && i + k < text.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    out.push_back(static_cast<wchar_t>(cp));
    i += n;
  }
  return out;
}

void* local_alloc(size_t size) {
  void* p = std::calloc(1, size == 0 ? 1 : size);
  track(p, Kind::Local);
  return p;
}

}  // namespace standin

using namespace standin;

extern "C" {

DWORD WINAPI GetLastError(void) { return t_last_error; }
void WINAPI SetLastError(DWORD code) { t_last_error = code; }

void standin_reset(void) {
  {
    std::lock_guard<std::mutex> lock(state().mu);
    state().stores.clear();
    state().keys.clear();
    state().provider_status.clear();
    state().ek_cert.clear();
    state().store_missing.clear();
  }
  state().pcp_setproperty_flags = true;
  state().tpm_max_bits = 2048;
  state().claim_tamper = 0;
  state().provider_pss_salt = -1;
  state().latency_us = 0;
  state().null_signature = false;
  state().caller_frees_key = true;
  advapi_reset();
  standin_clear_faults();
  standin_reset_counters();
}

int32_t standin_add_certificate(int location, const uint8_t* cert_der, size_t cert_len, const uint8_t* key_der,
                                size_t key_len, const char* provider, const char* container, int exportable) {
  if (location != STANDIN_CURRENT_USER && location != STANDIN_LOCAL_MACHINE) return E_INVALIDARG;
  auto entry = make_entry(cert_der, cert_len);
  if (!entry) return E_INVALIDARG;
  std::shared_ptr<KeyRecord> record;
  if (key_der != nullptr && key_len > 0) {
    if (provider == nullptr || container == nullptr) return E_INVALIDARG;
    const unsigned char* p = key_der;
    EvpKey pkey(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(key_len)));
    if (!pkey || EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_RSA) return NTE_BAD_KEY;
    const unsigned char* c = cert_der;
    X509Ptr cert(d2i_X509(nullptr, &c, static_cast<long>(cert_len)));
    if (!cert || X509_check_private_key(cert.get(), pkey.get()) != 1) return NTE_BAD_KEY;
    record = std::make_shared<KeyRecord>();
    record->provider = provider;
    record->container = wide(container);
    record->length_bits = static_cast<DWORD>(EVP_PKEY_get_bits(pkey.get()));
    record->hardware = record->provider == kPlatformProvider;
    record->export_policy = exportable ? (NCRYPT_ALLOW_EXPORT_FLAG | NCRYPT_ALLOW_PLAINTEXT_EXPORT_FLAG) : 0;
    record->finalized = true;
    record->pkey = std::move(pkey);
    record->machine = location == STANDIN_LOCAL_MACHINE;  // the key set the link's CRYPT_MACHINE_KEYSET names
    entry->has_link = true;
    entry->link.provider = wide(provider);
    entry->link.container = record->container;
    entry->link.flags = location == STANDIN_LOCAL_MACHINE ? CRYPT_MACHINE_KEYSET : 0;
  }
  std::lock_guard<std::mutex> lock(state().mu);
  auto& store = state().stores[location];
  for (auto& existing : store) {
    if (existing->sha1 == entry->sha1) {
      existing = entry;
      entry = nullptr;
      break;
    }
  }
  if (entry) store.push_back(entry);
  if (record) {
    auto key = std::make_pair(record->provider, record->container);
    auto it = state().keys.find(key);
    if (it != state().keys.end()) it->second->deleted = true;
    state().keys[key] = record;
  }
  return 0;
}

int standin_remove_key(const char* provider, const char* container) {
  std::lock_guard<std::mutex> lock(state().mu);
  auto it = state().keys.find(std::make_pair(std::string(provider), wide(container)));
  if (it == state().keys.end()) return 0;
  it->second->deleted = true;
  state().keys.erase(it);
  return 1;
}

int standin_evict_key(const char* provider, const char* container) {
  std::lock_guard<std::mutex> lock(state().mu);
  auto it = state().keys.find(std::make_pair(std::string(provider), wide(container)));
  if (it == state().keys.end()) return 0;
  it->second->epoch.fetch_add(1);
  return 1;
}

int standin_key_exists(const char* provider, const char* container) {
  std::lock_guard<std::mutex> lock(state().mu);
  return state().keys.count(std::make_pair(std::string(provider), wide(container))) ? 1 : 0;
}

int standin_certificate_count(int location) {
  std::lock_guard<std::mutex> lock(state().mu);
  auto it = state().stores.find(location);
  return it == state().stores.end() ? 0 : static_cast<int>(it->second.size());
}

int standin_fail(const char* function, int32_t status, int times, int skip) {
  const int i = fn_index(function);
  if (i < 0 || times == 0 || times < -1 || skip < 0) return -1;
  std::lock_guard<std::mutex> lock(g_fault_mu);
  g_faults[static_cast<size_t>(i)].push_back(Fault{status, times, skip});
  g_any_faults.store(true, std::memory_order_release);
  return 0;
}

void standin_clear_faults(void) {
  std::lock_guard<std::mutex> lock(g_fault_mu);
  for (auto& q : g_faults) q.clear();
  g_any_faults.store(false, std::memory_order_release);
}

void standin_set_provider_status(const char* provider, int32_t status) {
  std::lock_guard<std::mutex> lock(state().mu);
  if (status == 0) {
    state().provider_status.erase(provider);
  } else {
    state().provider_status[provider] = status;
  }
}

void standin_set_sign_latency_us(uint32_t microseconds) { state().latency_us = microseconds; }
void standin_set_null_signature(int enabled) { state().null_signature = enabled != 0; }
void standin_set_caller_frees_key(int caller_frees) { state().caller_frees_key = caller_frees != 0; }

uint64_t standin_call_count(const char* function) {
  const int i = fn_index(function);
  return i < 0 ? 0 : g_calls[static_cast<size_t>(i)].load();
}

uint64_t standin_total_calls(void) {
  uint64_t total = 0;
  for (auto& c : g_calls) total += c.load();
  return total;
}

void standin_reset_counters(void) {
  for (auto& c : g_calls) c.store(0);
  for (auto& c : g_unsilent) c.store(0);
  state().invalid_frees = 0;
  state().max_overlap_hardware = 0;
  state().max_overlap_software = 0;
  state().ui_prompts = 0;
}

uint64_t standin_calls_without_silent(const char* function) {
  if (function == nullptr) {
    uint64_t total = 0;
    for (auto& c : g_unsilent) total += c.load();
    return total;
  }
  const int i = fn_index(function);
  return i < 0 ? 0 : g_unsilent[static_cast<size_t>(i)].load();
}

uint64_t standin_ui_prompts(void) { return state().ui_prompts.load(); }

int standin_max_sign_overlap(int hardware) {
  return hardware ? state().max_overlap_hardware.load() : state().max_overlap_software.load();
}

int standin_set_key_option(const char* provider, const char* container, const char* option, int64_t value) {
  if (provider == nullptr || container == nullptr || option == nullptr) return -1;
  std::lock_guard<std::mutex> lock(state().mu);
  auto it = state().keys.find(std::make_pair(std::string(provider), wide(container)));
  if (it == state().keys.end()) return -1;
  KeyRecord& r = *it->second;
  const std::string name(option);
  const auto v = static_cast<DWORD>(value);
  if (name == "hardware") {
    r.hardware = value != 0;
  } else if (name == "pss_salt") {
    r.pss_salt = v;
  } else if (name == "pss_zero_signature") {
    r.pss_zero_signature = value != 0;
  } else if (name == "ui_policy") {
    r.ui_policy = value != 0;
  } else if (name == "export_policy") {
    r.export_policy = v;
  } else if (name == "legacy_spec") {
    r.legacy_spec = v;
  } else if (name == "tpma") {
    r.tpma = v;
  } else if (name == "key_usage") {
    r.key_usage = v;
  } else if (name == "key_usage_readable") {
    r.key_usage_readable = value != 0;
  } else if (name == "pss_salt_on_key") {
    r.pss_salt_on_key = value != 0;
  } else {
    return -1;
  }
  return 0;
}

int standin_set_link(int location, const uint8_t* sha1, uint32_t prov_type, uint32_t key_spec, const char* provider) {
  if (sha1 == nullptr) return -1;
  std::lock_guard<std::mutex> lock(state().mu);
  for (auto& entry : state().stores[location]) {
    if (std::memcmp(entry->sha1.data(), sha1, 20) != 0 || !entry->has_link) continue;
    entry->link.prov_type = prov_type;
    entry->link.key_spec = key_spec;
    if (provider != nullptr) entry->link.provider = wide(provider);
    return 0;
  }
  return -1;
}

int32_t standin_create_aik(const char* container) {
  if (container == nullptr) return E_INVALIDARG;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr);
  EVP_PKEY* pkey = nullptr;
  const bool ok = ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) == 1 &&
                  EVP_PKEY_keygen(ctx, &pkey) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) return NTE_FAIL;
  auto record = std::make_shared<KeyRecord>();
  record->provider = kPlatformProvider;
  record->container = wide(container);
  record->pkey.reset(pkey);
  record->hardware = true;
  record->finalized = true;
  record->is_aik = true;
  std::lock_guard<std::mutex> lock(state().mu);
  state().keys[std::make_pair(record->provider, record->container)] = record;
  return 0;
}

int64_t standin_key_public_der(const char* provider, const char* container, uint8_t* out, size_t capacity) {
  std::lock_guard<std::mutex> lock(state().mu);
  auto it = state().keys.find(std::make_pair(std::string(provider), wide(container)));
  if (it == state().keys.end() || !it->second->pkey) return -1;
  const int len = i2d_PUBKEY(it->second->pkey.get(), nullptr);
  if (len <= 0) return -1;
  if (out != nullptr && capacity >= static_cast<size_t>(len)) {
    unsigned char* p = out;
    i2d_PUBKEY(it->second->pkey.get(), &p);
  }
  return len;
}

void standin_set_ek_certificate(const uint8_t* der, size_t len) {
  std::lock_guard<std::mutex> lock(state().mu);
  state().ek_cert.assign(der, der + (der == nullptr ? 0 : len));
}

void standin_set_tpm_max_bits(uint32_t bits) { state().tpm_max_bits = bits; }

void standin_set_provider_pss_salt(int64_t value) { state().provider_pss_salt = value; }
void standin_set_claim_tamper(int mode) { state().claim_tamper = mode; }
int32_t standin_add_linked_certificate(int location, const uint8_t* existing_der, size_t len, const char* common_name) {
  auto probe = make_entry(existing_der, len);
  if (!probe || common_name == nullptr) return E_INVALIDARG;
  std::shared_ptr<CertEntry> existing;
  std::shared_ptr<KeyRecord> record;
  {
    std::lock_guard<std::mutex> lock(state().mu);
    for (auto& entry : state().stores[location]) {
      if (entry->sha1 == probe->sha1) existing = entry;
    }
    if (!existing || !existing->has_link) return CRYPT_E_NOT_FOUND;
    auto it = state().keys.find(std::make_pair(utf8(existing->link.provider), existing->link.container));
    if (it == state().keys.end() || !it->second->pkey) return NTE_BAD_KEYSET;
    record = it->second;
  }
  // A new self-signed certificate over the same key (another serial and name).
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(std::time(nullptr) & 0x7fffffff));
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_set_pubkey(cert.get(), record->pkey.get());
  if (X509_sign(cert.get(), record->pkey.get(), EVP_sha256()) <= 0) return NTE_FAIL;
  unsigned char* der = nullptr;
  const int der_len = i2d_X509(cert.get(), &der);
  if (der_len <= 0) return NTE_FAIL;
  auto entry = make_entry(der, static_cast<size_t>(der_len));
  OPENSSL_free(der);
  if (!entry) return NTE_FAIL;
  entry->has_link = true;
  entry->link = existing->link;
  std::lock_guard<std::mutex> lock(state().mu);
  state().stores[location].push_back(entry);
  return 0;
}

void standin_set_pcp_setproperty_flags(int accepted) { state().pcp_setproperty_flags = accepted != 0; }
void standin_set_store_missing(int location, int missing) {
  std::lock_guard<std::mutex> lock(state().mu);
  state().store_missing[location] = missing != 0;
  if (missing != 0) state().stores.erase(location);
}
int standin_store_exists(int location) {
  std::lock_guard<std::mutex> lock(state().mu);
  auto it = state().store_missing.find(location);
  return it == state().store_missing.end() || !it->second;
}

int64_t standin_open_handles(const char* kind) {
  static const std::map<std::string, Kind> kinds = {{"store", Kind::Store},
                                                    {"certificate", Kind::Cert},
                                                    {"key", Kind::Key},
                                                    {"provider", Kind::Provider},
                                                    {"local", Kind::Local},
                                                    {"token", Kind::Token}};
  std::lock_guard<std::mutex> lock(state().mu);
  if (kind == nullptr) return static_cast<int64_t>(state().live.size());
  auto it = kinds.find(kind);
  if (it == kinds.end()) return -1;
  int64_t n = 0;
  for (const auto& [handle, k] : state().live) n += (k == it->second) ? 1 : 0;
  return n;
}

uint64_t standin_invalid_frees(void) { return state().invalid_frees.load(); }

const char* standin_library_path(void) {
  static std::string path = [] {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&standin_library_path), &info) != 0 && info.dli_fname != nullptr) {
      return std::string(info.dli_fname);
    }
    return std::string();
  }();
  return path.c_str();
}

}  // extern "C"
