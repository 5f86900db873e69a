// The one include that gives the core the Win32 crypto surface it calls.
// On Windows (MSVC or mingw-w64) that is the real SDK; everywhere else it is the
// test-only software stand-in, which declares the same names with the same values
// so the core compiles unchanged.
#pragma once

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
// Newer SDK names mingw-w64's headers lack. Values from the Windows SDK
// ncrypt.h; "PSS Salt Size" and its values:
// https://learn.microsoft.com/en-us/windows/win32/seccng/key-storage-property-identifiers
// (NCRYPT_PCP_PSS_SALT_SIZE_PROPERTY; NCRYPT_TPM_PSS_SALT_SIZE_UNKNOWN 0,
// _MAXIMUM 1, _HASHSIZE 2); claim types from
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
#else
#include "entraclaw_standin/windows_standin.h"
#define ENTRACLAW_BACKEND "standin"
#endif
