/* Test-only stand-in for the subset of <windows.h>, <wincrypt.h>, <ncrypt.h>
 * and <dpapi.h> that the entraclaw CNG core uses. Same names, same values, same
 * signatures as the Windows SDK, so the core compiles unchanged on Linux and
 * links against libentraclaw_cng_standin (OpenSSL-backed). Never shipped.
 *
 * WCHAR is wchar_t here (32-bit on Linux) so L"..." literals in the core work;
 * the core never assumes sizeof(WCHAR) == 2.
 */
#ifndef ENTRACLAW_STANDIN_WINDOWS_STANDIN_H
#define ENTRACLAW_STANDIN_WINDOWS_STANDIN_H

#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WINAPI
#define ENTRACLAW_STANDIN_API __attribute__((visibility("default")))

/* ---- basic types (windef.h / winnt.h) ---- */
typedef int BOOL;
typedef uint8_t BYTE;
typedef BYTE* PBYTE;
typedef uint16_t WORD;
typedef uint32_t DWORD;
#define MAXDWORD 0xffffffffu
typedef uint32_t ULONG;
typedef int32_t LONG;
typedef LONG HRESULT;
typedef LONG NTSTATUS;
typedef LONG SECURITY_STATUS;
typedef uintptr_t ULONG_PTR;
typedef void VOID;
typedef void* PVOID;
typedef void* LPVOID;
typedef const void* LPCVOID;
typedef void* HLOCAL;
typedef void* HWND;
typedef char* LPSTR;
typedef const char* LPCSTR;
typedef wchar_t WCHAR;
typedef WCHAR* LPWSTR;
typedef const WCHAR* LPCWSTR;

#define TRUE 1
#define FALSE 0

typedef struct _FILETIME {
  DWORD dwLowDateTime;
  DWORD dwHighDateTime;
} FILETIME, *PFILETIME;

typedef struct _SYSTEMTIME {
  WORD wYear;
  WORD wMonth;
  WORD wDayOfWeek;
  WORD wDay;
  WORD wHour;
  WORD wMinute;
  WORD wSecond;
  WORD wMilliseconds;
} SYSTEMTIME, *PSYSTEMTIME;

