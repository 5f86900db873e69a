#include "file_security.h"

#include <cstddef>
#include <cstring>
#include <cwchar>
#include <utility>

#include "text.h"

#ifdef _WIN32
#include <aclapi.h>
#include <sddl.h>
#endif

namespace entraclaw::cng {
namespace {

// WELL_KNOWN_SID_TYPE values the kind detection relies on (winnt.h). The
// mingw-w64 cross build checks them against the real SDK header.
static_assert(WinLocalSystemSid == 22, "WinLocalSystemSid differs from winnt.h");
static_assert(WinLocalServiceSid == 23, "WinLocalServiceSid differs from winnt.h");
static_assert(WinNetworkServiceSid == 24, "WinNetworkServiceSid differs from winnt.h");
static_assert(FILE_ALL_ACCESS == 0x001F01FF, "FILE_ALL_ACCESS differs from winnt.h");

Status last_error(const char* api) { return Status{hresult_from_last_error(GetLastError()), api}; }
Status win32_error(DWORD error, const char* api) { return Status{hresult_from_last_error(error), api}; }

// Closes the token on every path out of current_user_sid.
struct TokenHandle {
  HANDLE handle = nullptr;
  ~TokenHandle() {
    if (handle != nullptr) CloseHandle(handle);
  }
};

// Frees what GetNamedSecurityInfoW / ConvertSidToStringSidW allocated.
struct LocalMemory {
  void* memory = nullptr;
  ~LocalMemory() {
    if (memory != nullptr) LocalFree(memory);
  }
};

// The errors after which setting the owner is dropped and the DACL alone is
// applied: no WRITE_OWNER on the file, or a SID the token may not assign.
// The DACL still closes the file to everyone else; the owner keeps its
// implicit READ_CONTROL | WRITE_DAC, which read_dacl reports.
bool owner_refused(DWORD error) {
  return error == ERROR_ACCESS_DENIED || error == ERROR_INVALID_OWNER || error == ERROR_PRIVILEGE_NOT_HELD;
}

bool has_plain_sid(std::uint8_t ace_type) {
  // ACE types laid out as header, mask, SID (the callback variants append
  // application data after the SID). Object ACEs put GUIDs first.
  return ace_type == ACCESS_ALLOWED_ACE_TYPE || ace_type == ACCESS_DENIED_ACE_TYPE ||
         ace_type == SYSTEM_AUDIT_ACE_TYPE || ace_type == ACCESS_ALLOWED_CALLBACK_ACE_TYPE ||
         ace_type == ACCESS_DENIED_CALLBACK_ACE_TYPE;
}

}  // namespace

// Bytes of a SID whose header sits at `sid`, or 0 when it does not fit in
// `available` bytes. Reads only the fixed 8-byte header to find out.
std::size_t sid_length_within(const std::uint8_t* sid, std::size_t available) {
  constexpr std::size_t kHeader = 8;  // revision, count, 6-byte authority
  if (available < kHeader) return 0;
  const std::size_t length = kHeader + 4u * sid[1];
  return length <= available ? length : 0;
}

const char* account_kind_name(AccountKind kind) {
  switch (kind) {
    case AccountKind::User: return "user";
    case AccountKind::LocalSystem: return "LocalSystem";
    case AccountKind::LocalService: return "LocalService";
    case AccountKind::NetworkService: return "NetworkService";
  }
  return "user";
}

Status current_user_sid(std::vector<std::uint8_t>& sid) {
  // The process token, not a thread token: entraclaw never impersonates, and
  // the files belong to the account the agent process runs as.
  TokenHandle token;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token.handle)) return last_error("OpenProcessToken");
  DWORD size = 0;
  if (!GetTokenInformation(token.handle, TokenUser, nullptr, 0, &size)) {
    const DWORD error = GetLastError();
    if (error != ERROR_INSUFFICIENT_BUFFER) return win32_error(error, "GetTokenInformation");
  }
  if (size < sizeof(TOKEN_USER)) return win32_error(ERROR_INVALID_PARAMETER, "GetTokenInformation");
  // operator new storage: aligned for the PSID inside TOKEN_USER.
  std::vector<std::uint8_t> buffer(size);
  if (!GetTokenInformation(token.handle, TokenUser, buffer.data(), size, &size)) {
    return last_error("GetTokenInformation");
  }
  const auto* user = reinterpret_cast<const TOKEN_USER*>(buffer.data());
  PSID raw = user->User.Sid;
  if (raw == nullptr || !IsValidSid(raw)) return win32_error(ERROR_INVALID_SID, "IsValidSid");
  const DWORD length = GetLengthSid(raw);
  const auto* bytes = static_cast<const std::uint8_t*>(raw);
  sid.assign(bytes, bytes + length);
  return ok_status();
}

