// advapi32 half of the stand-in: a process token whose user SID tests choose,
// binary SIDs and ACLs laid out exactly as winnt.h defines them, and a table
// of per-file security descriptors (real copies of the ACL bytes a caller
// set) with the owner/DACL access check Windows applies before it lets a
// caller read or replace them.
//
// What the model keeps from Windows (docs: "How DACLs Control Access to an
// Object", SetNamedSecurityInfoW, GetNamedSecurityInfoW, InitializeAcl):
// - a file first seen gets the SD it would have inherited under
//   %LOCALAPPDATA%: owner = the account that touched it, DACL = that account,
//   SYSTEM and Administrators with FILE_ALL_ACCESS, all INHERITED_ACE;
// - the owner always holds READ_CONTROL | WRITE_DAC; anything else comes from
//   the ACEs in order (a deny for a not-yet-granted bit wins);
// - setting the owner needs WRITE_OWNER and a SID the token may assign (its
//   own user SID here, else ERROR_INVALID_OWNER);
// - without PROTECTED_DACL_SECURITY_INFORMATION the parent's inheritable ACEs
//   are appended again (the default ACEs above), with it they are not and
//   SE_DACL_PROTECTED is set.
// Group membership is not modelled: an ACE applies when its SID is the token
// user or Everyone (S-1-1-0).
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "state.h"

using namespace standin;