/* ---- status codes (winerror.h, ntstatus.h); values as in the SDK ---- */
#define ERROR_SUCCESS 0L
#define ERROR_INVALID_DATA 13L
#define ERROR_MORE_DATA 234L
#define S_OK ((HRESULT)0)
#define E_ACCESSDENIED ((HRESULT)0x80070005)
#define E_HANDLE ((HRESULT)0x80070006)
#define E_OUTOFMEMORY ((HRESULT)0x8007000E)
#define E_INVALIDARG ((HRESULT)0x80070057)
#define NTE_BAD_KEY ((HRESULT)0x80090003)
#define NTE_BAD_DATA ((HRESULT)0x80090005)
#define NTE_BAD_SIGNATURE ((HRESULT)0x80090006)
#define NTE_BAD_ALGID ((HRESULT)0x80090008)
#define NTE_BAD_FLAGS ((HRESULT)0x80090009)
#define NTE_BAD_KEY_STATE ((HRESULT)0x8009000B)
#define NTE_BAD_HASH_STATE ((HRESULT)0x8009000C)
#define NTE_NO_KEY ((HRESULT)0x8009000D)
#define NTE_NO_MEMORY ((HRESULT)0x8009000E)
#define NTE_EXISTS ((HRESULT)0x8009000F)
#define NTE_PERM ((HRESULT)0x80090010)
#define NTE_NOT_FOUND ((HRESULT)0x80090011)
#define NTE_BAD_PROVIDER ((HRESULT)0x80090013)
#define NTE_BAD_KEYSET ((HRESULT)0x80090016)
#define NTE_FAIL ((HRESULT)0x80090020)
#define NTE_SILENT_CONTEXT ((HRESULT)0x80090022)
#define NTE_INVALID_HANDLE ((HRESULT)0x80090026)
#define NTE_INVALID_PARAMETER ((HRESULT)0x80090027)
#define NTE_BUFFER_TOO_SMALL ((HRESULT)0x80090028)
#define NTE_NOT_SUPPORTED ((HRESULT)0x80090029)
#define NTE_DEVICE_NOT_READY ((HRESULT)0x80090030)
#define NTE_DEVICE_NOT_FOUND ((HRESULT)0x80090035)
#define NTE_USER_CANCELLED ((HRESULT)0x80090036)
#define CRYPT_E_NOT_FOUND ((HRESULT)0x80092004)
#define CRYPT_E_EXISTS ((HRESULT)0x80092005)
#define CRYPT_E_NO_KEY_PROPERTY ((HRESULT)0x8009200B)
#define SCARD_W_CANCELLED_BY_USER ((HRESULT)0x8010006E)
#define TPM_20_E_HANDLE ((HRESULT)0x8028008B)
#define TPM_E_RETRY ((HRESULT)0x80280800)
#define TPM_E_DOING_SELFTEST ((HRESULT)0x80280802)
#define TPM_E_DEFEND_LOCK_RUNNING ((HRESULT)0x80280803)
#define TPM_20_E_OBJECT_MEMORY ((HRESULT)0x80280902)
#define TPM_20_E_YIELDED ((HRESULT)0x80280908)
#define TPM_20_E_TESTING ((HRESULT)0x8028090A)
#define TPM_20_E_LOCKOUT ((HRESULT)0x80280921)
#define TPM_20_E_RETRY ((HRESULT)0x80280922)
#define TBS_E_SERVICE_NOT_RUNNING ((HRESULT)0x80284008)
#define TBS_E_TOO_MANY_RESOURCES ((HRESULT)0x8028400A)
#define TBS_E_SERVICE_START_PENDING ((HRESULT)0x8028400B)
#define TBS_E_TPM_NOT_FOUND ((HRESULT)0x8028400F)
#define TBS_E_SERVICE_DISABLED ((HRESULT)0x80284010)
#define TBS_E_ACCESS_DENIED ((HRESULT)0x80284012)
#define TPM_E_PCP_BUFFER_TOO_SMALL ((HRESULT)0x80290406)
#define TPM_20_E_AUTH_FAIL ((HRESULT)0x8028008E)
#define TPM_20_E_BAD_AUTH ((HRESULT)0x802800A2)
#define TPM_20_E_KEY_SIZE ((HRESULT)0x80280087)
#define TPM_20_E_CANCELED ((HRESULT)0x80280909)
#define TPM_20_E_NV_RATE ((HRESULT)0x80280920)
#define TBS_E_COMMAND_CANCELED ((HRESULT)0x8028400D)
#define TPM_E_PCP_DEVICE_NOT_READY ((HRESULT)0x80290401)
#define TPM_E_PCP_AUTHENTICATION_FAILED ((HRESULT)0x80290408)
#define TPM_E_PCP_AUTHENTICATION_IGNORED ((HRESULT)0x80290409)
#define TPM_E_PCP_KEY_NOT_AIK ((HRESULT)0x80290419)
#define TPM_E_LOCKED_OUT ((HRESULT)0x8029041B)
#define TPM_E_PCP_IFX_RSA_KEY_CREATION_BLOCKED ((HRESULT)0x8029041F)
#define TPM_E_PCP_KEY_HANDLE_INVALIDATED ((HRESULT)0x80290422)
/* Informational severity: a *positive* HRESULT, so FAILED() would miss it. */
#define TPM_E_PCP_UNSUPPORTED_PSS_SALT ((HRESULT)0x40290423)
#define STATUS_UNSUCCESSFUL ((NTSTATUS)0xC0000001)