Status build_single_ace_acl(const std::vector<std::uint8_t>& sid, ACCESS_MASK mask, DWORD ace_flags,
                            std::vector<std::uint8_t>& acl) {
  PSID psid = const_cast<std::uint8_t*>(sid.data());
  if (sid.empty() || !IsValidSid(psid)) return win32_error(ERROR_INVALID_SID, "IsValidSid");
  // Size as the InitializeAcl documentation gives it: the ACL header, one
  // ACCESS_ALLOWED_ACE without its SidStart placeholder, the SID; DWORD aligned.
  std::size_t size = sizeof(ACL) + sizeof(ACCESS_ALLOWED_ACE) - sizeof(DWORD) + GetLengthSid(psid);
  size = (size + sizeof(DWORD) - 1) & ~(sizeof(DWORD) - 1);
  acl.assign(size, 0);
  auto* pacl = reinterpret_cast<PACL>(acl.data());
  if (!InitializeAcl(pacl, static_cast<DWORD>(size), ACL_REVISION)) return last_error("InitializeAcl");
  if (!AddAccessAllowedAceEx(pacl, ACL_REVISION, ace_flags, mask, psid)) return last_error("AddAccessAllowedAceEx");
  return ok_status();
}

Status build_owner_only_acl(const std::vector<std::uint8_t>& sid, bool inherit, std::vector<std::uint8_t>& acl) {
  // FILE_ALL_ACCESS rather than GENERIC_ALL: it is what Windows stores after
  // mapping generic rights, so what read_dacl returns equals what was written.
  return build_single_ace_acl(sid, FILE_ALL_ACCESS, inherit ? (OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE) : 0, acl);
}

Status sid_to_string(const void* sid, std::string& out) {
  LocalMemory text;
  LPWSTR wide = nullptr;
  if (!ConvertSidToStringSidW(const_cast<void*>(sid), &wide)) return last_error("ConvertSidToStringSidW");
  text.memory = wide;
  out = narrow(wide, std::wcslen(wide));
  return ok_status();
}

Status current_user_sid(std::vector<std::uint8_t>& sid, std::string& text) {
  Status st = current_user_sid(sid);
  if (!st.ok()) return st;
  return sid_to_string(sid.data(), text);
}

Status set_account_only_dacl(const std::string& utf8_path, bool directory, const std::vector<std::uint8_t>& sid,
                             std::string& sid_text) {
  Status st = sid_to_string(sid.data(), sid_text);
  if (!st.ok()) return st;
  std::vector<std::uint8_t> acl;
  st = build_owner_only_acl(sid, directory, acl);
  if (!st.ok()) return st;
  std::wstring path = widen(utf8_path);
  // The owner stays (the installer): it keeps READ_CONTROL | WRITE_DAC to repair the grant.
  const DWORD error = SetNamedSecurityInfoW(&path[0], SE_FILE_OBJECT,
                                            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, nullptr,
                                            nullptr, reinterpret_cast<PACL>(acl.data()), nullptr);
  if (error != ERROR_SUCCESS) return win32_error(error, "SetNamedSecurityInfoW");
  return ok_status();
}

