// Signing a SHA-256 digest with an NCrypt key handle: the one function every
// caller (the Python module, the C++ test driver, the Wine test exe) shares.
// Free of Python and pybind11 so it builds with any toolchain.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "status.h"
#include "win32.h"

namespace entraclaw::cng {

enum class Padding {
  Pkcs1,  // RSASSA-PKCS1-v1_5, SHA-256 DigestInfo (JWS RS256)
  Pss,    // RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 bytes (JWS PS256)
};

constexpr std::size_t kSha256DigestSize = 32;
constexpr DWORD kPssSaltSize = 32;  // salt length = hash length, as RFC 7518 requires for PS256

// Sign `digest` (SHA-256, 32 bytes) with `key`. Asks NCryptSignHash for the
// signature size first (pbSignature = NULL), then signs; NTE_BUFFER_TOO_SMALL
// and TPM_E_PCP_BUFFER_TOO_SMALL make it re-query and call again (bounded).
// On success `out` holds exactly the signature. The key handle is not freed.
Status sign_digest(NCRYPT_KEY_HANDLE key, const std::uint8_t* digest, std::size_t len, Padding padding,
                   std::vector<std::uint8_t>& out);

// Warm-path variant: when `size_hint` is non-zero, sign straight into a buffer
// of that size (ONE NCryptSignHash call) and fall back to the size query only
// if the provider says the buffer is too small.
Status sign_digest_sized(NCRYPT_KEY_HANDLE key, const std::uint8_t* digest, std::size_t len, Padding padding,
                         DWORD size_hint, std::vector<std::uint8_t>& out);

}  // namespace entraclaw::cng