/* ---- wincrypt.h ---- */
typedef ULONG_PTR HCRYPTPROV_LEGACY;
typedef ULONG_PTR HCRYPTPROV_OR_NCRYPT_KEY_HANDLE;
typedef void* HCERTSTORE;

typedef struct _CRYPTOAPI_BLOB {
  DWORD cbData;
  BYTE* pbData;
} CRYPT_INTEGER_BLOB, *PCRYPT_INTEGER_BLOB, CRYPT_OBJID_BLOB, CERT_NAME_BLOB, *PCERT_NAME_BLOB, CRYPT_HASH_BLOB,
    *PCRYPT_HASH_BLOB, CRYPT_DATA_BLOB, DATA_BLOB, *PDATA_BLOB;

typedef struct _CRYPT_BIT_BLOB {
  DWORD cbData;
  BYTE* pbData;
  DWORD cUnusedBits;
} CRYPT_BIT_BLOB;

typedef struct _CRYPT_ALGORITHM_IDENTIFIER {
  LPSTR pszObjId;
  CRYPT_OBJID_BLOB Parameters;
} CRYPT_ALGORITHM_IDENTIFIER, *PCRYPT_ALGORITHM_IDENTIFIER;

typedef struct _CERT_PUBLIC_KEY_INFO {
  CRYPT_ALGORITHM_IDENTIFIER Algorithm;
  CRYPT_BIT_BLOB PublicKey;
} CERT_PUBLIC_KEY_INFO;

typedef struct _CERT_EXTENSION {
  LPSTR pszObjId;
  BOOL fCritical;
  CRYPT_OBJID_BLOB Value;
} CERT_EXTENSION, *PCERT_EXTENSION;

typedef struct _CERT_EXTENSIONS {
  DWORD cExtension;
  PCERT_EXTENSION rgExtension;
} CERT_EXTENSIONS, *PCERT_EXTENSIONS;

typedef struct _CERT_INFO {
  DWORD dwVersion;
  CRYPT_INTEGER_BLOB SerialNumber;
  CRYPT_ALGORITHM_IDENTIFIER SignatureAlgorithm;
  CERT_NAME_BLOB Issuer;
  FILETIME NotBefore;
  FILETIME NotAfter;
  CERT_NAME_BLOB Subject;
  CERT_PUBLIC_KEY_INFO SubjectPublicKeyInfo;
  CRYPT_BIT_BLOB IssuerUniqueId;
  CRYPT_BIT_BLOB SubjectUniqueId;
  DWORD cExtension;
  PCERT_EXTENSION rgExtension;
} CERT_INFO, *PCERT_INFO;

typedef struct _CERT_CONTEXT {
  DWORD dwCertEncodingType;
  BYTE* pbCertEncoded;
  DWORD cbCertEncoded;
  PCERT_INFO pCertInfo;
  HCERTSTORE hCertStore;
} CERT_CONTEXT, *PCERT_CONTEXT;
typedef const CERT_CONTEXT* PCCERT_CONTEXT;

typedef struct _CRYPT_KEY_PROV_PARAM {
  DWORD dwParam;
  BYTE* pbData;
  DWORD cbData;
  DWORD dwFlags;
} CRYPT_KEY_PROV_PARAM, *PCRYPT_KEY_PROV_PARAM;

typedef struct _CRYPT_KEY_PROV_INFO {
  LPWSTR pwszContainerName;
  LPWSTR pwszProvName;
  DWORD dwProvType;
  DWORD dwFlags;
  DWORD cProvParam;
  PCRYPT_KEY_PROV_PARAM rgProvParam;
  DWORD dwKeySpec;
} CRYPT_KEY_PROV_INFO, *PCRYPT_KEY_PROV_INFO;

