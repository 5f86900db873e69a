// Who may use a key: the DACL of a CNG key (NCRYPT_SECURITY_DESCR_PROPERTY),
// for machine installs where one service account, scheduled-task account or
// gMSA runs the agent and nobody else may sign with its key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "file_security.h"
#include "status.h"
#include "win32.h"

namespace entraclaw::cng {

// Replace the key's DACL by one ACCESS_ALLOWED ACE, GENERIC_ALL for `sid`,
// protected (SE_DACL_PROTECTED: nothing inherited). The owner is left as it
// is: it keeps READ_CONTROL and WRITE_DAC, so the installer can still read
// and repair the grant, but cannot sign.
Status set_key_dacl(NCRYPT_KEY_HANDLE key, const std::vector<std::uint8_t>& sid);

// Owner and DACL of the key (NCryptGetProperty with OWNER | DACL).
Status read_key_dacl(NCRYPT_KEY_HANDLE key, DaclInfo& out);

}  // namespace entraclaw::cng
