// The one include that gives the core the Win32 crypto surface it calls.
// On Windows (MSVC or mingw-w64) that is the real SDK; everywhere else it is the
// test-only software stand-in, which declares the same names with the same values
// so the core compiles unchanged.
#pragma once

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#include <wincrypt.h>
#include <ncrypt.h>
#include <dpapi.h>
#define ENTRACLAW_BACKEND "cng"
#else
#include "entraclaw_standin/windows_standin.h"
#define ENTRACLAW_BACKEND "standin"
#endif
