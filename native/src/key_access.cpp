#include "key_access.h"

#include <cstring>

namespace entraclaw::cng {
namespace {

// SECURITY_DESCRIPTOR_RELATIVE (winnt.h): revision, Sbz1, control, then the
// byte offsets of owner, group, SACL and DACL from the start (0 = absent).
constexpr std::size_t kRelativeHeader = 20;
static_assert(sizeof(SECURITY_DESCRIPTOR_RELATIVE) == kRelativeHeader, "SECURITY_DESCRIPTOR_RELATIVE differs from winnt.h");

DWORD read_offset(const std::vector<std::uint8_t>& sd, std::size_t at) {
  DWORD value = 0;
  std::memcpy(&value, sd.data() + at, sizeof value);
  return value;
}

}  // namespace

Status set_key_dacl(NCRYPT_KEY_HANDLE key, const std::vector<std::uint8_t>& sid) {
  std::vector<std::uint8_t> acl;
  if (Status st = build_single_ace_acl(sid, GENERIC_ALL, 0, acl); !st.ok()) return st;
  // The property travels to the key isolation service, so the descriptor is
  // one self-relative block: the header, then the DACL, no owner or group
  // (DACL_SECURITY_INFORMATION alone says only the DACL is replaced).
  // https://learn.microsoft.com/en-us/windows/win32/api/ncrypt/nf-ncrypt-ncryptsetproperty
  // (NCRYPT_SECURITY_DESCR_PROPERTY: dwFlags names the part that is set)
  std::vector<std::uint8_t> sd(kRelativeHeader, 0);
  SECURITY_DESCRIPTOR_RELATIVE header{};
  header.Revision = SECURITY_DESCRIPTOR_REVISION;
  header.Control = SE_SELF_RELATIVE | SE_DACL_PRESENT | SE_DACL_PROTECTED;
  header.Dacl = static_cast<DWORD>(kRelativeHeader);
  std::memcpy(sd.data(), &header, sizeof header);
  sd.insert(sd.end(), acl.begin(), acl.end());
  const SECURITY_STATUS st =
      NCryptSetProperty(key, NCRYPT_SECURITY_DESCR_PROPERTY, sd.data(), static_cast<DWORD>(sd.size()),
                        DACL_SECURITY_INFORMATION | NCRYPT_SILENT_FLAG);
  if (st != 0) return Status{st, "NCryptSetProperty(Security Descr)"};
  return ok_status();
}

Status read_key_dacl(NCRYPT_KEY_HANDLE key, DaclInfo& out) {
  out = DaclInfo{};
  const DWORD parts = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION | NCRYPT_SILENT_FLAG;
  DWORD size = 0;
  SECURITY_STATUS st = NCryptGetProperty(key, NCRYPT_SECURITY_DESCR_PROPERTY, nullptr, 0, &size, parts);
  if (st != 0) return Status{st, "NCryptGetProperty(Security Descr)"};
  std::vector<std::uint8_t> sd(size, 0);
  st = NCryptGetProperty(key, NCRYPT_SECURITY_DESCR_PROPERTY, sd.data(), size, &size, parts);
  if (st != 0) return Status{st, "NCryptGetProperty(Security Descr)"};
  sd.resize(size);
  if (sd.size() < kRelativeHeader) return Status{static_cast<HRESULT>(NTE_BAD_DATA), "NCryptGetProperty(Security Descr)"};
  SECURITY_DESCRIPTOR_CONTROL control = 0;
  DWORD revision = 0;
  if (!GetSecurityDescriptorControl(sd.data(), &control, &revision)) {
    return Status{hresult_from_last_error(GetLastError()), "GetSecurityDescriptorControl"};
  }
  const DWORD owner_at = read_offset(sd, 4);
  const DWORD dacl_at = read_offset(sd, 16);
  const bool owner_fits = owner_at != 0 && owner_at < sd.size() &&
                          sid_length_within(sd.data() + owner_at, sd.size() - owner_at) != 0;
  const bool dacl_fits = dacl_at != 0 && dacl_at + sizeof(ACL) <= sd.size() &&
                         reinterpret_cast<const ACL*>(sd.data() + dacl_at)->AclSize <= sd.size() - dacl_at;
  if ((owner_at != 0 && !owner_fits) || (dacl_at != 0 && !dacl_fits)) {
    return Status{static_cast<HRESULT>(NTE_BAD_DATA), "NCryptGetProperty(Security Descr)"};
  }
  return describe_dacl(owner_fits ? sd.data() + owner_at : nullptr,
                       dacl_fits ? reinterpret_cast<PACL>(sd.data() + dacl_at) : nullptr, control, out);
}

}  // namespace entraclaw::cng
