/* Test-only stand-in for the advapi32 security surface the core's
 * file_security.cpp uses: process token, SIDs, ACLs, named security info.
 * Same names, values, struct layouts and signatures as <winnt.h>,
 * <securitybaseapi.h>, <aclapi.h> and <sddl.h>. Included by windows_standin.h;
 * never include it directly. Never shipped.
 */
#ifndef ENTRACLAW_STANDIN_ADVAPI_STANDIN_H
#define ENTRACLAW_STANDIN_ADVAPI_STANDIN_H

#ifdef __cplusplus
extern "C" {
#endif

typedef void* HANDLE;
typedef HANDLE* PHANDLE;
typedef DWORD* PDWORD;
typedef void* PSID;
typedef DWORD ACCESS_MASK;
typedef DWORD SECURITY_INFORMATION;
typedef WORD SECURITY_DESCRIPTOR_CONTROL;
typedef WORD* PSECURITY_DESCRIPTOR_CONTROL;
typedef void* PSECURITY_DESCRIPTOR;

/* Win32 errors (winerror.h) the security calls return. */
#define ERROR_FILE_NOT_FOUND 2L
#define ERROR_PATH_NOT_FOUND 3L
#define ERROR_ACCESS_DENIED 5L
#define ERROR_INVALID_HANDLE 6L
#define ERROR_NOT_ENOUGH_MEMORY 8L
#define ERROR_INVALID_PARAMETER 87L
#define ERROR_INSUFFICIENT_BUFFER 122L
#define ERROR_INVALID_OWNER 1307L
#define ERROR_PRIVILEGE_NOT_HELD 1314L
#define ERROR_NONE_MAPPED 1332L
#define ERROR_INVALID_ACL 1336L
#define ERROR_INVALID_SID 1337L
#define ERROR_INVALID_SECURITY_DESCR 1338L
#define ERROR_ALLOTTED_SPACE_EXCEEDED 1344L

/* ---- SIDs (winnt.h) ---- */
typedef struct _SID_IDENTIFIER_AUTHORITY {
  BYTE Value[6];
} SID_IDENTIFIER_AUTHORITY, *PSID_IDENTIFIER_AUTHORITY;

typedef struct _SID {
  BYTE Revision;
  BYTE SubAuthorityCount;
  SID_IDENTIFIER_AUTHORITY IdentifierAuthority;
  DWORD SubAuthority[1];
} SID;

#define SID_REVISION 1
#define SID_MAX_SUB_AUTHORITIES 15
#define SECURITY_MAX_SID_SIZE (sizeof(SID) - sizeof(DWORD) + (SID_MAX_SUB_AUTHORITIES * sizeof(DWORD)))

typedef struct _SID_AND_ATTRIBUTES {
  PSID Sid;
  DWORD Attributes;
} SID_AND_ATTRIBUTES;

typedef struct _TOKEN_USER {
  SID_AND_ATTRIBUTES User;
} TOKEN_USER, *PTOKEN_USER;

typedef enum _TOKEN_INFORMATION_CLASS { TokenUser = 1, TokenGroups = 2, TokenOwner = 4 } TOKEN_INFORMATION_CLASS;

typedef enum _SID_NAME_USE {
  SidTypeUser = 1,
  SidTypeGroup,
  SidTypeDomain,
  SidTypeAlias,
  SidTypeWellKnownGroup,
  SidTypeDeletedAccount,
  SidTypeInvalid,
  SidTypeUnknown,
  SidTypeComputer,
  SidTypeLabel,
  SidTypeLogonSession
} SID_NAME_USE, *PSID_NAME_USE;

/* Only the members the core compares against; values as in winnt.h. */
typedef enum _WELL_KNOWN_SID_TYPE {
  WinWorldSid = 1,
  WinBuiltinAdministratorsSid = 26,
  WinLocalSystemSid = 22,
  WinLocalServiceSid = 23,
  WinNetworkServiceSid = 24
} WELL_KNOWN_SID_TYPE;

#define TOKEN_QUERY 0x0008

/* ---- ACLs and ACEs ---- */
typedef struct _ACL {
  BYTE AclRevision;
  BYTE Sbz1;
  WORD AclSize;
  WORD AceCount;
  WORD Sbz2;
} ACL, *PACL;

typedef struct _ACE_HEADER {
  BYTE AceType;
  BYTE AceFlags;
  WORD AceSize;
} ACE_HEADER, *PACE_HEADER;

typedef struct _ACCESS_ALLOWED_ACE {
  ACE_HEADER Header;
  ACCESS_MASK Mask;
  DWORD SidStart;
} ACCESS_ALLOWED_ACE, *PACCESS_ALLOWED_ACE;

typedef struct _ACCESS_DENIED_ACE {
  ACE_HEADER Header;
  ACCESS_MASK Mask;
  DWORD SidStart;
} ACCESS_DENIED_ACE, *PACCESS_DENIED_ACE;

#define ACL_REVISION 2
#define ACCESS_ALLOWED_ACE_TYPE 0x0
#define ACCESS_DENIED_ACE_TYPE 0x1
#define SYSTEM_AUDIT_ACE_TYPE 0x2
#define ACCESS_ALLOWED_CALLBACK_ACE_TYPE 0x9
#define ACCESS_DENIED_CALLBACK_ACE_TYPE 0xA
#define OBJECT_INHERIT_ACE 0x01
#define CONTAINER_INHERIT_ACE 0x02
#define NO_PROPAGATE_INHERIT_ACE 0x04
#define INHERIT_ONLY_ACE 0x08
#define INHERITED_ACE 0x10
#define VALID_INHERIT_FLAGS 0x1F

#define DELETE 0x00010000
#define READ_CONTROL 0x00020000
#define WRITE_DAC 0x00040000
#define WRITE_OWNER 0x00080000
#define SYNCHRONIZE 0x00100000
#define STANDARD_RIGHTS_REQUIRED 0x000F0000
#define GENERIC_ALL 0x10000000
#define GENERIC_READ 0x80000000
#define FILE_ALL_ACCESS (STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0x1FF)

/* ---- security descriptors ---- */
#define SECURITY_DESCRIPTOR_REVISION 1
#define SE_OWNER_DEFAULTED 0x0001
#define SE_GROUP_DEFAULTED 0x0002
#define SE_DACL_PRESENT 0x0004
#define SE_DACL_DEFAULTED 0x0008
#define SE_DACL_AUTO_INHERITED 0x0400
#define SE_DACL_PROTECTED 0x1000
#define SE_SELF_RELATIVE 0x8000

/* The self-relative layout (winnt.h): offsets from the start, 0 = absent. */
typedef struct _SECURITY_DESCRIPTOR_RELATIVE {
  BYTE Revision;
  BYTE Sbz1;
  SECURITY_DESCRIPTOR_CONTROL Control;
  DWORD Owner;
  DWORD Group;
  DWORD Sacl;
  DWORD Dacl;
} SECURITY_DESCRIPTOR_RELATIVE, *PISECURITY_DESCRIPTOR_RELATIVE;

#define OWNER_SECURITY_INFORMATION 0x00000001L
#define GROUP_SECURITY_INFORMATION 0x00000002L
#define DACL_SECURITY_INFORMATION 0x00000004L
#define SACL_SECURITY_INFORMATION 0x00000008L
#define UNPROTECTED_DACL_SECURITY_INFORMATION 0x20000000L
#define PROTECTED_DACL_SECURITY_INFORMATION 0x80000000L

typedef enum _SE_OBJECT_TYPE { SE_UNKNOWN_OBJECT_TYPE = 0, SE_FILE_OBJECT = 1 } SE_OBJECT_TYPE;

/* ---- functions (same signatures as the SDK) ---- */
ENTRACLAW_STANDIN_API HANDLE WINAPI GetCurrentProcess(void);
ENTRACLAW_STANDIN_API BOOL WINAPI OpenProcessToken(HANDLE ProcessHandle, DWORD DesiredAccess, PHANDLE TokenHandle);
ENTRACLAW_STANDIN_API BOOL WINAPI GetTokenInformation(HANDLE TokenHandle, TOKEN_INFORMATION_CLASS TokenInformationClass,
                                                     LPVOID TokenInformation, DWORD TokenInformationLength,
                                                     PDWORD ReturnLength);
ENTRACLAW_STANDIN_API BOOL WINAPI CloseHandle(HANDLE hObject);

ENTRACLAW_STANDIN_API BOOL WINAPI IsValidSid(PSID pSid);
ENTRACLAW_STANDIN_API DWORD WINAPI GetLengthSid(PSID pSid);
ENTRACLAW_STANDIN_API BOOL WINAPI IsWellKnownSid(PSID pSid, WELL_KNOWN_SID_TYPE WellKnownSidType);
ENTRACLAW_STANDIN_API BOOL WINAPI ConvertSidToStringSidW(PSID Sid, LPWSTR* StringSid);
ENTRACLAW_STANDIN_API BOOL WINAPI LookupAccountSidW(LPCWSTR lpSystemName, PSID Sid, LPWSTR Name, PDWORD cchName,
                                                   LPWSTR ReferencedDomainName, PDWORD cchReferencedDomainName,
                                                   PSID_NAME_USE peUse);

ENTRACLAW_STANDIN_API BOOL WINAPI LookupAccountNameW(LPCWSTR lpSystemName, LPCWSTR lpAccountName, PSID Sid,
                                                    PDWORD cbSid, LPWSTR ReferencedDomainName,
                                                    PDWORD cchReferencedDomainName, PSID_NAME_USE peUse);

ENTRACLAW_STANDIN_API BOOL WINAPI InitializeAcl(PACL pAcl, DWORD nAclLength, DWORD dwAclRevision);
ENTRACLAW_STANDIN_API BOOL WINAPI AddAccessAllowedAceEx(PACL pAcl, DWORD dwAceRevision, DWORD AceFlags,
                                                       DWORD AccessMask, PSID pSid);
ENTRACLAW_STANDIN_API BOOL WINAPI IsValidAcl(PACL pAcl);
ENTRACLAW_STANDIN_API BOOL WINAPI GetAce(PACL pAcl, DWORD dwAceIndex, LPVOID* pAce);

ENTRACLAW_STANDIN_API BOOL WINAPI GetSecurityDescriptorControl(PSECURITY_DESCRIPTOR pSecurityDescriptor,
                                                              PSECURITY_DESCRIPTOR_CONTROL pControl,
                                                              PDWORD lpdwRevision);
ENTRACLAW_STANDIN_API DWORD WINAPI SetNamedSecurityInfoW(LPWSTR pObjectName, SE_OBJECT_TYPE ObjectType,
                                                        SECURITY_INFORMATION SecurityInfo, PSID psidOwner,
                                                        PSID psidGroup, PACL pDacl, PACL pSacl);
ENTRACLAW_STANDIN_API DWORD WINAPI GetNamedSecurityInfoW(LPCWSTR pObjectName, SE_OBJECT_TYPE ObjectType,
                                                        SECURITY_INFORMATION SecurityInfo, PSID* ppsidOwner,
                                                        PSID* ppsidGroup, PACL* ppDacl, PACL* ppSacl,
                                                        PSECURITY_DESCRIPTOR* ppSecurityDescriptor);

#ifdef __cplusplus
}
#endif

#endif /* ENTRACLAW_STANDIN_ADVAPI_STANDIN_H */