#define X509_ASN_ENCODING 0x00000001
#define PKCS_7_ASN_ENCODING 0x00010000
#define CERT_STORE_PROV_SYSTEM_W ((LPCSTR)10)
#define CERT_SYSTEM_STORE_LOCATION_SHIFT 16
#define CERT_SYSTEM_STORE_CURRENT_USER_ID 1
#define CERT_SYSTEM_STORE_LOCAL_MACHINE_ID 2
#define CERT_SYSTEM_STORE_CURRENT_USER (CERT_SYSTEM_STORE_CURRENT_USER_ID << CERT_SYSTEM_STORE_LOCATION_SHIFT)
#define CERT_SYSTEM_STORE_LOCAL_MACHINE (CERT_SYSTEM_STORE_LOCAL_MACHINE_ID << CERT_SYSTEM_STORE_LOCATION_SHIFT)
#define CERT_STORE_OPEN_EXISTING_FLAG 0x00004000
#define CERT_STORE_READONLY_FLAG 0x00008000
#define CERT_COMPARE_SHIFT 16
#define CERT_COMPARE_ANY 0
#define CERT_COMPARE_SHA1_HASH 1
#define CERT_FIND_ANY (CERT_COMPARE_ANY << CERT_COMPARE_SHIFT)
#define CERT_FIND_SHA1_HASH (CERT_COMPARE_SHA1_HASH << CERT_COMPARE_SHIFT)
#define CERT_FIND_HASH CERT_FIND_SHA1_HASH
#define CERT_STORE_ADD_NEW 1
#define CERT_STORE_ADD_REPLACE_EXISTING 3
#define CERT_KEY_PROV_INFO_PROP_ID 2
#define CERT_NAME_SIMPLE_DISPLAY_TYPE 4
#define CERT_X500_NAME_STR 3
#define CERT_CREATE_SELFSIGN_NO_KEY_INFO 2
#define CERT_NCRYPT_KEY_SPEC 0xFFFFFFFF
#define AT_KEYEXCHANGE 1
#define AT_SIGNATURE 2
#define PROV_RSA_FULL 1
#define CERT_STORE_CTRL_RESYNC 1
#define CERT_STORE_CTRL_AUTO_RESYNC 4
#define CRYPT_MACHINE_KEYSET 0x00000020
#define CERT_STORE_NO_CRYPT_RELEASE_FLAG 0x00000001
#define CRYPT_ACQUIRE_CACHE_FLAG 0x00000001
#define CRYPT_ACQUIRE_SILENT_FLAG 0x00000040
#define CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG 0x00040000
#define szOID_RSA_SHA256RSA "1.2.840.113549.1.1.11"
#define CRYPTPROTECT_UI_FORBIDDEN 0x1

typedef struct _CRYPTPROTECT_PROMPTSTRUCT {
  DWORD cbSize;
  DWORD dwPromptFlags;
  HWND hwndApp;
  LPCWSTR szPrompt;
} CRYPTPROTECT_PROMPTSTRUCT, *PCRYPTPROTECT_PROMPTSTRUCT;

/* ---- ncrypt.h / bcrypt.h ---- */
typedef ULONG_PTR NCRYPT_HANDLE;
typedef ULONG_PTR NCRYPT_PROV_HANDLE;
typedef ULONG_PTR NCRYPT_KEY_HANDLE;

typedef struct _BCRYPT_PKCS1_PADDING_INFO {
  LPCWSTR pszAlgId;
} BCRYPT_PKCS1_PADDING_INFO;

typedef struct _BCRYPT_PSS_PADDING_INFO {
  LPCWSTR pszAlgId;
  ULONG cbSalt;
} BCRYPT_PSS_PADDING_INFO;

