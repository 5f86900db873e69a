// Owner-only file DACLs by SID, and who the process runs as.
//
// entraclaw's state files (.env, token cache, DPAPI blobs) must be readable by
// the account that runs the agent and nobody else. On Windows that is a DACL
// with one ACCESS_ALLOWED ACE for the token user's SID, protected so the
// parent's inheritable ACEs (Administrators, SYSTEM, ...) stop flowing in.
// Everything here works on binary SIDs and ACLs; no SDDL or icacls text is
// parsed anywhere.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "status.h"
#include "win32.h"

namespace entraclaw::cng {

enum class AccountKind { User, LocalSystem, LocalService, NetworkService };

// "user", "LocalSystem", "LocalService", "NetworkService".
const char* account_kind_name(AccountKind kind);

struct AccountInfo {
  std::string sid;     // S-1-5-...
  std::string name;    // LookupAccountSidW name, empty when it could not be resolved
  std::string domain;  // referenced domain ("NT AUTHORITY" for the service accounts)
  AccountKind kind = AccountKind::User;
  Status lookup;       // why `name` is empty (the call still succeeds: the SID is what matters)
};

struct AceInfo {
  std::string sid;  // empty for ACE types whose layout carries no plain SID
  std::vector<std::uint8_t> sid_bytes;  // the same SID, binary (for describe_sid)
  std::uint32_t mask = 0;
  std::uint8_t type = 0;
  std::uint8_t flags = 0;
};

struct DaclInfo {
  std::string owner_sid;
  std::uint16_t control = 0;  // SECURITY_DESCRIPTOR_CONTROL
  bool dacl_present = false;  // false or a NULL DACL: everyone has full access
  bool is_protected = false;  // SE_DACL_PROTECTED: no inherited ACEs
  std::vector<AceInfo> aces;
};

struct OwnerOnlyResult {
  std::string sid;      // the SID the ACE was written for
  bool owner_set = false;
  Status owner_status;  // why the owner was left alone, when owner_set is false
};

// Bytes of a SID whose header sits at `sid`, or 0 when it does not fit in
// `available` bytes. Reads only the fixed 8-byte header to find out.
std::size_t sid_length_within(const std::uint8_t* sid, std::size_t available);

// The token user's SID (binary) from the process token.
Status current_user_sid(std::vector<std::uint8_t>& sid);
// The same SID, binary and as S-1-... text (every caller that reports the SID needs both).
Status current_user_sid(std::vector<std::uint8_t>& sid, std::string& text);

// A DACL with exactly one ACCESS_ALLOWED ACE: `mask` for `sid`, with `ace_flags`.
Status build_single_ace_acl(const std::vector<std::uint8_t>& sid, ACCESS_MASK mask, DWORD ace_flags,
                            std::vector<std::uint8_t>& acl);

// A DACL with exactly one ACCESS_ALLOWED ACE: FILE_ALL_ACCESS for `sid`.
// `inherit` adds OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE (for directories,
// so files created inside later are owner-only too).
Status build_owner_only_acl(const std::vector<std::uint8_t>& sid, bool inherit, std::vector<std::uint8_t>& acl);

// Replace the DACL of `utf8_path` with build_owner_only_acl(current user),
// protected, and make the current user the owner where Windows lets us.
Status set_owner_only_dacl(const std::string& utf8_path, bool directory, OwnerOnlyResult& result);

// Replace the DACL of `utf8_path` by one FILE_ALL_ACCESS ACE for `sid`
// (another account: the service a machine install runs as), protected; the
// owner is left as it is. `sid_text` gets the SID as S-1-... text.
Status set_account_only_dacl(const std::string& utf8_path, bool directory, const std::vector<std::uint8_t>& sid,
                             std::string& sid_text);

// The owner, control flags and every ACE of `utf8_path`'s DACL.
Status read_dacl(const std::string& utf8_path, DaclInfo& out);

// Owner, control flags and every ACE of a DACL read from any descriptor.
Status describe_dacl(const void* owner, const ACL* dacl, SECURITY_DESCRIPTOR_CONTROL control, DaclInfo& out);

// SID, name and kind of the account this process runs as.
Status current_account(AccountInfo& out);

// SID text, name and kind of any account SID.
Status describe_sid(const std::vector<std::uint8_t>& sid, AccountInfo& out);

// An account name ("DOMAIN\\name", "NT AUTHORITY\\NETWORK SERVICE",
// "NT SERVICE\\svc", a gMSA "DOMAIN\\svc$") to its binary SID and facts.
Status lookup_account(const std::string& utf8_name, std::vector<std::uint8_t>& sid, AccountInfo& out);

// S-1-... text of a binary SID (ConvertSidToStringSidW).
Status sid_to_string(const void* sid, std::string& out);

}  // namespace entraclaw::cng
