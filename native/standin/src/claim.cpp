// NCryptCreateClaim of the stand-in: a TPM 2.0 key attestation claim shaped
// like the Platform Crypto Provider's (NCRYPT_CLAIM_AUTHORITY_AND_SUBJECT with
// an AIK as authority): a header, the TPMS_ATTEST a TPM2_Certify returns, its
// TPMT_SIGNATURE by the AIK, and the key blob holding the key's TPM2B_PUBLIC.
// Structures and constants: TPM 2.0 Library, Part 2 (Structures) -- TPMS_ATTEST
// 10.12.12, TPMS_CERTIFY_INFO 10.12.3, TPMT_PUBLIC 12.2.4, TPMA_OBJECT 8.3,
// TPM_GENERATED_VALUE 6.2 (0xff544347), TPM_ST_ATTEST_CERTIFY 6.9 (0x8017).
// NCryptCreateClaim: https://learn.microsoft.com/en-us/windows/win32/api/ncrypt/nf-ncrypt-ncryptcreateclaim
// documents the call, not the blob. The outer layout (magic 'KADS', platform,
// header size, cbKeyAttest, cbSignature, cbKeyBlob) is the key attestation
// statement of [MS-WCCE] 2.2.2.5; the key blob is PCP_KEY_BLOB_WIN8 ('PCPM',
// 56-byte header, pcpType 2 = TPM 2.0) from Microsoft's PCP sample code, and
// the signature is the AIK's raw RSASSA-PKCS1-v1_5 signature (SHA-1 digest, as
// PCP-made AIKs sign and as validators of these claims check). Only a real TPM
// can confirm the bytes.
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include <cstring>

#include "state.h"

using namespace standin;

namespace {

constexpr uint32_t kTpmGenerated = 0xff544347u;
constexpr uint16_t kStAttestCertify = 0x8017;
constexpr uint16_t kAlgRsa = 0x0001;
constexpr uint16_t kAlgSha1 = 0x0004;
constexpr uint16_t kAlgSha256 = 0x000B;
constexpr uint16_t kAlgNull = 0x0010;
constexpr uint16_t kAlgRsassa = 0x0014;
constexpr uint32_t kFixedTpm = 1u << 1;
constexpr uint32_t kFixedParent = 1u << 4;
constexpr uint32_t kSensitiveDataOrigin = 1u << 5;
constexpr uint32_t kUserWithAuth = 1u << 6;
constexpr uint32_t kRestricted = 1u << 16;
constexpr uint32_t kDecrypt = 1u << 17;
constexpr uint32_t kSign = 1u << 18;
constexpr uint32_t kClaimMagic = 0x5344414Bu;   // 'KADS' little-endian
constexpr uint32_t kKeyBlobMagic = 0x4D504350u;  // 'PCPM' little-endian
constexpr uint32_t kKeyBlobHeader = 56;  // 13 DWORDs, pcrAlgId (u16), padding

using Bytes = std::vector<BYTE>;

void be16(Bytes& b, uint32_t v) {
  b.push_back(static_cast<BYTE>(v >> 8));
  b.push_back(static_cast<BYTE>(v));
}
void be32(Bytes& b, uint32_t v) {
  be16(b, v >> 16);
  be16(b, v & 0xFFFF);
}
void be64(Bytes& b, uint64_t v) {
  be32(b, static_cast<uint32_t>(v >> 32));
  be32(b, static_cast<uint32_t>(v));
}
void le32(Bytes& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<BYTE>(v >> (8 * i)));
}
void tpm2b(Bytes& b, const Bytes& data) {
  be16(b, static_cast<uint32_t>(data.size()));
  b.insert(b.end(), data.begin(), data.end());
}

Bytes modulus_of(EVP_PKEY* key) {
  BIGNUM* n = nullptr;
  Bytes out;
  if (EVP_PKEY_get_bn_param(key, "n", &n) == 1) {
    out.resize(static_cast<size_t>(BN_num_bytes(n)));
    BN_bn2bin(n, out.data());
  }
  BN_free(n);
  return out;
}