namespace {

using Bytes = std::vector<BYTE>;

constexpr size_t kSidHeader = 8;
constexpr size_t kAceSidOffset = sizeof(ACE_HEADER) + sizeof(ACCESS_MASK);
constexpr uintptr_t kCurrentProcess = static_cast<uintptr_t>(-1);

struct Account {
  Bytes sid;
  std::string name;
  std::string domain;
  SID_NAME_USE use = SidTypeUser;
};

using FileSd = SecurityRecord;

struct TokenObj {
  Bytes sid;
};

struct AdvapiState {
  std::mutex mu;
  Account current;
  bool current_named = true;
  std::map<std::string, FileSd> files;  // key: realpath()
  std::vector<Account> others;           // accounts LookupAccountNameW/SidW know besides the caller
};

bool parse_sid(const char* text, Bytes& out) {
  // S-1-<authority>-<sub>...: authority decimal (< 2^32) or 0x<12 hex digits>.
  if (text == nullptr || std::strncmp(text, "S-1-", 4) != 0) return false;
  const char* p = text + 4;
  char* end = nullptr;
  errno = 0;
  const unsigned long long authority = std::strtoull(p, &end, (p[0] == '0' && p[1] == 'x') ? 16 : 10);
  if (end == p || errno != 0 || authority > 0xFFFFFFFFFFFFull) return false;
  std::vector<DWORD> subs;
  p = end;
  while (*p == '-') {
    ++p;
    errno = 0;
    const unsigned long long sub = std::strtoull(p, &end, 10);
    if (end == p || errno != 0 || sub > 0xFFFFFFFFull || subs.size() == SID_MAX_SUB_AUTHORITIES) return false;
    subs.push_back(static_cast<DWORD>(sub));
    p = end;
  }
  if (*p != '\0') return false;
  out.assign(kSidHeader + 4 * subs.size(), 0);
  out[0] = SID_REVISION;
  out[1] = static_cast<BYTE>(subs.size());
  for (int i = 0; i < 6; ++i) out[2 + i] = static_cast<BYTE>(authority >> (8 * (5 - i)));
  if (!subs.empty()) std::memcpy(out.data() + kSidHeader, subs.data(), 4 * subs.size());
  return true;
}

Bytes sid_of(const char* text) {
  Bytes out;
  parse_sid(text, out);
  return out;
}

size_t sid_size(const BYTE* sid) { return kSidHeader + 4u * sid[1]; }
// IsValidSid without the call counter / fault queue (for the stand-in's own use).
bool valid_sid(const void* sid) {
  const auto* p = static_cast<const BYTE*>(sid);
  return p != nullptr && p[0] == SID_REVISION && p[1] <= SID_MAX_SUB_AUTHORITIES;
}
bool sid_equal(const BYTE* sid, const Bytes& other) {
  return !other.empty() && sid_size(sid) == other.size() && std::memcmp(sid, other.data(), other.size()) == 0;
}

constexpr const char* kDefaultUserSid = "S-1-5-21-3623811015-3361044348-30300820-1001";
constexpr const char* kSystemSid = "S-1-5-18";
constexpr const char* kLocalServiceSid = "S-1-5-19";
constexpr const char* kNetworkServiceSid = "S-1-5-20";
constexpr const char* kWorldSid = "S-1-1-0";
constexpr const char* kAdministratorsSid = "S-1-5-32-544";

// The names LookupAccountSidW gives well-known SIDs on an English Windows.
struct WellKnown {
  WELL_KNOWN_SID_TYPE type;
  const char* sid;
  const char* name;
  const char* domain;
  SID_NAME_USE use;
};
constexpr WellKnown kWellKnown[] = {
    {WinLocalSystemSid, kSystemSid, "SYSTEM", "NT AUTHORITY", SidTypeWellKnownGroup},
    {WinLocalServiceSid, kLocalServiceSid, "LOCAL SERVICE", "NT AUTHORITY", SidTypeWellKnownGroup},
    {WinNetworkServiceSid, kNetworkServiceSid, "NETWORK SERVICE", "NT AUTHORITY", SidTypeWellKnownGroup},
    {WinWorldSid, kWorldSid, "Everyone", "", SidTypeWellKnownGroup},
    {WinBuiltinAdministratorsSid, kAdministratorsSid, "Administrators", "BUILTIN", SidTypeAlias},
};

Account default_account() { return Account{sid_of(kDefaultUserSid), "standin-user", "STANDIN-PC", SidTypeUser}; }

AdvapiState& advapi() {
  static AdvapiState* s = [] {
    auto* st = new AdvapiState();  // never destroyed, like state()
    st->current = default_account();
    return st;
  }();
  return *s;
}

BOOL fail(DWORD error) {
  SetLastError(error);
  return FALSE;
}

void append_ace(Bytes& acl, BYTE type, BYTE flags, ACCESS_MASK mask, const Bytes& sid) {
  const size_t at = acl.size();
  const auto size = static_cast<WORD>(kAceSidOffset + sid.size());
  acl.resize(at + size);
  ACE_HEADER header{type, flags, size};
  std::memcpy(acl.data() + at, &header, sizeof header);
  std::memcpy(acl.data() + at + sizeof header, &mask, sizeof mask);
  std::memcpy(acl.data() + at + kAceSidOffset, sid.data(), sid.size());
  ACL head;
  std::memcpy(&head, acl.data(), sizeof head);
  head.AclSize = static_cast<WORD>(acl.size());
  ++head.AceCount;
  std::memcpy(acl.data(), &head, sizeof head);
}

Bytes empty_acl() {
  Bytes acl(sizeof(ACL), 0);
  ACL head{ACL_REVISION, 0, static_cast<WORD>(sizeof(ACL)), 0, 0};
  std::memcpy(acl.data(), &head, sizeof head);
  return acl;
}

// The ACEs a file inherits from a %LOCALAPPDATA%-like parent, for `user`.
void append_inherited(Bytes& acl, const Bytes& user) {
  append_ace(acl, ACCESS_ALLOWED_ACE_TYPE, INHERITED_ACE, FILE_ALL_ACCESS, user);
  append_ace(acl, ACCESS_ALLOWED_ACE_TYPE, INHERITED_ACE, FILE_ALL_ACCESS, sid_of(kSystemSid));
  append_ace(acl, ACCESS_ALLOWED_ACE_TYPE, INHERITED_ACE, FILE_ALL_ACCESS, sid_of(kAdministratorsSid));
}

// Walks an ACL's ACEs, checking every size against AclSize. Returns the
// number of bytes in use, or 0 when the ACL is malformed.
size_t acl_used(const BYTE* acl, size_t limit) {
  if (acl == nullptr || limit < sizeof(ACL)) return 0;
  ACL head;
  std::memcpy(&head, acl, sizeof head);
  if ((head.AclRevision != ACL_REVISION && head.AclRevision != 4) || head.AclSize < sizeof(ACL) ||
      head.AclSize > limit) {
    return 0;
  }
  size_t at = sizeof(ACL);
  for (WORD i = 0; i < head.AceCount; ++i) {
    if (at + sizeof(ACE_HEADER) > head.AclSize) return 0;
    ACE_HEADER ace;
    std::memcpy(&ace, acl + at, sizeof ace);
    if (ace.AceSize < sizeof(ACE_HEADER) || ace.AceSize % 4 != 0 || at + ace.AceSize > head.AclSize) return 0;
    at += ace.AceSize;
  }
  return at;
}

ACCESS_MASK map_generic(ACCESS_MASK mask) {
  constexpr ACCESS_MASK kFileGenericRead = 0x00120089;  // FILE_GENERIC_READ
  if ((mask & GENERIC_READ) != 0) mask = (mask & ~static_cast<ACCESS_MASK>(GENERIC_READ)) | kFileGenericRead;
  return (mask & GENERIC_ALL) != 0 ? ((mask & ~static_cast<ACCESS_MASK>(GENERIC_ALL)) | FILE_ALL_ACCESS) : mask;
}

// The access check: true when every bit of `desired` is granted to `who`.
bool granted(const FileSd& sd, const Bytes& who, ACCESS_MASK desired) {
  ACCESS_MASK have = 0;
  if (!sd.owner.empty() && sid_equal(sd.owner.data(), who)) have |= (READ_CONTROL | WRITE_DAC) & desired;
  if (sd.dacl.empty()) return true;  // NULL DACL: everyone gets everything
  const Bytes world = sid_of(kWorldSid);
  ACL head;
  std::memcpy(&head, sd.dacl.data(), sizeof head);
  size_t at = sizeof(ACL);
  for (WORD i = 0; i < head.AceCount && have != desired; ++i) {
    ACE_HEADER ace;
    std::memcpy(&ace, sd.dacl.data() + at, sizeof ace);
    const BYTE* body = sd.dacl.data() + at;
    at += ace.AceSize;
    if ((ace.AceFlags & INHERIT_ONLY_ACE) != 0 || ace.AceSize < kAceSidOffset + kSidHeader) continue;
    if (ace.AceType != ACCESS_ALLOWED_ACE_TYPE && ace.AceType != ACCESS_DENIED_ACE_TYPE) continue;
    const BYTE* sid = body + kAceSidOffset;
    if (!sid_equal(sid, who) && !sid_equal(sid, world)) continue;
    ACCESS_MASK mask = 0;
    std::memcpy(&mask, body + sizeof(ACE_HEADER), sizeof mask);
    mask = map_generic(mask) & desired;
    if (ace.AceType == ACCESS_DENIED_ACE_TYPE) {
      if ((mask & ~have) != 0) return false;
    } else {
      have |= mask;
    }
  }
  return have == desired;
}

// realpath of a WCHAR path, or the Win32 error for a missing file/parent.
DWORD resolve(LPCWSTR wpath, std::string& out) {
  if (wpath == nullptr || *wpath == L'\0') return ERROR_INVALID_PARAMETER;
  const std::string path = utf8(wpath);
  char buffer[PATH_MAX];
  if (realpath(path.c_str(), buffer) != nullptr) {
    out = buffer;
    return ERROR_SUCCESS;
  }
  const size_t slash = path.find_last_of('/');
  const std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  struct stat st {};
  return stat(parent.c_str(), &st) == 0 ? ERROR_FILE_NOT_FOUND : ERROR_PATH_NOT_FOUND;
}

// The file's SD, created the way it would have been inherited on first sight
// (caller holds advapi().mu).
FileSd& file_sd(const std::string& key) {
  auto& files = advapi().files;
  auto it = files.find(key);
  if (it != files.end()) return it->second;
  FileSd sd;
  sd.owner = advapi().current.sid;
  sd.dacl = empty_acl();
  append_inherited(sd.dacl, sd.owner);
  sd.control = SE_DACL_PRESENT | SE_DACL_AUTO_INHERITED;
  return files.emplace(key, std::move(sd)).first->second;
}

void* copy_to_local(const Bytes& data) {
  std::lock_guard<std::mutex> lock(state().mu);
  void* out = local_alloc(data.size());
  if (!data.empty()) std::memcpy(out, data.data(), data.size());
  return out;
}

}  // namespace