Status set_owner_only_dacl(const std::string& utf8_path, bool directory, OwnerOnlyResult& result) {
  result = OwnerOnlyResult{};
  std::vector<std::uint8_t> sid;
  Status st = current_user_sid(sid, result.sid);
  if (!st.ok()) return st;
  std::vector<std::uint8_t> acl;
  st = build_owner_only_acl(sid, directory, acl);
  if (!st.ok()) return st;

  std::wstring path = widen(utf8_path);
  auto* pacl = reinterpret_cast<PACL>(acl.data());
  // PROTECTED_DACL_SECURITY_INFORMATION sets SE_DACL_PROTECTED: the parent's
  // inheritable ACEs are dropped now and do not flow in again later.
  const SECURITY_INFORMATION dacl_only = DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION;
  DWORD error = SetNamedSecurityInfoW(&path[0], SE_FILE_OBJECT, dacl_only | OWNER_SECURITY_INFORMATION, sid.data(),
                                      nullptr, pacl, nullptr);
  if (error == ERROR_SUCCESS) {
    result.owner_set = true;
    return ok_status();
  }
  if (!owner_refused(error)) return win32_error(error, "SetNamedSecurityInfoW");
  result.owner_status = win32_error(error, "SetNamedSecurityInfoW");
  error = SetNamedSecurityInfoW(&path[0], SE_FILE_OBJECT, dacl_only, nullptr, nullptr, pacl, nullptr);
  if (error != ERROR_SUCCESS) return win32_error(error, "SetNamedSecurityInfoW");
  return ok_status();
}

Status read_dacl(const std::string& utf8_path, DaclInfo& out) {
  out = DaclInfo{};
  const std::wstring path = widen(utf8_path);
  PSID owner = nullptr;
  PACL dacl = nullptr;
  LocalMemory sd;
  PSECURITY_DESCRIPTOR descriptor = nullptr;
  const DWORD error = GetNamedSecurityInfoW(path.c_str(), SE_FILE_OBJECT,
                                            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &owner, nullptr,
                                            &dacl, nullptr, &descriptor);
  if (error != ERROR_SUCCESS) return win32_error(error, "GetNamedSecurityInfoW");
  sd.memory = descriptor;

  SECURITY_DESCRIPTOR_CONTROL control = 0;
  DWORD revision = 0;
  if (!GetSecurityDescriptorControl(descriptor, &control, &revision)) return last_error("GetSecurityDescriptorControl");
  return describe_dacl(owner, dacl, control, out);
}

Status describe_dacl(const void* owner, const ACL* dacl, SECURITY_DESCRIPTOR_CONTROL control, DaclInfo& out) {
  out.control = control;
  out.is_protected = (control & SE_DACL_PROTECTED) != 0;
  out.dacl_present = (control & SE_DACL_PRESENT) != 0 && dacl != nullptr;
  if (owner != nullptr) {
    Status st = sid_to_string(owner, out.owner_sid);
    if (!st.ok()) return st;
  }
  if (!out.dacl_present) return ok_status();

  for (DWORD i = 0; i < dacl->AceCount; ++i) {
    LPVOID raw = nullptr;
    if (!GetAce(const_cast<PACL>(dacl), i, &raw)) return last_error("GetAce");
    const auto* bytes = static_cast<const std::uint8_t*>(raw);
    ACE_HEADER header;
    std::memcpy(&header, bytes, sizeof header);
    AceInfo ace;
    ace.type = header.AceType;
    ace.flags = header.AceFlags;
    constexpr std::size_t kSidOffset = sizeof(ACE_HEADER) + sizeof(ACCESS_MASK);
    if (header.AceSize >= kSidOffset) {
      std::memcpy(&ace.mask, bytes + sizeof(ACE_HEADER), sizeof ace.mask);
    }
    if (has_plain_sid(header.AceType) && header.AceSize > kSidOffset &&
        sid_length_within(bytes + kSidOffset, header.AceSize - kSidOffset) != 0) {
      Status st = sid_to_string(bytes + kSidOffset, ace.sid);
      if (!st.ok()) return st;
      const std::size_t length = sid_length_within(bytes + kSidOffset, header.AceSize - kSidOffset);
      ace.sid_bytes.assign(bytes + kSidOffset, bytes + kSidOffset + length);
    }
    out.aces.push_back(std::move(ace));
  }
  return ok_status();
}

