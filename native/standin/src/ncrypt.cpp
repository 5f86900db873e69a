// NCrypt half of the stand-in (ncrypt.dll surface): key storage providers,
// persisted RSA keys (real OpenSSL keys), properties and NCryptSignHash.
#include <openssl/rsa.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "state.h"

using namespace standin;

namespace {

constexpr DWORD kMinBits = 512;
constexpr DWORD kMaxBits = 16384;

bool known_provider(const std::string& name) { return name == kSoftwareProvider || name == kPlatformProvider; }

SECURITY_STATUS write_property(const void* value, DWORD size, PBYTE out, DWORD capacity, DWORD* written) {
  if (written == nullptr) return NTE_INVALID_PARAMETER;
  *written = size;
  if (out == nullptr) return 0;
  if (capacity < size) return NTE_BUFFER_TOO_SMALL;
  std::memcpy(out, value, size);
  return 0;
}

SECURITY_STATUS write_string(const std::wstring& value, PBYTE out, DWORD capacity, DWORD* written) {
  return write_property(value.c_str(), static_cast<DWORD>((value.size() + 1) * sizeof(WCHAR)), out, capacity, written);
}

SECURITY_STATUS write_dword(DWORD value, PBYTE out, DWORD capacity, DWORD* written) {
  return write_property(&value, sizeof(value), out, capacity, written);
}

// The key record behind a live key handle (caller holds state().mu).
KeyRecord* record_of(NCRYPT_HANDLE handle) {
  if (!is_live(handle, Kind::Key)) return nullptr;
  auto* k = reinterpret_cast<KeyObj*>(handle);
  if (k->epoch != k->record->epoch.load()) return nullptr;  // evicted: stale handle
  return k->record.get();
}

}  // namespace

