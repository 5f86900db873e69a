// Every HRESULT the signer recognises, in ONE table: SDK name, numeric value,
// the error category Python maps to an exception class, and what the core does
// about it before giving up (re-acquire the key, retry with backoff, resize the
// output buffer, or nothing).
//
// Values are written out here rather than taken from the SDK headers because
// several (TPM_20_E_*, TBS_E_ACCESS_DENIED, TBS_E_TOO_MANY_RESOURCES,
// TPM_E_PCP_*) are missing from mingw-w64's winerror.h. status.cpp
// static_asserts each row against the SDK macro wherever the SDK defines it.
//
// Columns: X(SDK name, value, Category, Action)
#pragma once

#define ENTRACLAW_STATUS_TABLE(X)                                          \
  /* certificate lookup */                                                 \
  X(CRYPT_E_NOT_FOUND,           0x80092004u, NotFound,        None)       \
  /* the key behind the certificate is gone (deleted out of band) */       \
  X(NTE_BAD_KEYSET,              0x80090016u, KeyMissing,      Reacquire)  \
  X(NTE_NO_KEY,                  0x8009000Du, KeyMissing,      None)       \
  X(CRYPT_E_NO_KEY_PROPERTY,     0x8009200Bu, KeyMissing,      None)       \
  /* a cached handle went stale (provider restart, TPM reset) */           \
  X(NTE_INVALID_HANDLE,          0x80090026u, StaleHandle,     Reacquire)  \
  X(TPM_20_E_HANDLE,             0x8028008Bu, StaleHandle,     Reacquire)  \
  /* no room for another key or handle */                                  \
  X(NTE_NO_MEMORY,               0x8009000Eu, SlotsExhausted,  None)       \
  X(TBS_E_TOO_MANY_RESOURCES,    0x8028400Au, SlotsExhausted,  None)       \
  X(TPM_20_E_OBJECT_MEMORY,      0x80280902u, SlotsExhausted,  None)       \
  /* dictionary-attack lockout: retrying makes it worse, never retried */  \
  X(TPM_20_E_LOCKOUT,            0x80280921u, LockedOut,       None)       \
  X(TPM_E_DEFEND_LOCK_RUNNING,   0x80280803u, LockedOut,       None)       \
  /* no TPM, or TBS not running */                                         \
  X(TBS_E_TPM_NOT_FOUND,         0x8028400Fu, TpmUnavailable,  None)       \
  X(TBS_E_SERVICE_NOT_RUNNING,   0x80284008u, TpmUnavailable,  None)       \
  X(TBS_E_SERVICE_DISABLED,      0x80284010u, TpmUnavailable,  None)       \
  X(NTE_DEVICE_NOT_FOUND,        0x80090035u, TpmUnavailable,  None)       \
  /* the key wants UI that a silent agent cannot show */                   \
  X(NTE_SILENT_CONTEXT,          0x80090022u, UserInteraction, None)       \
  X(NTE_USER_CANCELLED,          0x80090036u, UserInteraction, None)       \
  X(SCARD_W_CANCELLED_BY_USER,   0x8010006Eu, UserInteraction, None)       \
  /* ACL or TBS policy */                                                  \
  X(NTE_PERM,                    0x80090010u, AccessDenied,    None)       \
  X(TBS_E_ACCESS_DENIED,         0x80284012u, AccessDenied,    None)       \
  X(E_ACCESSDENIED,              0x80070005u, AccessDenied,    None)       \
  /* device busy or self-testing: bounded retry with backoff */            \
  X(NTE_BAD_HASH_STATE,          0x8009000Cu, Transient,       Retry)      \
  X(TPM_E_RETRY,                 0x80280800u, Transient,       Retry)      \
  X(TPM_20_E_RETRY,              0x80280922u, Transient,       Retry)      \
  X(TPM_20_E_YIELDED,            0x80280908u, Transient,       Retry)      \
  X(TPM_20_E_TESTING,            0x8028090Au, Transient,       Retry)      \
  X(TPM_E_DOING_SELFTEST,        0x80280802u, Transient,       Retry)      \
  X(TBS_E_SERVICE_START_PENDING, 0x8028400Bu, Transient,       Retry)      \
  X(NTE_DEVICE_NOT_READY,        0x80090030u, Transient,       Retry)      \
  /* NTSTATUS some providers leak through NCrypt unchanged */              \
  X(STATUS_UNSUCCESSFUL,         0xC0000001u, Transient,       Retry)      \
  /* output buffer too small: query the size and call again */             \
  X(NTE_BUFFER_TOO_SMALL,        0x80090028u, BufferTooSmall,  Resize)     \
  X(TPM_E_PCP_BUFFER_TOO_SMALL,  0x80290406u, BufferTooSmall,  Resize)     \
  /* DPAPI: wrong entropy, tampered or foreign blob */                     \
  X(ERROR_INVALID_DATA,          0x8007000Du, InvalidData,     None)       \
  X(NTE_BAD_KEY_STATE,           0x8009000Bu, InvalidData,     None)       \
  /* named for readable messages; no special handling */                   \
  X(NTE_BAD_KEY,                 0x80090003u, Other,           None)       \
  X(NTE_BAD_DATA,                0x80090005u, Other,           None)       \
  X(NTE_BAD_FLAGS,               0x80090009u, Other,           None)       \
  X(NTE_EXISTS,                  0x8009000Fu, Other,           None)       \
  X(NTE_NOT_FOUND,               0x80090011u, Other,           None)       \
  X(NTE_INVALID_PARAMETER,       0x80090027u, Other,           None)       \
  X(NTE_NOT_SUPPORTED,           0x80090029u, Other,           None)       \
  X(CRYPT_E_EXISTS,              0x80092005u, Other,           None)       \
  X(E_INVALIDARG,                0x80070057u, Other,           None)       \
  X(E_OUTOFMEMORY,               0x8007000Eu, Other,           None)