// TPMT_PUBLIC of an RSA key: unrestricted signing keys have a NULL scheme
// (the caller picks per signature), AIKs RSASSA with the hash they sign with
// (SHA-1, as PCP-made AIKs).
Bytes tpmt_public(const KeyRecord& r, uint32_t attributes) {
  Bytes b;
  be16(b, kAlgRsa);
  be16(b, kAlgSha256);
  be32(b, attributes);
  tpm2b(b, {});  // authPolicy
  be16(b, kAlgNull);  // symmetric
  if (r.is_aik) {
    be16(b, kAlgRsassa);
    be16(b, kAlgSha1);
  } else {
    be16(b, kAlgNull);
  }
  be16(b, static_cast<uint32_t>(EVP_PKEY_get_bits(r.pkey.get())));
  be32(b, 0);  // exponent 0 = 65537
  tpm2b(b, modulus_of(r.pkey.get()));
  return b;
}

// TPM2B_NAME = nameAlg || H(TPMT_PUBLIC).
Bytes name_of(const Bytes& public_area) {
  Bytes name;
  be16(name, kAlgSha256);
  BYTE digest[SHA256_DIGEST_LENGTH];
  SHA256(public_area.data(), public_area.size(), digest);
  name.insert(name.end(), digest, digest + sizeof(digest));
  return name;
}

uint32_t attributes_of(const KeyRecord& r) {
  if (r.tpma != 0) return r.tpma;
  if (r.is_aik) return kFixedTpm | kFixedParent | kSensitiveDataOrigin | kUserWithAuth | kRestricted | kSign;
  // PCP makes the TPM object from the key usage set before NCryptFinalizeKey:
  // signing -> sign, decrypt or key agreement -> decrypt. Its default usage is
  // generic (both). Only a real TPM's claim can confirm the mapping.
  uint32_t usage = 0;
  if ((r.key_usage & NCRYPT_ALLOW_SIGNING_FLAG) != 0) usage |= kSign;
  if ((r.key_usage & (NCRYPT_ALLOW_DECRYPT_FLAG | NCRYPT_ALLOW_KEY_AGREEMENT_FLAG)) != 0) usage |= kDecrypt;
  return kFixedTpm | kFixedParent | kSensitiveDataOrigin | kUserWithAuth | usage;
}

bool rsa_sign_sha1(EVP_PKEY* key, const Bytes& data, Bytes& sig) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  bool ok = ctx != nullptr && EVP_DigestSignInit(ctx, nullptr, EVP_sha1(), nullptr, key) == 1 &&
            EVP_DigestSign(ctx, nullptr, &len, data.data(), data.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx, sig.data(), &len, data.data(), data.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  return ok;
}

}  // namespace