Status current_account(AccountInfo& out) {
  std::vector<std::uint8_t> sid;
  std::string text;
  Status st = current_user_sid(sid, text);
  if (!st.ok()) return st;
  return describe_sid(sid, out);
}

Status describe_sid(const std::vector<std::uint8_t>& sid, AccountInfo& out) {
  out = AccountInfo{};
  PSID psid = const_cast<std::uint8_t*>(sid.data());
  if (sid.empty() || !IsValidSid(psid)) return win32_error(ERROR_INVALID_SID, "IsValidSid");
  Status st = sid_to_string(psid, out.sid);
  if (!st.ok()) return st;
  if (IsWellKnownSid(psid, WinLocalSystemSid)) {
    out.kind = AccountKind::LocalSystem;
  } else if (IsWellKnownSid(psid, WinLocalServiceSid)) {
    out.kind = AccountKind::LocalService;
  } else if (IsWellKnownSid(psid, WinNetworkServiceSid)) {
    out.kind = AccountKind::NetworkService;
  }

  // The name is for people reading doctor output; a SID that does not map
  // (deleted account, unreachable domain controller) is not an error here.
  DWORD name_len = 0;
  DWORD domain_len = 0;
  SID_NAME_USE use = SidTypeUnknown;
  if (LookupAccountSidW(nullptr, psid, nullptr, &name_len, nullptr, &domain_len, &use)) {
    return ok_status();  // nothing to copy: an empty name is what the account has
  }
  const DWORD error = GetLastError();
  if (error != ERROR_INSUFFICIENT_BUFFER || name_len == 0) {
    out.lookup = win32_error(error, "LookupAccountSidW");
    return ok_status();
  }
  std::vector<WCHAR> name(name_len + 1, 0);
  std::vector<WCHAR> domain(domain_len + 1, 0);
  if (!LookupAccountSidW(nullptr, psid, name.data(), &name_len, domain.data(), &domain_len, &use)) {
    out.lookup = last_error("LookupAccountSidW");
    return ok_status();
  }
  out.name = narrow(name.data(), std::wcslen(name.data()));
  out.domain = narrow(domain.data(), std::wcslen(domain.data()));
  return ok_status();
}

Status lookup_account(const std::string& utf8_name, std::vector<std::uint8_t>& sid, AccountInfo& out) {
  out = AccountInfo{};
  sid.clear();
  const std::wstring name = widen(utf8_name);
  if (name.empty()) return win32_error(ERROR_NONE_MAPPED, "LookupAccountNameW");
  // Two calls, as the LookupAccountNameW page describes: sizes, then data.
  // https://learn.microsoft.com/en-us/windows/win32/api/winbase/nf-winbase-lookupaccountnamew
  DWORD sid_len = 0;
  DWORD domain_len = 0;
  SID_NAME_USE use = SidTypeUnknown;
  if (!LookupAccountNameW(nullptr, name.c_str(), nullptr, &sid_len, nullptr, &domain_len, &use)) {
    const DWORD error = GetLastError();
    if (error != ERROR_INSUFFICIENT_BUFFER) return win32_error(error, "LookupAccountNameW");
  }
  if (sid_len == 0) return win32_error(ERROR_NONE_MAPPED, "LookupAccountNameW");
  sid.assign(sid_len, 0);
  std::vector<WCHAR> domain(domain_len + 1, 0);
  if (!LookupAccountNameW(nullptr, name.c_str(), sid.data(), &sid_len, domain.data(), &domain_len, &use)) {
    sid.clear();
    return last_error("LookupAccountNameW");
  }
  sid.resize(sid_len);
  return describe_sid(sid, out);
}

}  // namespace entraclaw::cng
