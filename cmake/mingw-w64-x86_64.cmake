# Cross-compile for 64-bit Windows with Debian's mingw-w64 (posix threads).
#   cmake -S native/wine -B build/wine -DCMAKE_TOOLCHAIN_FILE=$PWD/cmake/mingw-w64-x86_64.cmake
# The binaries link the real import libraries mingw-w64 ships (libncrypt.a,
# libcrypt32.a, libbcrypt.a), so what runs under Wine is the same call sequence
# a Windows build makes.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)

set(ENTRACLAW_MINGW_TRIPLET x86_64-w64-mingw32 CACHE STRING "mingw-w64 target triplet")
# The -posix variants: std::thread / std::mutex need winpthreads; the -win32
# variants lack them in GCC < 13.
find_program(CMAKE_C_COMPILER NAMES ${ENTRACLAW_MINGW_TRIPLET}-gcc-posix ${ENTRACLAW_MINGW_TRIPLET}-gcc REQUIRED)
find_program(CMAKE_CXX_COMPILER NAMES ${ENTRACLAW_MINGW_TRIPLET}-g++-posix ${ENTRACLAW_MINGW_TRIPLET}-g++ REQUIRED)
find_program(CMAKE_RC_COMPILER NAMES ${ENTRACLAW_MINGW_TRIPLET}-windres windres)

set(CMAKE_FIND_ROOT_PATH /usr/${ENTRACLAW_MINGW_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Fully static: the exe must start in a bare Wine prefix (or on a Windows
# runner) without libstdc++-6.dll / libgcc_s_seh-1.dll / libwinpthread-1.dll.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static-libgcc -static-libstdc++")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-static-libgcc -static-libstdc++")
