// Small portable conversions the core needs at its edges.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "win32.h"

namespace entraclaw::cng {

using Sha1 = std::array<std::uint8_t, 20>;

// UTF-8 <-> WCHAR strings. WCHAR is UTF-16 on Windows and UTF-32 on the
// stand-in; both directions handle either.
std::wstring widen(const std::string& utf8);
std::string narrow(const WCHAR* text, std::size_t length);
std::string narrow(const std::wstring& text);

// 40 hex digits (any case) -> 20 bytes. False on any other shape.
bool parse_sha1_hex(const std::string& hex, Sha1& out);

// FILETIME (100 ns since 1601) <-> Unix seconds; SYSTEMTIME in UTC.
std::int64_t filetime_to_unix(const FILETIME& ft);
SYSTEMTIME unix_to_systemtime(std::int64_t seconds);

// Zeroing the compiler may not drop (plaintext copies of secrets).
void secure_zero(void* data, std::size_t length);

}  // namespace entraclaw::cng