extern "C" {

SECURITY_STATUS WINAPI NCryptOpenStorageProvider(NCRYPT_PROV_HANDLE* out, LPCWSTR name, DWORD) {
  if (int32_t st = enter(Fn::NCryptOpenStorageProvider)) return st;
  if (out == nullptr) return NTE_INVALID_PARAMETER;
  const std::string provider = name == nullptr ? std::string(kSoftwareProvider) : utf8(name);
  std::lock_guard<std::mutex> lock(state().mu);
  auto blocked = state().provider_status.find(provider);
  if (blocked != state().provider_status.end()) return blocked->second;
  if (!known_provider(provider)) return NTE_BAD_PROVIDER;
  auto* p = new ProviderObj{provider, provider == kPlatformProvider};
  track(reinterpret_cast<std::uintptr_t>(p), Kind::Provider);
  *out = reinterpret_cast<NCRYPT_PROV_HANDLE>(p);
  return 0;
}

SECURITY_STATUS WINAPI NCryptOpenKey(NCRYPT_PROV_HANDLE provider, NCRYPT_KEY_HANDLE* out, LPCWSTR name,
                                     DWORD legacy_spec, DWORD flags) {
  if (int32_t st = enter(Fn::NCryptOpenKey)) return st;
  note_silent(Fn::NCryptOpenKey, (flags & NCRYPT_SILENT_FLAG) != 0);
  if (out == nullptr || name == nullptr) return NTE_INVALID_PARAMETER;
  std::lock_guard<std::mutex> lock(state().mu);
  if (!is_live(provider, Kind::Provider)) return NTE_INVALID_HANDLE;
  auto* p = reinterpret_cast<ProviderObj*>(provider);
  auto it = state().keys.find(std::make_pair(p->name, std::wstring(name)));
  if (it == state().keys.end()) return NTE_BAD_KEYSET;
  // A key that came from CAPI is found only under the dwLegacyKeySpec it was
  // stored with (the certificate link's dwKeySpec).
  if (it->second->legacy_spec != legacy_spec) return NTE_BAD_KEYSET;
  // Machine and user key sets are separate namespaces.
  if (((flags & NCRYPT_MACHINE_KEY_FLAG) != 0) != it->second->machine) return NTE_BAD_KEYSET;
  // A key whose DACL does not let the caller read it cannot be opened; .NET
  // users see "Keyset does not exist" for it (dotnet/runtime PR 119124).
  if (!key_access_granted(it->second->security, GENERIC_READ)) return NTE_BAD_KEYSET;
  auto* k = new KeyObj{it->second};
  track(reinterpret_cast<std::uintptr_t>(k), Kind::Key);
  *out = reinterpret_cast<NCRYPT_KEY_HANDLE>(k);
  return 0;
}

SECURITY_STATUS WINAPI NCryptCreatePersistedKey(NCRYPT_PROV_HANDLE provider, NCRYPT_KEY_HANDLE* out, LPCWSTR algorithm,
                                                LPCWSTR name, DWORD, DWORD flags) {
  if (int32_t st = enter(Fn::NCryptCreatePersistedKey)) return st;
  if (out == nullptr || algorithm == nullptr || name == nullptr) return NTE_INVALID_PARAMETER;
  if (std::wcscmp(algorithm, NCRYPT_RSA_ALGORITHM) != 0) return NTE_NOT_SUPPORTED;
  std::lock_guard<std::mutex> lock(state().mu);
  if (!is_live(provider, Kind::Provider)) return NTE_INVALID_HANDLE;
  auto* p = reinterpret_cast<ProviderObj*>(provider);
  if ((flags & NCRYPT_OVERWRITE_KEY_FLAG) == 0 && state().keys.count(std::make_pair(p->name, std::wstring(name)))) {
    return NTE_EXISTS;
  }
  auto record = std::make_shared<KeyRecord>();
  record->provider = p->name;
  record->container = name;
  record->hardware = p->hardware;
  // The software KSP's default lets the key be exported (machine policy can
  // change that); callers that want non-exportable keys must say so.
  record->export_policy = p->hardware ? 0 : (NCRYPT_ALLOW_EXPORT_FLAG | NCRYPT_ALLOW_PLAINTEXT_EXPORT_FLAG);
  record->machine = (flags & NCRYPT_MACHINE_KEY_FLAG) != 0;
  record->security = default_key_security(record->machine);
  auto* k = new KeyObj{record};
  track(reinterpret_cast<std::uintptr_t>(k), Kind::Key);
  *out = reinterpret_cast<NCRYPT_KEY_HANDLE>(k);
  return 0;
}

SECURITY_STATUS WINAPI NCryptSetProperty(NCRYPT_HANDLE handle, LPCWSTR name, PBYTE input, DWORD size, DWORD flags) {
  if (int32_t st = enter(Fn::NCryptSetProperty)) return st;
  note_silent(Fn::NCryptSetProperty, (flags & NCRYPT_SILENT_FLAG) != 0);
  if (name == nullptr || input == nullptr) return NTE_INVALID_PARAMETER;
  std::lock_guard<std::mutex> lock(state().mu);
  KeyRecord* r = record_of(handle);
  if (r == nullptr) return NTE_INVALID_HANDLE;
  if (std::wcscmp(name, NCRYPT_SECURITY_DESCR_PROPERTY) == 0) {
    // dwFlags names the part being set; the stand-in models the DACL only.
    // https://learn.microsoft.com/en-us/windows/win32/api/ncrypt/nf-ncrypt-ncryptsetproperty
    if ((flags & DACL_SECURITY_INFORMATION) == 0 ||
        (flags & (OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION | SACL_SECURITY_INFORMATION)) != 0) {
      return NTE_BAD_FLAGS;
    }
    if (!r->finalized) return NTE_BAD_KEY_STATE;  // a descriptor belongs to a persisted key
    if (!key_access_granted(r->security, WRITE_DAC)) return NTE_PERM;
    return apply_self_relative_dacl(r->security, input, size);
  }
  if (r->finalized) return NTE_BAD_KEY_STATE;  // the stand-in only supports pre-finalize properties
  // A PCP that takes no flags on NCryptSetProperty (Microsoft's PCPTool passes
  // 0; dotnet/runtime issue 71310 shows PCP answering NTE_BAD_FLAGS to a flag it
  // does not support): standin_set_pcp_setproperty_flags(0).
  if (r->hardware && flags != 0 && !state().pcp_setproperty_flags.load()) return NTE_BAD_FLAGS;
  if (size != sizeof(DWORD)) return NTE_INVALID_PARAMETER;
  DWORD value = 0;
  std::memcpy(&value, input, sizeof(value));
  if (std::wcscmp(name, NCRYPT_LENGTH_PROPERTY) == 0) {
    if (value < kMinBits || value > kMaxBits || value % 8 != 0) return NTE_INVALID_PARAMETER;
    r->length_bits = value;
    return 0;
  }
  if (std::wcscmp(name, NCRYPT_EXPORT_POLICY_PROPERTY) == 0) {
    // The TPM cannot export keys; it refuses a policy that says it may.
    if (r->hardware && value != 0) return NTE_NOT_SUPPORTED;
    r->export_policy = value;
    return 0;
  }
  if (std::wcscmp(name, NCRYPT_KEY_USAGE_PROPERTY) == 0) {
    // NCRYPT_ALLOW_* bits only, at least one. PCP turns the usage into the
    // TPM object's sign/decrypt attributes when the key is made (see claim.cpp).
    // https://learn.microsoft.com/en-us/windows/win32/seccng/key-storage-property-identifiers
    if (value == 0 || (value & ~static_cast<DWORD>(NCRYPT_ALLOW_ALL_USAGES)) != 0) return NTE_INVALID_PARAMETER;
    r->key_usage = value;
    return 0;
  }
  return NTE_NOT_SUPPORTED;
}

SECURITY_STATUS WINAPI NCryptFinalizeKey(NCRYPT_KEY_HANDLE handle, DWORD flags) {
  if (int32_t st = enter(Fn::NCryptFinalizeKey)) return st;
  note_silent(Fn::NCryptFinalizeKey, (flags & NCRYPT_SILENT_FLAG) != 0);
  std::shared_ptr<KeyRecord> record;
  {
    std::lock_guard<std::mutex> lock(state().mu);
    if (!is_live(handle, Kind::Key)) return NTE_INVALID_HANDLE;
    record = reinterpret_cast<KeyObj*>(handle)->record;
    if (record->finalized) return NTE_BAD_KEY_STATE;
  }
  // Most TPMs make RSA-2048 only. Where PCP reports a size the TPM lacks is
  // not documented; the stand-in says NTE_NOT_SUPPORTED at finalize.
  if (record->hardware && record->length_bits > state().tpm_max_bits.load()) return NTE_NOT_SUPPORTED;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr);
  EVP_PKEY* pkey = nullptr;
  const bool ok = ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 &&
                  EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, static_cast<int>(record->length_bits)) == 1 &&
                  EVP_PKEY_keygen(ctx, &pkey) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) return NTE_FAIL;
  std::lock_guard<std::mutex> lock(state().mu);
  record->pkey.reset(pkey);
  record->finalized = true;
  auto key = std::make_pair(record->provider, record->container);
  auto it = state().keys.find(key);
  if (it != state().keys.end()) it->second->deleted = true;
  state().keys[key] = record;
  return 0;
}