extern "C" {

int64_t standin_key_tpm_public(const char* provider, const char* container, uint8_t* out, size_t capacity) {
  std::shared_ptr<KeyRecord> record;
  {
    std::lock_guard<std::mutex> lock(state().mu);
    auto it = state().keys.find(std::make_pair(std::string(provider), wide(container)));
    if (it == state().keys.end() || !it->second->pkey || !it->second->hardware) return -1;
    record = it->second;
  }
  Bytes outer;
  tpm2b(outer, tpmt_public(*record, attributes_of(*record)));
  if (out != nullptr && capacity >= outer.size()) std::memcpy(out, outer.data(), outer.size());
  return static_cast<int64_t>(outer.size());
}

SECURITY_STATUS WINAPI NCryptCreateClaim(NCRYPT_KEY_HANDLE subject, NCRYPT_KEY_HANDLE authority, DWORD type,
                                         NCryptBufferDesc* params, PBYTE out, DWORD capacity, DWORD* written, DWORD) {
  if (int32_t st = enter(Fn::NCryptCreateClaim)) return st;
  if (written == nullptr) return NTE_INVALID_PARAMETER;
  if (type != NCRYPT_CLAIM_AUTHORITY_AND_SUBJECT) return NTE_NOT_SUPPORTED;
  std::shared_ptr<KeyRecord> key;
  std::shared_ptr<KeyRecord> aik;
  {
    std::lock_guard<std::mutex> lock(state().mu);
    if (!is_live(subject, Kind::Key)) return NTE_INVALID_HANDLE;
    key = reinterpret_cast<KeyObj*>(subject)->record;
    if (authority == 0 || !is_live(authority, Kind::Key)) return NTE_INVALID_PARAMETER;
    aik = reinterpret_cast<KeyObj*>(authority)->record;
  }
  if (key->deleted) return NTE_BAD_KEYSET;
  if (!key->hardware) return NTE_NOT_SUPPORTED;  // the software KSP cannot attest
  if (!aik->is_aik) return NTE_INVALID_PARAMETER;
  Bytes nonce;
  if (params != nullptr) {
    for (ULONG i = 0; i < params->cBuffers; ++i) {
      if (params->pBuffers[i].BufferType != NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE) return NTE_INVALID_PARAMETER;
      const auto* p = static_cast<const BYTE*>(params->pBuffers[i].pvBuffer);
      nonce.assign(p, p + params->pBuffers[i].cbBuffer);
    }
  }
  // TPM2B_DATA extraData holds at most a digest's worth (64 bytes here).
  if (nonce.size() > 64) return NTE_INVALID_PARAMETER;
  const Bytes key_public = tpmt_public(*key, attributes_of(*key));
  const Bytes aik_public = tpmt_public(*aik, attributes_of(*aik));
  Bytes key_name = name_of(key_public);

  Bytes attest;
  be32(attest, state().claim_tamper == 2 ? 0xff544348u : kTpmGenerated);
  be16(attest, kStAttestCertify);
  tpm2b(attest, name_of(aik_public));  // qualifiedSigner
  tpm2b(attest, nonce);                // extraData
  be64(attest, 123456789);             // clockInfo.clock
  be32(attest, 3);                     // resetCount
  be32(attest, 1);                     // restartCount
  attest.push_back(1);                 // safe
  be64(attest, 0x0001000200030004ull);  // firmwareVersion
  if (state().claim_tamper == 3) key_name.back() ^= 0x01;
  tpm2b(attest, key_name);  // certifyInfo.name
  tpm2b(attest, key_name);  // certifyInfo.qualifiedName (the stand-in keys sit under one parent)

  Bytes signature;
  if (!rsa_sign_sha1(aik->pkey.get(), attest, signature)) return NTE_FAIL;
  if (state().claim_tamper == 4) signature[signature.size() / 2] ^= 0x01;

  Bytes public_2b;
  tpm2b(public_2b, key_public);
  Bytes key_blob;
  le32(key_blob, kKeyBlobMagic);
  le32(key_blob, kKeyBlobHeader);
  le32(key_blob, 2);  // pcpType: PCPTYPE_TPM20
  le32(key_blob, 0);  // flags
  le32(key_blob, static_cast<uint32_t>(public_2b.size()));
  for (int i = 0; i < 8; ++i) le32(key_blob, 0);  // private, migration, policy, PCR parts: none here
  le32(key_blob, kAlgSha256);  // pcrAlgId (u16) + padding to the 56-byte header
  key_blob.insert(key_blob.end(), public_2b.begin(), public_2b.end());

  Bytes claim;
  le32(claim, kClaimMagic);
  le32(claim, 2);  // platform: TPM 2.0
  le32(claim, 24);
  le32(claim, static_cast<uint32_t>(attest.size()));
  le32(claim, static_cast<uint32_t>(signature.size()));
  le32(claim, static_cast<uint32_t>(key_blob.size()));
  claim.insert(claim.end(), attest.begin(), attest.end());
  claim.insert(claim.end(), signature.begin(), signature.end());
  claim.insert(claim.end(), key_blob.begin(), key_blob.end());
  if (state().claim_tamper == 1) claim.resize(claim.size() - 40);

  *written = static_cast<DWORD>(claim.size());
  if (out == nullptr) return 0;
  if (capacity < claim.size()) return NTE_BUFFER_TOO_SMALL;
  std::memcpy(out, claim.data(), claim.size());
  return 0;
}

}  // extern "C"
