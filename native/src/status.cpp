#include "status.h"

#include "status_table.h"

namespace entraclaw::cng {
namespace {

#define ENTRACLAW_STATUS_ROW(name, value, category, action) \
  StatusInfo{#name, value, Category::category, Action::action},
constexpr StatusInfo kTable[] = {ENTRACLAW_STATUS_TABLE(ENTRACLAW_STATUS_ROW)};
#undef ENTRACLAW_STATUS_ROW

constexpr std::size_t kTableSize = sizeof(kTable) / sizeof(kTable[0]);

// Cross-check the table against the SDK (or stand-in) headers wherever they
// define the constant: a typo in either place fails the build, including the
// mingw-w64 cross build. ERROR_INVALID_DATA is a Win32 code (13) in the SDK and
// appears in the table in its HRESULT_FROM_WIN32 form, so it is checked that way.
constexpr std::uint32_t table_value(const char* name) {
  for (const auto& row : kTable) {
    const char* a = row.name;
    const char* b = name;
    while (*a != '\0' && *a == *b) {
      ++a;
      ++b;
    }
    if (*a == *b) return row.code;
  }
  return 0;
}

constexpr bool values_unique() {
  for (std::size_t i = 0; i < kTableSize; ++i) {
    for (std::size_t j = i + 1; j < kTableSize; ++j) {
      if (kTable[i].code == kTable[j].code) return false;
    }
  }
  return true;
}
static_assert(values_unique(), "two status table rows share a value");

#define ENTRACLAW_CHECK_SDK(name) \
  static_assert(table_value(#name) == static_cast<std::uint32_t>(name), #name " differs from the SDK header");

#ifdef CRYPT_E_NOT_FOUND
ENTRACLAW_CHECK_SDK(CRYPT_E_NOT_FOUND)
#endif
#ifdef NTE_BAD_KEYSET
ENTRACLAW_CHECK_SDK(NTE_BAD_KEYSET)
#endif
#ifdef NTE_NO_KEY
ENTRACLAW_CHECK_SDK(NTE_NO_KEY)
#endif
#ifdef CRYPT_E_NO_KEY_PROPERTY
ENTRACLAW_CHECK_SDK(CRYPT_E_NO_KEY_PROPERTY)
#endif
#ifdef NTE_INVALID_HANDLE
ENTRACLAW_CHECK_SDK(NTE_INVALID_HANDLE)
#endif
#ifdef TPM_20_E_HANDLE
ENTRACLAW_CHECK_SDK(TPM_20_E_HANDLE)
#endif
#ifdef NTE_NO_MEMORY
ENTRACLAW_CHECK_SDK(NTE_NO_MEMORY)
#endif
#ifdef TBS_E_TOO_MANY_RESOURCES
ENTRACLAW_CHECK_SDK(TBS_E_TOO_MANY_RESOURCES)
#endif
#ifdef TPM_20_E_OBJECT_MEMORY
ENTRACLAW_CHECK_SDK(TPM_20_E_OBJECT_MEMORY)
#endif
#ifdef TPM_20_E_LOCKOUT
ENTRACLAW_CHECK_SDK(TPM_20_E_LOCKOUT)
#endif
#ifdef TPM_E_DEFEND_LOCK_RUNNING
ENTRACLAW_CHECK_SDK(TPM_E_DEFEND_LOCK_RUNNING)
#endif
#ifdef TBS_E_TPM_NOT_FOUND
ENTRACLAW_CHECK_SDK(TBS_E_TPM_NOT_FOUND)
#endif
#ifdef TBS_E_SERVICE_NOT_RUNNING
ENTRACLAW_CHECK_SDK(TBS_E_SERVICE_NOT_RUNNING)
#endif
#ifdef TBS_E_SERVICE_DISABLED
ENTRACLAW_CHECK_SDK(TBS_E_SERVICE_DISABLED)
#endif
#ifdef NTE_DEVICE_NOT_FOUND
ENTRACLAW_CHECK_SDK(NTE_DEVICE_NOT_FOUND)
#endif
#ifdef NTE_SILENT_CONTEXT
ENTRACLAW_CHECK_SDK(NTE_SILENT_CONTEXT)
#endif
#ifdef NTE_USER_CANCELLED
ENTRACLAW_CHECK_SDK(NTE_USER_CANCELLED)
#endif
#ifdef SCARD_W_CANCELLED_BY_USER
ENTRACLAW_CHECK_SDK(SCARD_W_CANCELLED_BY_USER)
#endif
#ifdef NTE_PERM
ENTRACLAW_CHECK_SDK(NTE_PERM)
#endif
#ifdef TBS_E_ACCESS_DENIED
ENTRACLAW_CHECK_SDK(TBS_E_ACCESS_DENIED)
#endif
#ifdef E_ACCESSDENIED
ENTRACLAW_CHECK_SDK(E_ACCESSDENIED)
#endif
#ifdef NTE_BAD_HASH_STATE
ENTRACLAW_CHECK_SDK(NTE_BAD_HASH_STATE)
#endif
#ifdef TPM_E_RETRY
ENTRACLAW_CHECK_SDK(TPM_E_RETRY)
#endif
#ifdef TPM_20_E_RETRY
ENTRACLAW_CHECK_SDK(TPM_20_E_RETRY)
#endif
#ifdef TPM_20_E_YIELDED
ENTRACLAW_CHECK_SDK(TPM_20_E_YIELDED)
#endif
#ifdef TPM_20_E_TESTING
ENTRACLAW_CHECK_SDK(TPM_20_E_TESTING)
#endif
#ifdef TPM_E_DOING_SELFTEST
ENTRACLAW_CHECK_SDK(TPM_E_DOING_SELFTEST)
#endif
#ifdef TBS_E_SERVICE_START_PENDING
ENTRACLAW_CHECK_SDK(TBS_E_SERVICE_START_PENDING)
#endif
#ifdef NTE_DEVICE_NOT_READY
ENTRACLAW_CHECK_SDK(NTE_DEVICE_NOT_READY)
#endif
#ifdef STATUS_UNSUCCESSFUL
ENTRACLAW_CHECK_SDK(STATUS_UNSUCCESSFUL)
#endif
#ifdef NTE_BUFFER_TOO_SMALL
ENTRACLAW_CHECK_SDK(NTE_BUFFER_TOO_SMALL)
#endif
#ifdef TPM_E_PCP_BUFFER_TOO_SMALL
ENTRACLAW_CHECK_SDK(TPM_E_PCP_BUFFER_TOO_SMALL)
#endif
#ifdef ERROR_INVALID_DATA
static_assert(table_value("ERROR_INVALID_DATA") == (0x80070000u | static_cast<std::uint32_t>(ERROR_INVALID_DATA)),
              "ERROR_INVALID_DATA differs from the SDK header");
#endif
#ifdef NTE_BAD_KEY_STATE
ENTRACLAW_CHECK_SDK(NTE_BAD_KEY_STATE)
#endif
#ifdef NTE_BAD_KEY
ENTRACLAW_CHECK_SDK(NTE_BAD_KEY)
#endif
#ifdef NTE_BAD_DATA
ENTRACLAW_CHECK_SDK(NTE_BAD_DATA)
#endif
#ifdef NTE_BAD_FLAGS
ENTRACLAW_CHECK_SDK(NTE_BAD_FLAGS)
#endif
#ifdef NTE_EXISTS
ENTRACLAW_CHECK_SDK(NTE_EXISTS)
#endif
#ifdef NTE_NOT_FOUND
ENTRACLAW_CHECK_SDK(NTE_NOT_FOUND)
#endif
#ifdef NTE_INVALID_PARAMETER
ENTRACLAW_CHECK_SDK(NTE_INVALID_PARAMETER)
#endif
#ifdef NTE_NOT_SUPPORTED
ENTRACLAW_CHECK_SDK(NTE_NOT_SUPPORTED)
#endif
#ifdef CRYPT_E_EXISTS
ENTRACLAW_CHECK_SDK(CRYPT_E_EXISTS)
#endif
#ifdef E_INVALIDARG
ENTRACLAW_CHECK_SDK(E_INVALIDARG)
#endif
#ifdef E_OUTOFMEMORY
ENTRACLAW_CHECK_SDK(E_OUTOFMEMORY)
#endif
#ifdef TPM_E_PCP_KEY_HANDLE_INVALIDATED
ENTRACLAW_CHECK_SDK(TPM_E_PCP_KEY_HANDLE_INVALIDATED)
#endif
#ifdef TPM_E_PCP_INVALID_HANDLE
ENTRACLAW_CHECK_SDK(TPM_E_PCP_INVALID_HANDLE)
#endif
#ifdef TPM_E_KEY_NOT_LOADED
ENTRACLAW_CHECK_SDK(TPM_E_KEY_NOT_LOADED)
#endif
#ifdef E_FAIL
ENTRACLAW_CHECK_SDK(E_FAIL)
#endif
#ifdef TPM_E_LOCKED_OUT
ENTRACLAW_CHECK_SDK(TPM_E_LOCKED_OUT)
#endif
#ifdef TPM_E_PCP_AUTHENTICATION_FAILED
ENTRACLAW_CHECK_SDK(TPM_E_PCP_AUTHENTICATION_FAILED)
#endif
#ifdef TPM_20_E_AUTH_FAIL
ENTRACLAW_CHECK_SDK(TPM_20_E_AUTH_FAIL)
#endif
#ifdef TPM_20_E_BAD_AUTH
ENTRACLAW_CHECK_SDK(TPM_20_E_BAD_AUTH)
#endif
#ifdef TPM_E_PCP_DEVICE_NOT_READY
ENTRACLAW_CHECK_SDK(TPM_E_PCP_DEVICE_NOT_READY)
#endif
#ifdef TPM_E_PCP_IFX_RSA_KEY_CREATION_BLOCKED
ENTRACLAW_CHECK_SDK(TPM_E_PCP_IFX_RSA_KEY_CREATION_BLOCKED)
#endif
#ifdef TPM_20_E_NV_RATE
ENTRACLAW_CHECK_SDK(TPM_20_E_NV_RATE)
#endif
#ifdef TPM_20_E_CANCELED
ENTRACLAW_CHECK_SDK(TPM_20_E_CANCELED)
#endif
#ifdef TBS_E_COMMAND_CANCELED
ENTRACLAW_CHECK_SDK(TBS_E_COMMAND_CANCELED)
#endif
#ifdef TPM_E_PCP_UNSUPPORTED_PSS_SALT
ENTRACLAW_CHECK_SDK(TPM_E_PCP_UNSUPPORTED_PSS_SALT)
#endif
#ifdef TPM_20_E_KEY_SIZE
ENTRACLAW_CHECK_SDK(TPM_20_E_KEY_SIZE)
#endif
#ifdef TPM_E_PCP_AUTHENTICATION_IGNORED
ENTRACLAW_CHECK_SDK(TPM_E_PCP_AUTHENTICATION_IGNORED)
#endif
#ifdef TPM_E_PCP_KEY_NOT_AIK
ENTRACLAW_CHECK_SDK(TPM_E_PCP_KEY_NOT_AIK)
#endif
#ifdef NTE_BAD_PROVIDER
ENTRACLAW_CHECK_SDK(NTE_BAD_PROVIDER)
#endif
#undef ENTRACLAW_CHECK_SDK

}  // namespace

const StatusInfo* status_table(std::size_t* count) {
  if (count != nullptr) *count = kTableSize;
  return kTable;
}

const StatusInfo* find_status(std::uint32_t code) {
  for (const auto& row : kTable) {
    if (row.code == code) return &row;
  }
  return nullptr;
}

const char* category_name(Category category) {
  switch (category) {
    case Category::None: return "none";
    case Category::NotFound: return "not_found";
    case Category::KeyMissing: return "key_missing";
    case Category::StaleHandle: return "stale_handle";
    case Category::SlotsExhausted: return "slots_exhausted";
    case Category::LockedOut: return "locked_out";
    case Category::TpmUnavailable: return "tpm_unavailable";
    case Category::UserInteraction: return "user_interaction";
    case Category::AccessDenied: return "access_denied";
    case Category::AuthFailed: return "auth_failed";
    case Category::TpmVulnerable: return "tpm_vulnerable";
    case Category::OutOfMemory: return "out_of_memory";
    case Category::PssUnsupported: return "pss_unsupported";
    case Category::Unsupported: return "unsupported";
    case Category::Transient: return "transient";
    case Category::BufferTooSmall: return "buffer_too_small";
    case Category::InvalidData: return "invalid_data";
    case Category::Other: return "other";
  }
  return "other";
}

const char* action_name(Action action) {
  switch (action) {
    case Action::None: return "none";
    case Action::Reacquire: return "reacquire";
    case Action::Retry: return "retry";
    case Action::Resize: return "resize";
  }
  return "none";
}

Category category_of(HRESULT hr) {
  const StatusInfo* row = find_status(static_cast<std::uint32_t>(hr));
  return row != nullptr ? row->category : Category::None;
}

Action action_of(HRESULT hr) {
  const StatusInfo* row = find_status(static_cast<std::uint32_t>(hr));
  return row != nullptr ? row->action : Action::None;
}

HRESULT hresult_from_last_error(DWORD error) {
  // Only called after a BOOL API reported failure. Some (CertOpenStore with
  // particular providers, CertAddCertificateContextToStore) can fail without
  // setting a last error; 0 would read as success, so it becomes E_FAIL.
  if (error == 0) return static_cast<HRESULT>(0x80004005u);  // E_FAIL
  // FACILITY_WIN32 codes fit in 16 bits; anything larger already is an HRESULT.
  if (error <= 0xFFFFu) return static_cast<HRESULT>(0x80070000u | error);
  return static_cast<HRESULT>(error);
}

}  // namespace entraclaw::cng
