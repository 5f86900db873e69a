// DPAPI for the Windows credential store: current-user scope, no UI, optional
// entropy. Plaintext copies made here are zeroed before they are freed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace entraclaw::cng {

Status protect_data(const std::uint8_t* data, std::size_t len, const std::uint8_t* entropy, std::size_t entropy_len,
                    const std::string& description, std::vector<std::uint8_t>& out);

Status unprotect_data(const std::uint8_t* blob, std::size_t len, const std::uint8_t* entropy,
                      std::size_t entropy_len, std::vector<std::uint8_t>& out);

// FormatMessage text for `hr` on Windows; empty on the stand-in (no OS text).
std::string system_message(HRESULT hr);

}  // namespace entraclaw::cng
