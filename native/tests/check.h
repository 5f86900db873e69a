// The checks shared by the C++ test drivers (core_test.cpp, contract_test.cpp): each driver
// includes this once, counts every check, reports each failure with its file and line, and
// exits non-zero when any failed (scripts/native_sanitize.sh runs them under ASan + UBSan).
#pragma once

#include <cstdio>

#include "status.h"

namespace {

int g_failures = 0;
int g_checks = 0;

constexpr const char* kSoftware = "Microsoft Software Key Storage Provider";
constexpr const char* kPlatform = "Microsoft Platform Crypto Provider";

// The driver's last line and exit status: "<prefix>N checks, M failures".
int report(const char* prefix) {
  std::printf("%s%d checks, %d failures\n", prefix, g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}

}  // namespace

#define CHECK(cond)                                                         \
  do {                                                                      \
    ++g_checks;                                                             \
    if (!(cond)) {                                                          \
      ++g_failures;                                                         \
      std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                       \
  } while (0)

// A cng::Status that must be ok; a failure names the HRESULT and the API that returned it.
#define CHECK_OK(status)                                                                                   \
  do {                                                                                                     \
    const entraclaw::cng::Status _st = (status);                                                           \
    ++g_checks;                                                                                            \
    if (!_st.ok()) {                                                                                       \
      ++g_failures;                                                                                        \
      std::fprintf(stderr, "FAIL %s:%d: %s -> 0x%08X from %s\n", __FILE__, __LINE__, #status, _st.code(), \
                   _st.api);                                                                               \
    }                                                                                                      \
  } while (0)
