#include "text.h"

#include <cstring>

namespace entraclaw::cng {
namespace {

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void append_wide(std::wstring& out, char32_t cp) {
  if constexpr (sizeof(wchar_t) == 2) {
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out.push_back(static_cast<wchar_t>(0xD800 + (cp >> 10)));
      out.push_back(static_cast<wchar_t>(0xDC00 + (cp & 0x3FF)));
      return;
    }
  }
  out.push_back(static_cast<wchar_t>(cp));
}

constexpr char32_t kReplacement = 0xFFFD;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Days since 1970-01-01 -> civil date (proleptic Gregorian), H. Hinnant's algorithm.
void civil_from_days(std::int64_t z, int& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t yy = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<int>(yy + (m <= 2 ? 1 : 0));
}

}  // namespace

std::wstring widen(const std::string& utf8) {
  std::wstring out;
  out.reserve(utf8.size());
  std::size_t i = 0;
  while (i < utf8.size()) {
    const auto b0 = static_cast<unsigned char>(utf8[i]);
    char32_t cp = kReplacement;
    std::size_t n = 1;
    if (b0 < 0x80) {
      cp = b0;
    } else if ((b0 & 0xE0) == 0xC0) {
      n = 2;
    } else if ((b0 & 0xF0) == 0xE0) {
      n = 3;
    } else if ((b0 & 0xF8) == 0xF0) {
      n = 4;
    }
    if (n > 1) {
      if (i + n > utf8.size()) {
        n = 1;
      } else {
        cp = b0 & (0x7F >> n);
        for (std::size_t k = 1; k < n; ++k) {
          const auto bk = static_cast<unsigned char>(utf8[i + k]);
          if ((bk & 0xC0) != 0x80) {
            cp = kReplacement;
            n = k;
            break;
          }
          cp = (cp << 6) | (bk & 0x3F);
        }
      }
    }
    append_wide(out, cp);
    i += n;
  }
  return out;
}

std::string narrow(const WCHAR* text, std::size_t length) {
  std::string out;
  out.reserve(length);
  for (std::size_t i = 0; i < length; ++i) {
    char32_t cp = static_cast<char32_t>(text[i]);
    if constexpr (sizeof(WCHAR) == 2) {
      if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < length) {
        const char32_t lo = static_cast<char32_t>(text[i + 1]);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          ++i;
        }
      }
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacement;
    append_utf8(out, cp);
  }
  return out;
}

std::string narrow(const std::wstring& text) { return narrow(text.data(), text.size()); }

bool parse_sha1_hex(const std::string& hex, Sha1& out) {
  if (hex.size() != out.size() * 2) return false;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return true;
}

std::int64_t filetime_to_unix(const FILETIME& ft) {
  // 100 ns intervals between 1601-01-01 and 1970-01-01.
  constexpr std::int64_t kEpochDelta = 116444736000000000LL;
  const std::uint64_t ticks = (static_cast<std::uint64_t>(ft.dwHighDateTime) << 32) | ft.dwLowDateTime;
  const std::int64_t since_unix = static_cast<std::int64_t>(ticks) - kEpochDelta;
  // Floor division so dates before 1970 round down, like Python's fromtimestamp.
  return since_unix >= 0 ? since_unix / 10000000 : -((-since_unix + 9999999) / 10000000);
}

SYSTEMTIME unix_to_systemtime(std::int64_t seconds) {
  std::int64_t days = seconds / 86400;
  std::int64_t rem = seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  int y = 0;
  unsigned m = 0;
  unsigned d = 0;
  civil_from_days(days, y, m, d);
  SYSTEMTIME st{};
  st.wYear = static_cast<WORD>(y);
  st.wMonth = static_cast<WORD>(m);
  st.wDay = static_cast<WORD>(d);
  st.wDayOfWeek = static_cast<WORD>((days % 7 + 11) % 7);  // 1970-01-01 was a Thursday (4)
  st.wHour = static_cast<WORD>(rem / 3600);
  st.wMinute = static_cast<WORD>((rem % 3600) / 60);
  st.wSecond = static_cast<WORD>(rem % 60);
  return st;
}

void secure_zero(void* data, std::size_t length) {
  volatile unsigned char* p = static_cast<volatile unsigned char*>(data);
  while (length-- > 0) *p++ = 0;
}

}  // namespace entraclaw::cng
