#include "sign.h"

namespace entraclaw::cng {
namespace {

// A provider that keeps answering "too small" after we grew the buffer to what
// it asked for is broken; stop instead of looping forever.
constexpr int kMaxResizes = 3;

struct PaddingArgs {
  BCRYPT_PKCS1_PADDING_INFO pkcs1;
  BCRYPT_PSS_PADDING_INFO pss;
  void* info;
  DWORD flags;
};

void init_padding(Padding padding, PaddingArgs& args) {
  args.pkcs1.pszAlgId = BCRYPT_SHA256_ALGORITHM;
  args.pss.pszAlgId = BCRYPT_SHA256_ALGORITHM;
  args.pss.cbSalt = kPssSaltSize;
  // NCRYPT_SILENT_FLAG: a key with a UI protection policy must fail with
  // NTE_SILENT_CONTEXT instead of putting up a dialog nobody will answer
  // (https://learn.microsoft.com/en-us/windows/win32/api/ncrypt/nf-ncrypt-ncryptsignhash).
  if (padding == Padding::Pss) {
    args.info = &args.pss;
    args.flags = NCRYPT_PAD_PSS_FLAG | NCRYPT_SILENT_FLAG;
  } else {
    args.info = &args.pkcs1;
    args.flags = NCRYPT_PAD_PKCS1_FLAG | NCRYPT_SILENT_FLAG;
  }
}

Status query_size(NCRYPT_KEY_HANDLE key, PaddingArgs& args, PBYTE digest, DWORD len, DWORD& size) {
  size = 0;
  SECURITY_STATUS st = NCryptSignHash(key, args.info, digest, len, nullptr, 0, &size, args.flags);
  return Status{st, "NCryptSignHash"};
}

}  // namespace

Status sign_digest_sized(NCRYPT_KEY_HANDLE key, const std::uint8_t* digest, std::size_t len, Padding padding,
                         DWORD size_hint, std::vector<std::uint8_t>& out) {
  if (digest == nullptr || len != kSha256DigestSize) {
    return Status{static_cast<HRESULT>(NTE_INVALID_PARAMETER), "sign_digest"};
  }
  PaddingArgs args{};
  init_padding(padding, args);
  // NCryptSignHash takes a non-const PBYTE but never writes the hash.
  PBYTE hash = const_cast<PBYTE>(reinterpret_cast<const BYTE*>(digest));
  const DWORD hash_len = static_cast<DWORD>(len);

  DWORD size = size_hint;
  if (size == 0) {
    Status st = query_size(key, args, hash, hash_len, size);
    if (!st.ok()) return st;
  }
  for (int resizes = 0;; ++resizes) {
    out.resize(size);
    DWORD written = 0;
    SECURITY_STATUS st = NCryptSignHash(key, args.info, hash, hash_len, out.data(), size, &written, args.flags);
    if (st == 0) {
      out.resize(written);
      return ok_status();
    }
    if (action_of(st) != Action::Resize || resizes >= kMaxResizes) {
      out.clear();
      return Status{st, "NCryptSignHash"};
    }
    // Some providers report the needed size in pcbResult on failure; do not
    // rely on it and ask explicitly.
    Status q = query_size(key, args, hash, hash_len, size);
    if (!q.ok()) {
      out.clear();
      return q;
    }
  }
}

Status sign_digest(NCRYPT_KEY_HANDLE key, const std::uint8_t* digest, std::size_t len, Padding padding,
                   std::vector<std::uint8_t>& out) {
  return sign_digest_sized(key, digest, len, padding, 0, out);
}

}  // namespace entraclaw::cng
