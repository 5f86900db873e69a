// DPAPI half of the stand-in: AES-256-GCM under a key derived from a
// per-process secret, the user id and the caller's entropy, so a wrong
// entropy or a changed byte fails like CryptUnprotectData does on Windows.
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "state.h"

using namespace standin;

namespace {

constexpr BYTE kMagic[8] = {'E', 'C', 'D', 'P', 'A', 'P', 'I', '1'};
constexpr size_t kNonce = 12;
constexpr size_t kTag = 16;

const std::array<BYTE, 32>& process_secret() {
  static const std::array<BYTE, 32> secret = [] {
    std::array<BYTE, 32> s{};
    RAND_bytes(s.data(), static_cast<int>(s.size()));
    return s;
  }();
  return secret;
}

std::array<BYTE, 32> derive_key(const DATA_BLOB* entropy) {
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  EVP_DigestInit_ex(sha, EVP_sha256(), nullptr);
  static const char label[] = "entraclaw-standin-dpapi-v1";
  EVP_DigestUpdate(sha, label, sizeof(label));
  EVP_DigestUpdate(sha, process_secret().data(), process_secret().size());
  const uid_t uid = getuid();
  EVP_DigestUpdate(sha, &uid, sizeof(uid));
  const uint32_t n = entropy != nullptr ? entropy->cbData : 0;
  EVP_DigestUpdate(sha, &n, sizeof(n));
  if (n > 0) EVP_DigestUpdate(sha, entropy->pbData, n);
  std::array<BYTE, 32> key{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(sha, key.data(), &len);
  EVP_MD_CTX_free(sha);
  return key;
}

BOOL fail(DWORD error) {
  SetLastError(error);
  return FALSE;
}

BYTE* tracked_copy(const std::vector<BYTE>& data) {
  std::lock_guard<std::mutex> lock(state().mu);
  auto* out = static_cast<BYTE*>(local_alloc(data.size()));
  if (!data.empty()) std::memcpy(out, data.data(), data.size());
  return out;
}

}  // namespace

extern "C" {

BOOL WINAPI CryptProtectData(DATA_BLOB* in, LPCWSTR description, DATA_BLOB* entropy, PVOID,
                             CRYPTPROTECT_PROMPTSTRUCT*, DWORD, DATA_BLOB* out) {
  if (int32_t st = enter(Fn::CryptProtectData)) return fail(static_cast<DWORD>(st));
  if (in == nullptr || out == nullptr || (in->cbData > 0 && in->pbData == nullptr)) return fail(E_INVALIDARG);
  const std::string descr = description != nullptr ? utf8(description) : std::string();
  const auto descr_len = static_cast<uint32_t>(descr.size());
  // magic | nonce | description length | description | ciphertext | tag
  std::vector<BYTE> blob(sizeof(kMagic) + kNonce + 4 + descr.size() + in->cbData + kTag);
  BYTE* p = blob.data();
  std::memcpy(p, kMagic, sizeof(kMagic));
  BYTE* nonce = p + sizeof(kMagic);
  RAND_bytes(nonce, kNonce);
  std::memcpy(nonce + kNonce, &descr_len, 4);
  std::memcpy(nonce + kNonce + 4, descr.data(), descr.size());
  const size_t header = sizeof(kMagic) + kNonce + 4 + descr.size();
  const auto key = derive_key(entropy);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), nonce) == 1 &&
            EVP_EncryptUpdate(ctx, nullptr, &len, blob.data(), static_cast<int>(header)) == 1 &&
            EVP_EncryptUpdate(ctx, blob.data() + header, &len, in->pbData, static_cast<int>(in->cbData)) == 1 &&
            EVP_EncryptFinal_ex(ctx, blob.data() + header + len, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTag, blob.data() + header + in->cbData) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return fail(static_cast<DWORD>(NTE_FAIL));
  out->cbData = static_cast<DWORD>(blob.size());
  out->pbData = tracked_copy(blob);
  return TRUE;
}

BOOL WINAPI CryptUnprotectData(DATA_BLOB* in, LPWSTR* description, DATA_BLOB* entropy, PVOID,
                               CRYPTPROTECT_PROMPTSTRUCT*, DWORD, DATA_BLOB* out) {
  if (int32_t st = enter(Fn::CryptUnprotectData)) return fail(static_cast<DWORD>(st));
  if (in == nullptr || out == nullptr || in->pbData == nullptr) return fail(E_INVALIDARG);
  const size_t fixed = sizeof(kMagic) + kNonce + 4;
  if (in->cbData < fixed + kTag || std::memcmp(in->pbData, kMagic, sizeof(kMagic)) != 0) {
    return fail(ERROR_INVALID_DATA);
  }
  uint32_t descr_len = 0;
  std::memcpy(&descr_len, in->pbData + sizeof(kMagic) + kNonce, 4);
  if (in->cbData < fixed + descr_len + kTag) return fail(ERROR_INVALID_DATA);
  const size_t header = fixed + descr_len;
  const size_t cipher_len = in->cbData - header - kTag;
  const BYTE* nonce = in->pbData + sizeof(kMagic);
  const auto key = derive_key(entropy);
  std::vector<BYTE> plain(cipher_len);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), nonce) == 1 &&
            EVP_DecryptUpdate(ctx, nullptr, &len, in->pbData, static_cast<int>(header)) == 1 &&
            EVP_DecryptUpdate(ctx, plain.data(), &len, in->pbData + header, static_cast<int>(cipher_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTag, in->pbData + header + cipher_len) == 1 &&
            EVP_DecryptFinal_ex(ctx, plain.data() + len, &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    OPENSSL_cleanse(plain.data(), plain.size());
    return fail(ERROR_INVALID_DATA);
  }
  out->cbData = static_cast<DWORD>(plain.size());
  out->pbData = tracked_copy(plain);
  OPENSSL_cleanse(plain.data(), plain.size());
  if (description != nullptr) {
    const std::wstring text = wide(std::string(reinterpret_cast<const char*>(in->pbData + fixed), descr_len));
    std::lock_guard<std::mutex> lock(state().mu);
    auto* copy = static_cast<WCHAR*>(local_alloc((text.size() + 1) * sizeof(WCHAR)));
    std::memcpy(copy, text.c_str(), (text.size() + 1) * sizeof(WCHAR));
    *description = copy;
  }
  return TRUE;
}

HLOCAL WINAPI LocalFree(HLOCAL mem) {
  enter(Fn::LocalFree);
  if (mem == nullptr) return nullptr;
  std::lock_guard<std::mutex> lock(state().mu);
  if (!untrack(reinterpret_cast<std::uintptr_t>(mem), Kind::Local)) return mem;  // failure: returns the handle
  std::free(mem);
  return nullptr;
}

}  // extern "C"