namespace standin {

void advapi_reset() {
  std::lock_guard<std::mutex> lock(advapi().mu);
  advapi().files.clear();
  advapi().others.clear();
  advapi().current = default_account();
  advapi().current_named = true;
}

SecurityRecord default_key_security(bool machine) {
  SecurityRecord sd;
  std::lock_guard<std::mutex> lock(advapi().mu);
  sd.owner = advapi().current.sid;
  sd.dacl = empty_acl();
  append_ace(sd.dacl, ACCESS_ALLOWED_ACE_TYPE, 0, GENERIC_ALL, sid_of(kSystemSid));
  if (machine) append_ace(sd.dacl, ACCESS_ALLOWED_ACE_TYPE, 0, GENERIC_ALL, sid_of(kAdministratorsSid));
  // Machine keys: group membership is not modelled, so the caller (who must be
  // an administrator to write LocalMachine\My) is granted by name as well.
  append_ace(sd.dacl, ACCESS_ALLOWED_ACE_TYPE, 0, GENERIC_ALL, sd.owner);
  sd.control = SE_DACL_PRESENT | SE_DACL_PROTECTED;
  return sd;
}

bool key_access_granted(const SecurityRecord& sd, ACCESS_MASK desired) {
  Bytes me;
  {
    std::lock_guard<std::mutex> lock(advapi().mu);
    me = advapi().current.sid;
  }
  return granted(sd, me, map_generic(desired));
}

std::vector<BYTE> self_relative(const SecurityRecord& sd, DWORD parts) {
  SECURITY_DESCRIPTOR_RELATIVE head{};
  head.Revision = SECURITY_DESCRIPTOR_REVISION;
  head.Control = SE_SELF_RELATIVE;
  Bytes out(sizeof head, 0);
  if ((parts & OWNER_SECURITY_INFORMATION) != 0 && !sd.owner.empty()) {
    head.Owner = static_cast<DWORD>(out.size());
    out.insert(out.end(), sd.owner.begin(), sd.owner.end());
  }
  if ((parts & DACL_SECURITY_INFORMATION) != 0) {
    head.Control = static_cast<WORD>(head.Control | (sd.control & (SE_DACL_PRESENT | SE_DACL_PROTECTED)));
    if (!sd.dacl.empty()) {
      head.Dacl = static_cast<DWORD>(out.size());
      out.insert(out.end(), sd.dacl.begin(), sd.dacl.end());
    }
  }
  std::memcpy(out.data(), &head, sizeof head);
  return out;
}

int32_t apply_self_relative_dacl(SecurityRecord& sd, const BYTE* data, size_t size) {
  SECURITY_DESCRIPTOR_RELATIVE head{};
  if (data == nullptr || size < sizeof head) return NTE_INVALID_PARAMETER;
  std::memcpy(&head, data, sizeof head);
  if (head.Revision != SECURITY_DESCRIPTOR_REVISION || (head.Control & SE_SELF_RELATIVE) == 0 ||
      (head.Control & SE_DACL_PRESENT) == 0) {
    return NTE_INVALID_PARAMETER;
  }
  if (head.Dacl == 0) {
    sd.dacl.clear();  // a NULL DACL: everyone may do everything
  } else {
    if (head.Dacl + sizeof(ACL) > size) return NTE_INVALID_PARAMETER;
    ACL acl;
    std::memcpy(&acl, data + head.Dacl, sizeof acl);
    if (acl.AclSize > size - head.Dacl || acl_used(data + head.Dacl, acl.AclSize) == 0) return NTE_INVALID_PARAMETER;
    sd.dacl.assign(data + head.Dacl, data + head.Dacl + acl.AclSize);
  }
  sd.control = static_cast<WORD>(SE_DACL_PRESENT | (head.Control & SE_DACL_PROTECTED));
  return 0;
}

}  // namespace standin

