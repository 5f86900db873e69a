// entraclaw_wine_acl_probe.exe — drives the core's file_security.cpp against
// the real advapi32 of whatever runs it (Wine in Linux CI, Windows on a
// runner): who the process runs as, owner-only DACLs applied with
// SetNamedSecurityInfoW and read back with GetNamedSecurityInfoW. Like the
// signing probe it judges nothing; tests/test_wine_acl.py does.
//
// Usage:  entraclaw_wine_acl_probe.exe COMMAND [ARG] [COMMAND [ARG] ...]
//   account                 the process token's user
//   set PATH                set_owner_only_dacl(PATH, directory = false)
//   setdir PATH             set_owner_only_dacl(PATH, directory = true)
//   inherit PATH            SetNamedSecurityInfoW(DACL only, not protected) with the owner-only ACL:
//                           shows whether the platform merges the parent's ACEs back in
//   read PATH               read_dacl(PATH)
// Lines (fields separated by one TAB; HRESULTs as 0x%08X, api "-" when none):
//   account SID KIND DOMAIN NAME LOOKUP_HRESULT LOOKUP_API
//   set|setdir|inherit PATH HRESULT API SID OWNER_SET OWNER_HRESULT OWNER_API
//   dacl PATH HRESULT API OWNER_SID CONTROL PRESENT PROTECTED ACE_COUNT
//   ace PATH INDEX SID TYPE FLAGS MASK
//   done
// Exit 0 once every line is written; 2 on bad arguments.

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "file_security.h"
#include "status.h"
#include "win32.h"

#include <aclapi.h>

namespace {

namespace cng = entraclaw::cng;

std::string hr_text(std::uint32_t hr) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08lX", static_cast<unsigned long>(hr));
  return buf;
}

const char* api_text(const cng::Status& st) { return st.api[0] != '\0' ? st.api : "-"; }

void print_account() {
  cng::AccountInfo info;
  const cng::Status st = cng::current_account(info);
  if (!st.ok()) {
    std::printf("account\t-\terror\t-\t-\t%s\t%s\n", hr_text(st.code()).c_str(), api_text(st));
    return;
  }
  std::printf("account\t%s\t%s\t%s\t%s\t%s\t%s\n", info.sid.c_str(), cng::account_kind_name(info.kind),
              info.domain.c_str(), info.name.c_str(), hr_text(info.lookup.code()).c_str(), api_text(info.lookup));
}

void print_set(const char* command, const std::string& path, bool directory) {
  cng::OwnerOnlyResult result;
  const cng::Status st = cng::set_owner_only_dacl(path, directory, result);
  std::printf("%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", command, path.c_str(), hr_text(st.code()).c_str(), api_text(st),
              result.sid.empty() ? "-" : result.sid.c_str(), result.owner_set ? 1 : 0,
              hr_text(result.owner_status.code()).c_str(), api_text(result.owner_status));
}

// The same ACL without PROTECTED_DACL_SECURITY_INFORMATION: what the
// platform does with inheritance when it is not cut.
void print_inherit(const std::string& path) {
  std::vector<std::uint8_t> sid;
  std::vector<std::uint8_t> acl;
  std::string sid_text;
  cng::Status st = cng::current_user_sid(sid, sid_text);
  if (st.ok()) st = cng::build_owner_only_acl(sid, false, acl);
  if (st.ok()) {
    std::vector<WCHAR> wide(path.begin(), path.end());  // ASCII paths only in the probe
    wide.push_back(0);
    const DWORD error = SetNamedSecurityInfoW(wide.data(), SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, nullptr, nullptr,
                                              reinterpret_cast<PACL>(acl.data()), nullptr);
    st = error != 0 ? cng::Status{cng::hresult_from_last_error(error), "SetNamedSecurityInfoW"} : cng::ok_status();
  }
  std::printf("inherit\t%s\t%s\t%s\t%s\t0\t0x00000000\t-\n", path.c_str(), hr_text(st.code()).c_str(), api_text(st),
              sid_text.empty() ? "-" : sid_text.c_str());
}

void print_dacl(const std::string& path) {
  cng::DaclInfo info;
  const cng::Status st = cng::read_dacl(path, info);
  std::printf("dacl\t%s\t%s\t%s\t%s\t0x%04X\t%d\t%d\t%zu\n", path.c_str(), hr_text(st.code()).c_str(), api_text(st),
              info.owner_sid.empty() ? "-" : info.owner_sid.c_str(), static_cast<unsigned>(info.control),
              info.dacl_present ? 1 : 0, info.is_protected ? 1 : 0, info.aces.size());
  for (std::size_t i = 0; i < info.aces.size(); ++i) {
    const auto& ace = info.aces[i];
    std::printf("ace\t%s\t%zu\t%s\t%u\t0x%02X\t0x%08lX\n", path.c_str(), i, ace.sid.empty() ? "-" : ace.sid.c_str(),
                static_cast<unsigned>(ace.type), static_cast<unsigned>(ace.flags),
                static_cast<unsigned long>(ace.mask));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: entraclaw_wine_acl_probe.exe account | set PATH | setdir PATH | inherit PATH | read PATH ...\n");
    return 2;
  }
  for (int i = 1; i < argc; ++i) {
    const std::string command = argv[i];
    if (command == "account") {
      print_account();
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a PATH\n", command.c_str());
      return 2;
    }
    const std::string path = argv[++i];
    if (command == "set") {
      print_set("set", path, false);
    } else if (command == "setdir") {
      print_set("setdir", path, true);
    } else if (command == "inherit") {
      print_inherit(path);
    } else if (command == "read") {
      print_dacl(path);
    } else {
      std::fprintf(stderr, "unknown command %s\n", command.c_str());
      return 2;
    }
  }
  std::printf("done\n");
  std::fflush(stdout);
  return 0;
}
