// Every HRESULT the signer recognises, in ONE table: SDK name, numeric value,
// the error category Python maps to an exception class, and what the core does
// about it before giving up (re-acquire the key, retry with backoff, resize the
// output buffer, or nothing).
//
// Values are written out here rather than taken from the SDK headers because
// several (TPM_20_E_*, TBS_E_*, TPM_E_PCP_*) are missing from mingw-w64's
// winerror.h. status.cpp static_asserts each row against the SDK macro
// wherever the SDK defines it. Names and values: winerror.h of the Windows SDK
// (FACILITY_TPM_SOFTWARE 0x29 = PCP/TBS, FACILITY_TPM_SERVICES 0x28 = TPM
// response codes), https://learn.microsoft.com/en-us/windows/win32/com/com-error-codes-4
//
// A retry is listed only where waiting can change the answer: the TPM said
// "busy / try again / self-test running / cancelled". Authorization failures
// are never retried because every failed attempt counts toward the TPM's
// dictionary-attack lockout.
//
// Columns: X(SDK name, value, Category, Action)
#pragma once

#define ENTRACLAW_STATUS_TABLE(X)                                                     \
  /* certificate lookup */                                                            \
  X(CRYPT_E_NOT_FOUND,                      0x80092004u, NotFound,        None)       \
  /* the key behind the certificate is gone (deleted out of band) */                  \
  X(NTE_BAD_KEYSET,                         0x80090016u, KeyMissing,      Reacquire)  \
  X(NTE_NO_KEY,                             0x8009000Du, KeyMissing,      None)       \
  X(CRYPT_E_NO_KEY_PROPERTY,                0x8009200Bu, KeyMissing,      None)       \
  /* a cached handle went stale (provider restart, TPM reset, PCP key cache) */      \
  X(NTE_INVALID_HANDLE,                     0x80090026u, StaleHandle,     Reacquire)  \
  X(TPM_20_E_HANDLE,                        0x8028008Bu, StaleHandle,     Reacquire)  \
  X(TPM_E_PCP_KEY_HANDLE_INVALIDATED,       0x80290422u, StaleHandle,     Reacquire)  \
  /* PCP: the handle it was given is not (or no longer) one of its own, and */       \
  /* the key object is not loaded in the TPM (evicted, TPM reset): a fresh   */       \
  /* NCryptOpenKey reloads it from the PCP key file (issue 14)               */       \
  X(TPM_E_PCP_INVALID_HANDLE,               0x80290402u, StaleHandle,     Reacquire)  \
  X(TPM_E_KEY_NOT_LOADED,                   0x8029040Fu, StaleHandle,     Reacquire)  \
  /* an allocation failed in the provider: not a full TPM */                          \
  X(NTE_NO_MEMORY,                          0x8009000Eu, OutOfMemory,     None)       \
  /* no room for another key or handle in the TPM / TBS */                            \
  X(TBS_E_TOO_MANY_RESOURCES,               0x8028400Au, SlotsExhausted,  None)       \
  X(TPM_20_E_OBJECT_MEMORY,                 0x80280902u, SlotsExhausted,  None)       \
  /* dictionary-attack lockout: retrying makes it worse, never retried */             \
  X(TPM_20_E_LOCKOUT,                       0x80280921u, LockedOut,       None)       \
  X(TPM_E_DEFEND_LOCK_RUNNING,              0x80280803u, LockedOut,       None)       \
  X(TPM_E_LOCKED_OUT,                       0x8029041Bu, LockedOut,       None)       \
  /* PCP ignored the authorization to mitigate a dictionary attack */                \
  X(TPM_E_PCP_AUTHENTICATION_IGNORED,       0x80290409u, LockedOut,       None)       \
  /* wrong authorization: each one counts toward lockout, never retried */           \
  X(TPM_E_PCP_AUTHENTICATION_FAILED,        0x80290408u, AuthFailed,      None)       \
  X(TPM_20_E_AUTH_FAIL,                     0x8028008Eu, AuthFailed,      None)       \
  X(TPM_20_E_BAD_AUTH,                      0x802800A2u, AuthFailed,      None)       \
  /* no TPM, TBS not running, TPM not provisioned: persistent, not retried */        \
  X(TBS_E_TPM_NOT_FOUND,                    0x8028400Fu, TpmUnavailable,  None)       \
  X(TBS_E_SERVICE_NOT_RUNNING,              0x80284008u, TpmUnavailable,  None)       \
  X(TBS_E_SERVICE_DISABLED,                 0x80284010u, TpmUnavailable,  None)       \
  X(NTE_DEVICE_NOT_FOUND,                   0x80090035u, TpmUnavailable,  None)       \
  X(NTE_DEVICE_NOT_READY,                   0x80090030u, TpmUnavailable,  None)       \
  X(TPM_E_PCP_DEVICE_NOT_READY,             0x80290401u, TpmUnavailable,  None)       \
  /* Windows refuses RSA key creation on Infineon TPMs with the ROCA flaw */         \
  X(TPM_E_PCP_IFX_RSA_KEY_CREATION_BLOCKED, 0x8029041Fu, TpmVulnerable,   None)       \
  /* the key wants UI that a silent agent cannot show */                              \
  X(NTE_SILENT_CONTEXT,                     0x80090022u, UserInteraction, None)       \
  X(NTE_USER_CANCELLED,                     0x80090036u, UserInteraction, None)       \
  X(SCARD_W_CANCELLED_BY_USER,              0x8010006Eu, UserInteraction, None)       \
  /* ACL or TBS policy */                                                             \
  X(NTE_PERM,                               0x80090010u, AccessDenied,    None)       \
  X(TBS_E_ACCESS_DENIED,                    0x80284012u, AccessDenied,    None)       \
  X(E_ACCESSDENIED,                         0x80070005u, AccessDenied,    None)       \
  /* device busy, self-testing, rate-limiting NV or cancelled: bounded retry */      \
  X(TPM_E_RETRY,                            0x80280800u, Transient,       Retry)      \
  X(TPM_20_E_RETRY,                         0x80280922u, Transient,       Retry)      \
  X(TPM_20_E_YIELDED,                       0x80280908u, Transient,       Retry)      \
  X(TPM_20_E_TESTING,                       0x8028090Au, Transient,       Retry)      \
  X(TPM_E_DOING_SELFTEST,                   0x80280802u, Transient,       Retry)      \
  X(TBS_E_SERVICE_START_PENDING,            0x8028400Bu, Transient,       Retry)      \
  X(TPM_20_E_NV_RATE,                       0x80280920u, Transient,       Retry)      \
  X(TPM_20_E_CANCELED,                      0x80280909u, Transient,       Retry)      \
  X(TBS_E_COMMAND_CANCELED,                 0x8028400Du, Transient,       Retry)      \
  /* NTSTATUS the software KSP leaks through NCrypt unchanged, intermittently, */    \
  /* from NCryptSignHash / NCryptDecrypt (dotnet/runtime 30289, 36381, 29683;   */    \
  /* .NET retries it once since dotnet/corefx PR 41300). Not documented on any  */    \
  /* NCrypt page, so the decision rests on that evidence: retried (bounded), and */   \
  /* a TPM creation that still fails with it does not become a software key.    */    \
  X(STATUS_UNSUCCESSFUL,                    0xC0000001u, Transient,       Retry)      \
  /* a TPM before spec 1.16 makes PSS only with the maximum salt (a *positive*  */   \
  /* HRESULT: FAILED() misses it); PS256 needs salt = hash length */                 \
  X(TPM_E_PCP_UNSUPPORTED_PSS_SALT,         0x40290423u, PssUnsupported,  None)       \
  /* the TPM cannot make a key of that size */                                        \
  X(TPM_20_E_KEY_SIZE,                      0x80280087u, Unsupported,     None)       \
  /* output buffer too small: query the size and call again */                        \
  X(NTE_BUFFER_TOO_SMALL,                   0x80090028u, BufferTooSmall,  Resize)     \
  X(TPM_E_PCP_BUFFER_TOO_SMALL,             0x80290406u, BufferTooSmall,  Resize)     \
  /* DPAPI: wrong entropy, tampered or foreign blob */                                \
  X(ERROR_INVALID_DATA,                     0x8007000Du, InvalidData,     None)       \
  X(NTE_BAD_KEY_STATE,                      0x8009000Bu, InvalidData,     None)       \
  /* named for readable messages; no special handling. NTE_BAD_HASH_STATE is */      \
  /* a hash object used in the wrong state (a caller bug), not TPM contention. */     \
  X(NTE_BAD_HASH_STATE,                     0x8009000Cu, Other,           None)       \
  X(NTE_BAD_KEY,                            0x80090003u, Other,           None)       \
  X(NTE_BAD_DATA,                           0x80090005u, Other,           None)       \
  X(NTE_BAD_FLAGS,                          0x80090009u, Other,           None)       \
  X(NTE_EXISTS,                             0x8009000Fu, Other,           None)       \
  X(NTE_NOT_FOUND,                          0x80090011u, Other,           None)       \
  X(NTE_BAD_PROVIDER,                       0x80090013u, Other,           None)       \
  X(NTE_INVALID_PARAMETER,                  0x80090027u, Other,           None)       \
  X(NTE_NOT_SUPPORTED,                      0x80090029u, Other,           None)       \
  X(TPM_E_PCP_KEY_NOT_AIK,                  0x80290419u, Other,           None)       \
  X(CRYPT_E_EXISTS,                         0x80092005u, Other,           None)       \
  X(E_INVALIDARG,                           0x80070057u, Other,           None)       \
  X(E_OUTOFMEMORY,                          0x8007000Eu, Other,           None)       \
  /* a BOOL API failed with GetLastError() == 0 (hresult_from_last_error) */          \
  X(E_FAIL,                                 0x80004005u, Other,           None)