extern "C" {

HANDLE WINAPI GetCurrentProcess(void) { return reinterpret_cast<HANDLE>(kCurrentProcess); }

BOOL WINAPI OpenProcessToken(HANDLE process, DWORD access, PHANDLE token) {
  if (int32_t st = enter(Fn::OpenProcessToken)) return fail(static_cast<DWORD>(st));
  if (token == nullptr) return fail(ERROR_INVALID_PARAMETER);
  if (reinterpret_cast<uintptr_t>(process) != kCurrentProcess) return fail(ERROR_INVALID_HANDLE);
  if ((access & TOKEN_QUERY) == 0) return fail(ERROR_ACCESS_DENIED);
  auto* obj = new TokenObj();
  {
    std::lock_guard<std::mutex> lock(advapi().mu);
    obj->sid = advapi().current.sid;  // a token keeps the identity it was opened with
  }
  std::lock_guard<std::mutex> lock(state().mu);
  track(obj, Kind::Token);
  *token = obj;
  return TRUE;
}

BOOL WINAPI GetTokenInformation(HANDLE token, TOKEN_INFORMATION_CLASS cls, LPVOID info, DWORD length,
                                PDWORD returned) {
  if (int32_t st = enter(Fn::GetTokenInformation)) return fail(static_cast<DWORD>(st));
  if (returned == nullptr) return fail(ERROR_INVALID_PARAMETER);
  Bytes sid;
  {
    std::lock_guard<std::mutex> lock(state().mu);
    if (!is_live(reinterpret_cast<uintptr_t>(token), Kind::Token)) return fail(ERROR_INVALID_HANDLE);
    sid = static_cast<TokenObj*>(token)->sid;
  }
  if (cls != TokenUser) return fail(ERROR_INVALID_PARAMETER);
  // TOKEN_USER followed by the SID it points to, in the caller's buffer.
  const DWORD needed = static_cast<DWORD>(sizeof(TOKEN_USER) + sid.size());
  *returned = needed;
  if (info == nullptr || length < needed) return fail(ERROR_INSUFFICIENT_BUFFER);
  auto* out = static_cast<BYTE*>(info);
  std::memcpy(out + sizeof(TOKEN_USER), sid.data(), sid.size());
  TOKEN_USER user{};
  user.User.Sid = out + sizeof(TOKEN_USER);
  std::memcpy(out, &user, sizeof user);
  return TRUE;
}

BOOL WINAPI CloseHandle(HANDLE handle) {
  if (int32_t st = enter(Fn::CloseHandle)) return fail(static_cast<DWORD>(st));
  std::lock_guard<std::mutex> lock(state().mu);
  if (!untrack(reinterpret_cast<uintptr_t>(handle), Kind::Token)) return fail(ERROR_INVALID_HANDLE);
  delete static_cast<TokenObj*>(handle);
  return TRUE;
}

BOOL WINAPI IsValidSid(PSID sid) {
  if (enter(Fn::IsValidSid) != 0) return FALSE;
  return valid_sid(sid) ? TRUE : FALSE;
}

DWORD WINAPI GetLengthSid(PSID sid) { return static_cast<DWORD>(sid_size(static_cast<const BYTE*>(sid))); }

BOOL WINAPI IsWellKnownSid(PSID sid, WELL_KNOWN_SID_TYPE type) {
  if (enter(Fn::IsWellKnownSid) != 0 || sid == nullptr) return FALSE;
  for (const auto& known : kWellKnown) {
    if (known.type == type) return sid_equal(static_cast<const BYTE*>(sid), sid_of(known.sid)) ? TRUE : FALSE;
  }
  return FALSE;
}

BOOL WINAPI ConvertSidToStringSidW(PSID sid, LPWSTR* text) {
  if (int32_t st = enter(Fn::ConvertSidToStringSidW)) return fail(static_cast<DWORD>(st));
  if (text == nullptr) return fail(ERROR_INVALID_PARAMETER);
  if (!valid_sid(sid)) return fail(ERROR_INVALID_SID);
  const auto* p = static_cast<const BYTE*>(sid);
  unsigned long long authority = 0;
  for (int i = 0; i < 6; ++i) authority = (authority << 8) | p[2 + i];
  char buf[32];
  // Authorities that do not fit 32 bits print in hex, as Windows does.
  std::snprintf(buf, sizeof buf, authority >= (1ull << 32) ? "S-1-0x%012llX" : "S-1-%llu", authority);
  std::string out = buf;
  for (BYTE i = 0; i < p[1]; ++i) {
    DWORD sub = 0;
    std::memcpy(&sub, p + kSidHeader + 4u * i, sizeof sub);
    out += "-" + std::to_string(sub);
  }
  const std::wstring wtext = wide(out);
  Bytes bytes((wtext.size() + 1) * sizeof(WCHAR), 0);
  std::memcpy(bytes.data(), wtext.c_str(), wtext.size() * sizeof(WCHAR));
  *text = static_cast<LPWSTR>(copy_to_local(bytes));
  return TRUE;
}

// Names are "DOMAIN\\name" or a bare name, compared without case, against
// the well-known accounts, the caller and the accounts a test added.
BOOL WINAPI LookupAccountNameW(LPCWSTR system, LPCWSTR name, PSID sid, PDWORD sid_len, LPWSTR domain,
                               PDWORD domain_len, PSID_NAME_USE use) {
  if (int32_t st = enter(Fn::LookupAccountNameW)) return fail(static_cast<DWORD>(st));
  if (system != nullptr || name == nullptr || sid_len == nullptr || domain_len == nullptr || use == nullptr) {
    return fail(ERROR_INVALID_PARAMETER);
  }
  auto lower = [](std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  };
  const std::string wanted = lower(utf8(name));
  auto matches = [&](const std::string& n, const std::string& d) {
    return wanted == lower(n) || wanted == lower(d + "\\" + n);
  };
  Account found;
  bool hit = false;
  for (const auto& known : kWellKnown) {
    if (!hit && matches(known.name, known.domain)) {
      found = Account{sid_of(known.sid), known.name, known.domain, known.use};
      hit = true;
    }
  }
  {
    std::lock_guard<std::mutex> lock(advapi().mu);
    if (!hit && advapi().current_named && matches(advapi().current.name, advapi().current.domain)) {
      found = advapi().current;
      hit = true;
    }
    for (const Account& other : advapi().others) {
      if (!hit && matches(other.name, other.domain)) {
        found = other;
        hit = true;
      }
    }
  }
  if (!hit) return fail(ERROR_NONE_MAPPED);
  const std::wstring wdomain = wide(found.domain);
  if (sid == nullptr || domain == nullptr || *sid_len < found.sid.size() || *domain_len < wdomain.size() + 1) {
    *sid_len = static_cast<DWORD>(found.sid.size());
    *domain_len = static_cast<DWORD>(wdomain.size() + 1);
    return fail(ERROR_INSUFFICIENT_BUFFER);
  }
  std::memcpy(sid, found.sid.data(), found.sid.size());
  std::memcpy(domain, wdomain.c_str(), (wdomain.size() + 1) * sizeof(WCHAR));
  *sid_len = static_cast<DWORD>(found.sid.size());
  *domain_len = static_cast<DWORD>(wdomain.size());
  *use = found.use;
  return TRUE;
}

BOOL WINAPI LookupAccountSidW(LPCWSTR system, PSID sid, LPWSTR name, PDWORD name_len, LPWSTR domain,
                              PDWORD domain_len, PSID_NAME_USE use) {
  if (int32_t st = enter(Fn::LookupAccountSidW)) return fail(static_cast<DWORD>(st));
  if (system != nullptr || name_len == nullptr || domain_len == nullptr || use == nullptr) {
    return fail(ERROR_INVALID_PARAMETER);
  }
  if (!valid_sid(sid)) return fail(ERROR_INVALID_SID);
  const auto* p = static_cast<const BYTE*>(sid);
  std::string found_name;
  std::string found_domain;
  SID_NAME_USE found_use = SidTypeUnknown;
  bool found = false;
  for (const auto& known : kWellKnown) {
    if (sid_equal(p, sid_of(known.sid))) {
      found_name = known.name;
      found_domain = known.domain;
      found_use = known.use;
      found = true;
    }
  }
  {
    std::lock_guard<std::mutex> lock(advapi().mu);
    const Account& me = advapi().current;
    if (!found && advapi().current_named && sid_equal(p, me.sid)) {
      found_name = me.name;
      found_domain = me.domain;
      found_use = me.use;
      found = true;
    }
    for (const Account& other : advapi().others) {
      if (!found && sid_equal(p, other.sid)) {
        found_name = other.name;
        found_domain = other.domain;
        found_use = other.use;
        found = true;
      }
    }
  }
  if (!found) return fail(ERROR_NONE_MAPPED);
  const std::wstring wname = wide(found_name);
  const std::wstring wdomain = wide(found_domain);
  // Too small (or NULL) buffers: both sizes come back including the NUL.
  if (name == nullptr || domain == nullptr || *name_len < wname.size() + 1 || *domain_len < wdomain.size() + 1) {
    *name_len = static_cast<DWORD>(wname.size() + 1);
    *domain_len = static_cast<DWORD>(wdomain.size() + 1);
    return fail(ERROR_INSUFFICIENT_BUFFER);
  }
  std::memcpy(name, wname.c_str(), (wname.size() + 1) * sizeof(WCHAR));
  std::memcpy(domain, wdomain.c_str(), (wdomain.size() + 1) * sizeof(WCHAR));
  *name_len = static_cast<DWORD>(wname.size());
  *domain_len = static_cast<DWORD>(wdomain.size());
  *use = found_use;
  return TRUE;
}

BOOL WINAPI InitializeAcl(PACL acl, DWORD length, DWORD revision) {
  if (int32_t st = enter(Fn::InitializeAcl)) return fail(static_cast<DWORD>(st));
  if (acl == nullptr || (revision != ACL_REVISION && revision != 4)) return fail(ERROR_INVALID_PARAMETER);
  if (length < sizeof(ACL)) return fail(ERROR_INSUFFICIENT_BUFFER);
  if (length > 0xFFFF || length % 4 != 0) return fail(ERROR_INVALID_PARAMETER);
  std::memset(acl, 0, sizeof(ACL));
  acl->AclRevision = static_cast<BYTE>(revision);
  acl->AclSize = static_cast<WORD>(length);
  return TRUE;
}

BOOL WINAPI AddAccessAllowedAceEx(PACL acl, DWORD revision, DWORD flags, DWORD mask, PSID sid) {
  if (int32_t st = enter(Fn::AddAccessAllowedAceEx)) return fail(static_cast<DWORD>(st));
  if (acl == nullptr) return fail(ERROR_INVALID_PARAMETER);
  const auto* bytes = reinterpret_cast<const BYTE*>(acl);
  const size_t used = acl_used(bytes, acl->AclSize);
  if (used == 0 || revision < acl->AclRevision) return fail(ERROR_INVALID_ACL);
  if ((flags & ~static_cast<DWORD>(VALID_INHERIT_FLAGS)) != 0) return fail(ERROR_INVALID_PARAMETER);
  if (!valid_sid(sid)) return fail(ERROR_INVALID_SID);
  const size_t length = sid_size(static_cast<const BYTE*>(sid));
  const size_t ace_size = kAceSidOffset + length;
  if (used + ace_size > acl->AclSize) return fail(ERROR_ALLOTTED_SPACE_EXCEEDED);
  auto* at = reinterpret_cast<BYTE*>(acl) + used;
  ACE_HEADER header{ACCESS_ALLOWED_ACE_TYPE, static_cast<BYTE>(flags), static_cast<WORD>(ace_size)};
  std::memcpy(at, &header, sizeof header);
  std::memcpy(at + sizeof header, &mask, sizeof mask);
  std::memcpy(at + kAceSidOffset, sid, length);
  ++acl->AceCount;
  return TRUE;
}

BOOL WINAPI IsValidAcl(PACL acl) {
  if (enter(Fn::IsValidAcl) != 0 || acl == nullptr) return FALSE;
  return acl_used(reinterpret_cast<const BYTE*>(acl), acl->AclSize) != 0 ? TRUE : FALSE;
}

BOOL WINAPI GetAce(PACL acl, DWORD index, LPVOID* ace) {
  if (int32_t st = enter(Fn::GetAce)) return fail(static_cast<DWORD>(st));
  if (acl == nullptr || ace == nullptr || index >= acl->AceCount) return fail(ERROR_INVALID_PARAMETER);
  auto* bytes = reinterpret_cast<BYTE*>(acl);
  if (acl_used(bytes, acl->AclSize) == 0) return fail(ERROR_INVALID_ACL);
  size_t at = sizeof(ACL);
  for (DWORD i = 0; i < index; ++i) {
    ACE_HEADER header;
    std::memcpy(&header, bytes + at, sizeof header);
    at += header.AceSize;
  }
  *ace = bytes + at;
  return TRUE;
}

BOOL WINAPI GetSecurityDescriptorControl(PSECURITY_DESCRIPTOR sd, PSECURITY_DESCRIPTOR_CONTROL control,
                                         PDWORD revision) {
  if (int32_t st = enter(Fn::GetSecurityDescriptorControl)) return fail(static_cast<DWORD>(st));
  if (sd == nullptr || control == nullptr || revision == nullptr) return fail(ERROR_INVALID_PARAMETER);
  const auto* p = static_cast<const BYTE*>(sd);
  if (p[0] != SECURITY_DESCRIPTOR_REVISION) return fail(ERROR_INVALID_SECURITY_DESCR);
  *revision = p[0];
  std::memcpy(control, p + 2, sizeof(WORD));
  return TRUE;
}

DWORD WINAPI SetNamedSecurityInfoW(LPWSTR object, SE_OBJECT_TYPE type, SECURITY_INFORMATION info, PSID owner,
                                   PSID group, PACL dacl, PACL sacl) {
  if (int32_t st = enter(Fn::SetNamedSecurityInfoW)) return static_cast<DWORD>(st);
  (void)group;
  if (type != SE_FILE_OBJECT || (info & (GROUP_SECURITY_INFORMATION | SACL_SECURITY_INFORMATION)) != 0 ||
      sacl != nullptr) {
    return ERROR_INVALID_PARAMETER;  // not modelled: entraclaw never sets them
  }
  const bool set_owner = (info & OWNER_SECURITY_INFORMATION) != 0;
  const bool set_dacl = (info & DACL_SECURITY_INFORMATION) != 0;
  if (set_owner && !valid_sid(owner)) return ERROR_INVALID_SID;
  if (set_dacl && dacl != nullptr && acl_used(reinterpret_cast<const BYTE*>(dacl), dacl->AclSize) == 0) {
    return ERROR_INVALID_ACL;
  }
  std::string key;
  if (DWORD error = resolve(object, key)) return error;

  std::lock_guard<std::mutex> lock(advapi().mu);
  const Bytes& me = advapi().current.sid;
  FileSd& sd = file_sd(key);
  ACCESS_MASK desired = 0;
  if (set_owner) desired |= WRITE_OWNER;
  if (set_dacl) desired |= WRITE_DAC;
  if (!granted(sd, me, desired)) return ERROR_ACCESS_DENIED;
  if (set_owner && !sid_equal(static_cast<const BYTE*>(owner), me)) return ERROR_INVALID_OWNER;
  if (set_owner) {
    const auto* p = static_cast<const BYTE*>(owner);
    sd.owner.assign(p, p + sid_size(p));
  }
  if (set_dacl) {
    if (dacl == nullptr) {
      sd.dacl.clear();
    } else {
      const auto* p = reinterpret_cast<const BYTE*>(dacl);
      sd.dacl.assign(p, p + dacl->AclSize);
    }
    sd.control = static_cast<WORD>(sd.control | SE_DACL_PRESENT);
    if ((info & PROTECTED_DACL_SECURITY_INFORMATION) != 0) {
      sd.control = static_cast<WORD>(sd.control | SE_DACL_PROTECTED);
    } else if (dacl != nullptr) {
      sd.control = static_cast<WORD>(sd.control & ~SE_DACL_PROTECTED);
      // Inheritance stays on: the parent's inheritable ACEs come back after
      // the explicit ones (the ACL grows to hold them).
      sd.dacl.resize(acl_used(sd.dacl.data(), sd.dacl.size()));
      append_inherited(sd.dacl, sd.owner);
    }
  }
  return ERROR_SUCCESS;
}

DWORD WINAPI GetNamedSecurityInfoW(LPCWSTR object, SE_OBJECT_TYPE type, SECURITY_INFORMATION info, PSID* owner,
                                   PSID* group, PACL* dacl, PACL* sacl, PSECURITY_DESCRIPTOR* descriptor) {
  if (int32_t st = enter(Fn::GetNamedSecurityInfoW)) return static_cast<DWORD>(st);
  if (type != SE_FILE_OBJECT || descriptor == nullptr ||
      (info & (GROUP_SECURITY_INFORMATION | SACL_SECURITY_INFORMATION)) != 0) {
    return ERROR_INVALID_PARAMETER;
  }
  std::string key;
  if (DWORD error = resolve(object, key)) return error;
  Bytes owner_bytes;
  Bytes dacl_bytes;
  WORD control = 0;
  {
    std::lock_guard<std::mutex> lock(advapi().mu);
    FileSd& sd = file_sd(key);
    if (!granted(sd, advapi().current.sid, READ_CONTROL)) return ERROR_ACCESS_DENIED;
    if ((info & OWNER_SECURITY_INFORMATION) != 0) owner_bytes = sd.owner;
    if ((info & DACL_SECURITY_INFORMATION) != 0) {
      dacl_bytes = sd.dacl;
      control = static_cast<WORD>(sd.control & (SE_DACL_PRESENT | SE_DACL_PROTECTED | SE_DACL_AUTO_INHERITED));
    }
  }
  // Self-relative SECURITY_DESCRIPTOR_RELATIVE: revision, sbz1, control,
  // then offsets of owner, group, SACL, DACL (0 = absent), then the data.
  constexpr size_t kHeader = 20;
  Bytes out(kHeader, 0);
  out[0] = SECURITY_DESCRIPTOR_REVISION;
  control = static_cast<WORD>(control | SE_SELF_RELATIVE);
  std::memcpy(out.data() + 2, &control, sizeof control);
  DWORD owner_offset = 0;
  DWORD dacl_offset = 0;
  if (!owner_bytes.empty()) {
    owner_offset = static_cast<DWORD>(out.size());
    out.insert(out.end(), owner_bytes.begin(), owner_bytes.end());
  }
  if (!dacl_bytes.empty()) {
    dacl_offset = static_cast<DWORD>(out.size());
    out.insert(out.end(), dacl_bytes.begin(), dacl_bytes.end());
  }
  std::memcpy(out.data() + 4, &owner_offset, sizeof owner_offset);
  std::memcpy(out.data() + 16, &dacl_offset, sizeof dacl_offset);
  auto* sd = static_cast<BYTE*>(copy_to_local(out));
  *descriptor = sd;
  if (owner != nullptr) *owner = owner_offset != 0 ? sd + owner_offset : nullptr;
  if (group != nullptr) *group = nullptr;
  if (sacl != nullptr) *sacl = nullptr;
  if (dacl != nullptr) *dacl = dacl_offset != 0 ? reinterpret_cast<PACL>(sd + dacl_offset) : nullptr;
  return ERROR_SUCCESS;
}

int standin_set_current_sid(const char* sid, const char* name, const char* domain) {
  Account account = default_account();
  bool named = true;
  if (sid != nullptr) {
    if (!parse_sid(sid, account.sid)) return -1;
    account.name = name != nullptr ? name : "";
    account.domain = domain != nullptr ? domain : "";
    named = name != nullptr;
  }
  std::lock_guard<std::mutex> lock(advapi().mu);
  advapi().current = std::move(account);
  advapi().current_named = named;
  return 0;
}

int standin_add_account(const char* sid, const char* name, const char* domain) {
  Account account;
  if (sid == nullptr || name == nullptr || !parse_sid(sid, account.sid)) return -1;
  account.name = name;
  account.domain = domain != nullptr ? domain : "";
  account.use = SidTypeUser;
  std::lock_guard<std::mutex> lock(advapi().mu);
  advapi().others.push_back(std::move(account));
  return 0;
}

const char* standin_default_user_sid(void) { return kDefaultUserSid; }

int standin_file_security_count(void) {
  std::lock_guard<std::mutex> lock(advapi().mu);
  return static_cast<int>(advapi().files.size());
}

}  // extern "C"