#define MS_KEY_STORAGE_PROVIDER L"Microsoft Software Key Storage Provider"
#define MS_PLATFORM_CRYPTO_PROVIDER L"Microsoft Platform Crypto Provider"
#define BCRYPT_SHA256_ALGORITHM L"SHA256"
#define BCRYPT_RSA_ALGORITHM L"RSA"
#define NCRYPT_RSA_ALGORITHM BCRYPT_RSA_ALGORITHM
#define NCRYPT_NAME_PROPERTY L"Name"
#define NCRYPT_UNIQUE_NAME_PROPERTY L"Unique Name"
#define NCRYPT_LENGTH_PROPERTY L"Length"
#define NCRYPT_EXPORT_POLICY_PROPERTY L"Export Policy"
#define NCRYPT_IMPL_TYPE_PROPERTY L"Impl Type"
#define NCRYPT_PROVIDER_HANDLE_PROPERTY L"Provider Handle"
#define NCRYPT_ALLOW_EXPORT_FLAG 0x00000001
#define NCRYPT_ALLOW_PLAINTEXT_EXPORT_FLAG 0x00000002
#define NCRYPT_KEY_USAGE_PROPERTY L"Key Usage"
#define NCRYPT_SECURITY_DESCR_PROPERTY L"Security Descr"
#define NCRYPT_ALLOW_DECRYPT_FLAG 0x00000001
#define NCRYPT_ALLOW_SIGNING_FLAG 0x00000002
#define NCRYPT_ALLOW_KEY_AGREEMENT_FLAG 0x00000004
#define NCRYPT_ALLOW_ALL_USAGES 0x00ffffff
#define NCRYPT_IMPL_HARDWARE_FLAG 0x00000001
#define NCRYPT_IMPL_SOFTWARE_FLAG 0x00000002
#define NCRYPT_PAD_PKCS1_FLAG 0x00000002
#define NCRYPT_PAD_PSS_FLAG 0x00000008
#define NCRYPT_SILENT_FLAG 0x00000040
#define NCRYPT_MACHINE_KEY_FLAG 0x00000020
#define NCRYPT_OVERWRITE_KEY_FLAG 0x00000080
#define NCRYPT_PERSIST_FLAG 0x80000000
#define NCRYPT_PCP_PLATFORM_TYPE_PROPERTY L"PCP_PLATFORM_TYPE"
#define NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE 49
#define NCRYPTBUFFER_VERSION 0
#define NCRYPT_PCP_EKCERT_PROPERTY L"PCP_EKCERT"
#define NCRYPT_PCP_PSS_SALT_SIZE_PROPERTY L"PSS Salt Size"
#define NCRYPT_TPM_PSS_SALT_SIZE_UNKNOWN 0x00000000
#define NCRYPT_TPM_PSS_SALT_SIZE_MAXIMUM 0x00000001
#define NCRYPT_TPM_PSS_SALT_SIZE_HASHSIZE 0x00000002
#define NCRYPT_CLAIM_AUTHORITY_AND_SUBJECT 0x00000003
#define NCRYPT_CLAIM_PLATFORM 0x00010000

typedef struct _BCryptBuffer {
  ULONG cbBuffer;
  ULONG BufferType;
  PVOID pvBuffer;
} BCryptBuffer, NCryptBuffer;

typedef struct _BCryptBufferDesc {
  ULONG ulVersion;
  ULONG cBuffers;
  BCryptBuffer* pBuffers;
} BCryptBufferDesc, NCryptBufferDesc;

/* ---- functions (same signatures as the SDK) ---- */
ENTRACLAW_STANDIN_API DWORD WINAPI GetLastError(void);
ENTRACLAW_STANDIN_API void WINAPI SetLastError(DWORD dwErrCode);
ENTRACLAW_STANDIN_API HLOCAL WINAPI LocalFree(HLOCAL hMem);

ENTRACLAW_STANDIN_API HCERTSTORE WINAPI CertOpenStore(LPCSTR lpszStoreProvider, DWORD dwEncodingType,
                                                      HCRYPTPROV_LEGACY hCryptProv, DWORD dwFlags,
                                                      const void* pvPara);
