// Status of one Win32 call, and what the status table says about it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "win32.h"

namespace entraclaw::cng {

// The outcome of the last Win32 call an operation made. `api` is the SDK
// function name (a string literal, never owned).
struct Status {
  HRESULT hr = 0;
  const char* api = "";

  bool ok() const { return hr == 0; }
  std::uint32_t code() const { return static_cast<std::uint32_t>(hr); }
};

inline Status ok_status() { return Status{}; }
inline Status make_status(std::uint32_t code, const char* api) {
  return Status{static_cast<HRESULT>(code), api};
}

// Error category; cng.py maps each one to an entraclaw.errors class.
enum class Category {
  None,  // success or a code the table does not know
  NotFound,
  KeyMissing,
  StaleHandle,
  SlotsExhausted,
  LockedOut,
  TpmUnavailable,
  UserInteraction,
  AccessDenied,
  AuthFailed,      // wrong authorization; counts toward dictionary-attack lockout
  TpmVulnerable,   // the TPM is blocked from making RSA keys (Infineon ROCA)
  OutOfMemory,     // an allocation failed in the provider
  PssUnsupported,  // the TPM signs PSS only with the maximum salt
  Unsupported,     // the TPM cannot do this (key size)
  Transient,
  BufferTooSmall,
  InvalidData,
  Other,
};

// What the core does about a status before it gives up.
enum class Action {
  None,
  Reacquire,  // re-open the key once (stale handle)
  Retry,      // bounded retry with backoff (busy device)
  Resize,     // query the output size and call again
};

struct StatusInfo {
  const char* name;
  std::uint32_t code;
  Category category;
  Action action;
};

// The whole table, in declaration order.
const StatusInfo* status_table(std::size_t* count);

// The row for `code`, or nullptr when the table does not know it.
const StatusInfo* find_status(std::uint32_t code);

const char* category_name(Category category);
const char* action_name(Action action);

// Category and action of a status (None/None when unknown or success).
Category category_of(HRESULT hr);
Action action_of(HRESULT hr);

// BOOL-returning crypt32 calls report through GetLastError, which mixes plain
// Win32 errors (13) with HRESULTs (0x80092004); normalise to an HRESULT.
HRESULT hresult_from_last_error(DWORD error);

}  // namespace entraclaw::cng