SECURITY_STATUS WINAPI NCryptDeleteKey(NCRYPT_KEY_HANDLE handle, DWORD flags) {
  const int32_t injected = enter(Fn::NCryptDeleteKey);
  note_silent(Fn::NCryptDeleteKey, (flags & NCRYPT_SILENT_FLAG) != 0);
  std::lock_guard<std::mutex> lock(state().mu);
  if (!is_live(handle, Kind::Key)) return NTE_INVALID_HANDLE;
  auto* k = reinterpret_cast<KeyObj*>(handle);
  if (injected != 0) {
    // The documented contract: the handle is freed only when the key was
    // deleted; after a failure it stays open and the caller frees it with
    // NCryptFreeObject. https://learn.microsoft.com/en-us/windows/win32/api/ncrypt/nf-ncrypt-ncryptdeletekey
    // ("Applications may use NCryptFreeObject function to free the handle if
    // NCryptDeleteKey fails.") A caller that forgets leaks a "key" handle.
    return injected;
  }
  auto key = std::make_pair(k->record->provider, k->record->container);
  auto it = state().keys.find(key);
  if (it != state().keys.end() && it->second == k->record) state().keys.erase(it);
  k->record->deleted = true;
  // Success frees the handle, as on Windows.
  untrack(handle, Kind::Key);
  delete k;
  return 0;
}

SECURITY_STATUS WINAPI NCryptFreeObject(NCRYPT_HANDLE handle) {
  if (int32_t st = enter(Fn::NCryptFreeObject)) return st;
  std::lock_guard<std::mutex> lock(state().mu);
  auto it = state().live.find(handle);
  if (it == state().live.end() || (it->second != Kind::Key && it->second != Kind::Provider)) {
    state().invalid_frees.fetch_add(1);
    return NTE_INVALID_HANDLE;
  }
  if (it->second == Kind::Key) {
    delete reinterpret_cast<KeyObj*>(handle);
  } else {
    delete reinterpret_cast<ProviderObj*>(handle);
  }
  state().live.erase(it);
  return 0;
}