ENTRACLAW_STANDIN_API BOOL WINAPI CertCloseStore(HCERTSTORE hCertStore, DWORD dwFlags);
ENTRACLAW_STANDIN_API BOOL WINAPI CertControlStore(HCERTSTORE hCertStore, DWORD dwFlags, DWORD dwCtrlType,
                                                   const void* pvCtrlPara);
ENTRACLAW_STANDIN_API PCCERT_CONTEXT WINAPI CertFindCertificateInStore(HCERTSTORE hCertStore,
                                                                       DWORD dwCertEncodingType,
                                                                       DWORD dwFindFlags, DWORD dwFindType,
                                                                       const void* pvFindPara,
                                                                       PCCERT_CONTEXT pPrevCertContext);
ENTRACLAW_STANDIN_API PCCERT_CONTEXT WINAPI CertEnumCertificatesInStore(HCERTSTORE hCertStore,
                                                                        PCCERT_CONTEXT pPrevCertContext);
ENTRACLAW_STANDIN_API PCCERT_CONTEXT WINAPI CertDuplicateCertificateContext(PCCERT_CONTEXT pCertContext);
ENTRACLAW_STANDIN_API BOOL WINAPI CertFreeCertificateContext(PCCERT_CONTEXT pCertContext);
ENTRACLAW_STANDIN_API BOOL WINAPI CertDeleteCertificateFromStore(PCCERT_CONTEXT pCertContext);
ENTRACLAW_STANDIN_API BOOL WINAPI CertAddCertificateContextToStore(HCERTSTORE hCertStore,
                                                                   PCCERT_CONTEXT pCertContext,
                                                                   DWORD dwAddDisposition,
                                                                   PCCERT_CONTEXT* ppStoreContext);
ENTRACLAW_STANDIN_API BOOL WINAPI CertGetCertificateContextProperty(PCCERT_CONTEXT pCertContext, DWORD dwPropId,
                                                                    void* pvData, DWORD* pcbData);
ENTRACLAW_STANDIN_API BOOL WINAPI CertSetCertificateContextProperty(PCCERT_CONTEXT pCertContext, DWORD dwPropId,
                                                                    DWORD dwFlags, const void* pvData);
ENTRACLAW_STANDIN_API DWORD WINAPI CertGetNameStringW(PCCERT_CONTEXT pCertContext, DWORD dwType, DWORD dwFlags,
                                                      void* pvTypePara, LPWSTR pszNameString, DWORD cchNameString);
ENTRACLAW_STANDIN_API BOOL WINAPI CertStrToNameW(DWORD dwCertEncodingType, LPCWSTR pszX500, DWORD dwStrType,
                                                 void* pvReserved, BYTE* pbEncoded, DWORD* pcbEncoded,
                                                 LPCWSTR* ppszError);
ENTRACLAW_STANDIN_API PCCERT_CONTEXT WINAPI CertCreateSelfSignCertificate(
    HCRYPTPROV_OR_NCRYPT_KEY_HANDLE hCryptProvOrNCryptKey, PCERT_NAME_BLOB pSubjectIssuerBlob, DWORD dwFlags,
    PCRYPT_KEY_PROV_INFO pKeyProvInfo, PCRYPT_ALGORITHM_IDENTIFIER pSignatureAlgorithm, PSYSTEMTIME pStartTime,
    PSYSTEMTIME pEndTime, PCERT_EXTENSIONS pExtensions);
ENTRACLAW_STANDIN_API BOOL WINAPI CryptAcquireCertificatePrivateKey(PCCERT_CONTEXT pCert, DWORD dwFlags,
                                                                    void* pvParameters,
                                                                    HCRYPTPROV_OR_NCRYPT_KEY_HANDLE* phCryptProvOrNCryptKey,
                                                                    DWORD* pdwKeySpec, BOOL* pfCallerFreeProvOrNCryptKey);

