// The one include that gives the core the Win32 crypto surface it calls.
// On Windows (MSVC or mingw-w64) that is the real SDK; everywhere else it is the
// test-only software stand-in, which declares the same names with the same values
// so the core compiles unchanged.
#pragma once

#if defined(_MSC_VER) && !defined(_DISABLE_CONSTEXPR_MUTEX_CONSTRUCTOR)
// CMake sets it PUBLIC on entraclaw_cng_core (native/CMakeLists.txt): a TU
// built without it may crash on its first std::mutex lock when an older
// msvcp140.dll is already loaded in the process.
#error "compile every entraclaw TU with _DISABLE_CONSTEXPR_MUTEX_CONSTRUCTOR (link entraclaw_cng_core)"
#endif

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#include <wincrypt.h>
#include <ncrypt.h>
#include <dpapi.h>
#define ENTRACLAW_BACKEND "cng"
// Newer SDK names mingw-w64's headers lack, from the Windows SDK's ncrypt.h
// (the Key Storage Property Identifiers page does not list these PCP names):
//   NCRYPT_PCP_PLATFORM_TYPE_PROPERTY L"PCP_PLATFORM_TYPE", NCRYPT_PCP_EKCERT_PROPERTY
//   L"PCP_EKCERT" (NTDDI_WIN8 block of PCP provider properties);
//   NCRYPT_PCP_PSS_SALT_SIZE_PROPERTY L"PSS Salt Size" and
//   NCRYPT_TPM_PSS_SALT_SIZE_UNKNOWN 0 / _MAXIMUM 1 / _HASHSIZE 2 (behind
//   NTDDI_VERSION >= NTDDI_WIN10_RS5);
//   NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE 49 (NCryptBuffer types, "for
//   threshold key attestation"). Claim types:
// https://learn.microsoft.com/en-us/windows/win32/api/ncrypt/nf-ncrypt-ncryptcreateclaim
#ifndef NCRYPT_PCP_PSS_SALT_SIZE_PROPERTY
#define NCRYPT_PCP_PSS_SALT_SIZE_PROPERTY L"PSS Salt Size"
#endif
#ifndef NCRYPT_TPM_PSS_SALT_SIZE_UNKNOWN
#define NCRYPT_TPM_PSS_SALT_SIZE_UNKNOWN 0x00000000
#define NCRYPT_TPM_PSS_SALT_SIZE_MAXIMUM 0x00000001
#define NCRYPT_TPM_PSS_SALT_SIZE_HASHSIZE 0x00000002
#endif
#ifndef NCRYPT_CLAIM_AUTHORITY_AND_SUBJECT
#define NCRYPT_CLAIM_AUTHORITY_AND_SUBJECT 0x00000003
#endif
#ifndef NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE
#define NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE 49
#endif
#ifndef NCRYPT_PCP_PLATFORM_TYPE_PROPERTY
#define NCRYPT_PCP_PLATFORM_TYPE_PROPERTY L"PCP_PLATFORM_TYPE"
#endif
#ifndef NCRYPT_PCP_EKCERT_PROPERTY
#define NCRYPT_PCP_EKCERT_PROPERTY L"PCP_EKCERT"
#endif
#else
#include "entraclaw_standin/windows_standin.h"
#define ENTRACLAW_BACKEND "standin"
#endif