SECURITY_STATUS WINAPI NCryptGetProperty(NCRYPT_HANDLE handle, LPCWSTR name, PBYTE out, DWORD capacity,
                                         DWORD* written, DWORD flags) {
  if (int32_t st = enter(Fn::NCryptGetProperty)) return st;
  note_silent(Fn::NCryptGetProperty, (flags & NCRYPT_SILENT_FLAG) != 0);
  if (name == nullptr) return NTE_INVALID_PARAMETER;
  std::lock_guard<std::mutex> lock(state().mu);
  if (is_live(handle, Kind::Provider)) {
    auto* p = reinterpret_cast<ProviderObj*>(handle);
    if (std::wcscmp(name, NCRYPT_NAME_PROPERTY) == 0) return write_string(wide(p->name), out, capacity, written);
    if (p->hardware && std::wcscmp(name, NCRYPT_PCP_PLATFORM_TYPE_PROPERTY) == 0) {
      return write_string(wide(state().platform_type), out, capacity, written);
    }
    if (p->hardware && std::wcscmp(name, NCRYPT_PCP_EKCERT_PROPERTY) == 0) {
      if (state().ek_cert.empty()) return NTE_NOT_FOUND;
      return write_property(state().ek_cert.data(), static_cast<DWORD>(state().ek_cert.size()), out, capacity, written);
    }
    if (std::wcscmp(name, NCRYPT_IMPL_TYPE_PROPERTY) == 0) {
      return write_dword(p->hardware ? NCRYPT_IMPL_HARDWARE_FLAG : NCRYPT_IMPL_SOFTWARE_FLAG, out, capacity, written);
    }
    // "PSS Salt Size" describes the TPM, so PCP may answer it on the provider
    // handle; whether key or provider answers is not documented.
    const int64_t provider_salt = state().provider_pss_salt.load();
    if (p->hardware && provider_salt >= 0 && std::wcscmp(name, NCRYPT_PCP_PSS_SALT_SIZE_PROPERTY) == 0) {
      return write_dword(static_cast<DWORD>(provider_salt), out, capacity, written);
    }
    return NTE_NOT_SUPPORTED;
  }
  KeyRecord* r = record_of(handle);
  if (r == nullptr) return NTE_INVALID_HANDLE;
  if (r->deleted) return NTE_BAD_KEYSET;
  if (std::wcscmp(name, NCRYPT_SECURITY_DESCR_PROPERTY) == 0) {
    const DWORD parts = flags & (OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION);
    if (parts == 0) return NTE_BAD_FLAGS;
    if (!key_access_granted(r->security, READ_CONTROL)) return NTE_PERM;
    const std::vector<BYTE> sd = self_relative(r->security, parts);
    return write_property(sd.data(), static_cast<DWORD>(sd.size()), out, capacity, written);
  }
  if (std::wcscmp(name, NCRYPT_PROVIDER_HANDLE_PROPERTY) == 0) {
    if (out == nullptr || written == nullptr) return write_property(nullptr, sizeof(NCRYPT_PROV_HANDLE), nullptr, 0, written);
    if (capacity < sizeof(NCRYPT_PROV_HANDLE)) return NTE_BUFFER_TOO_SMALL;
    // A new provider handle the caller must free, as on Windows.
    auto* p = new ProviderObj{r->provider, r->hardware};
    track(reinterpret_cast<std::uintptr_t>(p), Kind::Provider);
    const auto value = reinterpret_cast<NCRYPT_PROV_HANDLE>(p);
    return write_property(&value, sizeof(value), out, capacity, written);
  }
  if (std::wcscmp(name, NCRYPT_NAME_PROPERTY) == 0) return write_string(r->container, out, capacity, written);
  if (std::wcscmp(name, NCRYPT_LENGTH_PROPERTY) == 0) return write_dword(r->length_bits, out, capacity, written);
  if (std::wcscmp(name, NCRYPT_EXPORT_POLICY_PROPERTY) == 0) return write_dword(r->export_policy, out, capacity, written);
  if (r->key_usage_readable && std::wcscmp(name, NCRYPT_KEY_USAGE_PROPERTY) == 0) {
    return write_dword(r->key_usage, out, capacity, written);
  }
  if (std::wcscmp(name, NCRYPT_IMPL_TYPE_PROPERTY) == 0) {
    return write_dword(r->hardware ? NCRYPT_IMPL_HARDWARE_FLAG : NCRYPT_IMPL_SOFTWARE_FLAG, out, capacity, written);
  }
  // A PCP key property; the software KSP does not know it.
  if (r->hardware && r->pss_salt_on_key && std::wcscmp(name, NCRYPT_PCP_PSS_SALT_SIZE_PROPERTY) == 0) {
    return write_dword(r->pss_salt, out, capacity, written);
  }
  return NTE_NOT_SUPPORTED;
}