ENTRACLAW_STANDIN_API SECURITY_STATUS WINAPI NCryptOpenStorageProvider(NCRYPT_PROV_HANDLE* phProvider,
                                                                       LPCWSTR pszProviderName, DWORD dwFlags);
ENTRACLAW_STANDIN_API SECURITY_STATUS WINAPI NCryptOpenKey(NCRYPT_PROV_HANDLE hProvider, NCRYPT_KEY_HANDLE* phKey,
                                                           LPCWSTR pszKeyName, DWORD dwLegacyKeySpec, DWORD dwFlags);
ENTRACLAW_STANDIN_API SECURITY_STATUS WINAPI NCryptCreatePersistedKey(NCRYPT_PROV_HANDLE hProvider,
                                                                      NCRYPT_KEY_HANDLE* phKey, LPCWSTR pszAlgId,
                                                                      LPCWSTR pszKeyName, DWORD dwLegacyKeySpec,
                                                                      DWORD dwFlags);
ENTRACLAW_STANDIN_API SECURITY_STATUS WINAPI NCryptSetProperty(NCRYPT_HANDLE hObject, LPCWSTR pszProperty,
                                                               PBYTE pbInput, DWORD cbInput, DWORD dwFlags);
ENTRACLAW_STANDIN_API SECURITY_STATUS WINAPI NCryptGetProperty(NCRYPT_HANDLE hObject, LPCWSTR pszProperty,
                                                               PBYTE pbOutput, DWORD cbOutput, DWORD* pcbResult,
                                                               DWORD dwFlags);
ENTRACLAW_STANDIN_API SECURITY_STATUS WINAPI NCryptFinalizeKey(NCRYPT_KEY_HANDLE hKey, DWORD dwFlags);
ENTRACLAW_STANDIN_API SECURITY_STATUS WINAPI NCryptDeleteKey(NCRYPT_KEY_HANDLE hKey, DWORD dwFlags);
ENTRACLAW_STANDIN_API SECURITY_STATUS WINAPI NCryptFreeObject(NCRYPT_HANDLE hObject);
ENTRACLAW_STANDIN_API SECURITY_STATUS WINAPI NCryptSignHash(NCRYPT_KEY_HANDLE hKey, VOID* pPaddingInfo,
                                                            PBYTE pbHashValue, DWORD cbHashValue, PBYTE pbSignature,
                                                            DWORD cbSignature, DWORD* pcbResult, DWORD dwFlags);
ENTRACLAW_STANDIN_API SECURITY_STATUS WINAPI NCryptCreateClaim(NCRYPT_KEY_HANDLE hSubjectKey,
                                                               NCRYPT_KEY_HANDLE hAuthorityKey, DWORD dwClaimType,
                                                               NCryptBufferDesc* pParameterList, PBYTE pbClaimBlob,
                                                               DWORD cbClaimBlob, DWORD* pcbResult, DWORD dwFlags);

ENTRACLAW_STANDIN_API BOOL WINAPI CryptProtectData(DATA_BLOB* pDataIn, LPCWSTR szDataDescr,
                                                   DATA_BLOB* pOptionalEntropy, PVOID pvReserved,
                                                   CRYPTPROTECT_PROMPTSTRUCT* pPromptStruct, DWORD dwFlags,
                                                   DATA_BLOB* pDataOut);
ENTRACLAW_STANDIN_API BOOL WINAPI CryptUnprotectData(DATA_BLOB* pDataIn, LPWSTR* ppszDataDescr,
                                                     DATA_BLOB* pOptionalEntropy, PVOID pvReserved,
                                                     CRYPTPROTECT_PROMPTSTRUCT* pPromptStruct, DWORD dwFlags,
                                                     DATA_BLOB* pDataOut);

#ifdef __cplusplus
}
#endif

/* advapi32 security surface (file DACLs, process token): its own header. */
#include "entraclaw_standin/advapi_standin.h"

#endif /* ENTRACLAW_STANDIN_WINDOWS_STANDIN_H */
