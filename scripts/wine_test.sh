#!/usr/bin/env bash
# Cross-build the CNG signer core with mingw-w64 (native/wine: entraclaw_wine_probe.exe, static,
# linked against mingw's real ncrypt/crypt32 import libraries), then run tests/test_wine_*.py,
# which execute it under Wine and verify every signature with `cryptography`.
#
#   bash scripts/wine_test.sh                # build + test (extra arguments go to pytest)
#   bash scripts/wine_test.sh --build-only   # build only; prints the exe path
#
# Needs: cmake, ninja (optional), g++-mingw-w64-x86-64-posix, wine64 (Debian packages).
# Environment: BUILD_DIR (default build/wine), ENTRACLAW_WINEPREFIX (default ~/.cache/entraclaw/wine-prefix,
# reused across runs: creating a prefix takes ~20 s), ENTRACLAW_WINE (the Wine loader).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build/wine}
build_only=0
if [ "${1:-}" = "--build-only" ]; then build_only=1; shift; fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

t0=$(date +%s)
cmake -S native/wine -B "$build_dir" "${generator[@]}" \
    -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/mingw-w64-x86_64.cmake" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" --parallel 2
exe="$(cd "$build_dir" && pwd)/entraclaw_wine_probe.exe"
echo "cross build: $(( $(date +%s) - t0 ))s -> $exe"
if [ "$build_only" = 1 ]; then exit 0; fi

export ENTRACLAW_WINE_PROBE="$exe"
# Outside the checkout: a prefix is ~700 MB, and the sdist build walks the tree.
export ENTRACLAW_WINEPREFIX=${ENTRACLAW_WINEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/entraclaw/wine-prefix}
t1=$(date +%s)
python -m pytest tests/test_wine_sign.py tests/test_wine_acl.py tests/test_keystore_wine.py -p no:cacheprovider "$@"
echo "wine tests: $(( $(date +%s) - t1 ))s (prefix $ENTRACLAW_WINEPREFIX)"