SECURITY_STATUS WINAPI NCryptSignHash(NCRYPT_KEY_HANDLE handle, VOID* padding, PBYTE hash, DWORD hash_len,
                                      PBYTE signature, DWORD capacity, DWORD* written, DWORD flags) {
  if (int32_t st = enter(Fn::NCryptSignHash)) return st;
  const bool silent = (flags & NCRYPT_SILENT_FLAG) != 0;
  note_silent(Fn::NCryptSignHash, silent);
  if (written == nullptr || hash == nullptr || padding == nullptr) return NTE_INVALID_PARAMETER;
  std::shared_ptr<KeyRecord> record;
  {
    std::lock_guard<std::mutex> lock(state().mu);
    KeyRecord* current = record_of(handle);
    if (current == nullptr) return NTE_INVALID_HANDLE;
    record = reinterpret_cast<KeyObj*>(handle)->record;
  }
  if (record->deleted) return NTE_BAD_KEYSET;
  if (!record->finalized) return NTE_BAD_KEY_STATE;
  const DWORD mode = flags & ~static_cast<DWORD>(NCRYPT_SILENT_FLAG);
  if (mode != NCRYPT_PAD_PKCS1_FLAG && mode != NCRYPT_PAD_PSS_FLAG) return NTE_BAD_FLAGS;
  // Both padding structs start with pszAlgId.
  LPCWSTR alg = static_cast<BCRYPT_PKCS1_PADDING_INFO*>(padding)->pszAlgId;
  if (alg == nullptr || std::wcscmp(alg, BCRYPT_SHA256_ALGORITHM) != 0) return NTE_NOT_SUPPORTED;
  if (hash_len != 32) return NTE_INVALID_PARAMETER;
  const auto size = static_cast<DWORD>(EVP_PKEY_get_size(record->pkey.get()));
  *written = size;
  if (signature == nullptr) return 0;  // size query: no device round trip
  if (capacity < size) return NTE_BUFFER_TOO_SMALL;
  if (record->ui_policy) {
    // The KSP would show a PIN/consent dialog; with NCRYPT_SILENT_FLAG it must
    // fail with NTE_SILENT_CONTEXT instead (NCryptSignHash documentation).
    // Without the flag a headless agent would hang: the stand-in counts the
    // dialog and answers as if the user cancelled it.
    if (silent) return NTE_SILENT_CONTEXT;
    state().ui_prompts.fetch_add(1);
    return NTE_USER_CANCELLED;
  }
  const ULONG salt = mode == NCRYPT_PAD_PSS_FLAG ? static_cast<BCRYPT_PSS_PADDING_INFO*>(padding)->cbSalt : 0;
  const ULONG max_salt = size - 32 - 2;  // emLen - hLen - 2 (RFC 8017 9.1.1); 222 for RSA-2048/SHA-256
  const bool max_salt_only = record->hardware && record->pss_salt == NCRYPT_TPM_PSS_SALT_SIZE_MAXIMUM;
  if (mode == NCRYPT_PAD_PSS_FLAG && max_salt_only && salt != max_salt && !record->pss_zero_signature) {
    return TPM_E_PCP_UNSUPPORTED_PSS_SALT;
  }
  // Overlap detector: how many signatures run on this key at once. Nothing
  // documents concurrent NCryptSignHash on one PCP handle; the TPM executes
  // one command at a time, so callers must serialize hardware keys.
  struct Active {
    KeyRecord& r;
    explicit Active(KeyRecord& rec) : r(rec) {
      const int now = r.active_signs.fetch_add(1) + 1;
      auto& peak = r.hardware ? state().max_overlap_hardware : state().max_overlap_software;
      int seen = peak.load();
      while (now > seen && !peak.compare_exchange_weak(seen, now)) {
      }
    }
    ~Active() { r.active_signs.fetch_sub(1); }
    Active(const Active&) = delete;
    Active& operator=(const Active&) = delete;
  } active(*record);
  if (const uint32_t us = state().latency_us.load(std::memory_order_relaxed)) {
    std::this_thread::sleep_for(std::chrono::microseconds(us));
  }
  if (state().null_signature.load(std::memory_order_relaxed) ||
      (mode == NCRYPT_PAD_PSS_FLAG && max_salt_only && salt != max_salt)) {
    std::memset(signature, 0, size);
    return 0;
  }
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(record->pkey.get(), nullptr);
  size_t out_len = capacity;
  bool ok = ctx != nullptr && EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1;
  if (ok && mode == NCRYPT_PAD_PSS_FLAG) {
    ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, static_cast<int>(salt)) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1;
  } else if (ok) {
    ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1;
  }
  ok = ok && EVP_PKEY_sign(ctx, signature, &out_len, hash, hash_len) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) return NTE_FAIL;
  *written = static_cast<DWORD>(out_len);
  return 0;
}

}  // extern "C"
