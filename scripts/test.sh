#!/usr/bin/env bash
# The README's test command. Installs what the tests need (system packages when run as root on
# Debian/Ubuntu; otherwise it says what is missing), builds entraclaw with the test-only stand-in
# of the native CNG module, and runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v c++ >/dev/null || need_pkgs+=(g++)
command -v cmake >/dev/null || need_pkgs+=(cmake)
[ -f /usr/include/openssl/evp.h ] || need_pkgs+=(libssl-dev)
command -v x86_64-w64-mingw32-g++-posix >/dev/null || need_pkgs+=(g++-mingw-w64-x86-64-posix)
[ -x /usr/lib/wine/wine64 ] || need_pkgs+=(wine64)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing system packages: ${need_pkgs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    else
        echo "note: missing system packages (${need_pkgs[*]}); tests that need them will be skipped." >&2
    fi
fi

python -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
# Test-only build: the same C++ signer, linked against the software stand-in of ncrypt/crypt32.
ENTRACLAW_BUILD_NATIVE=standin python -m pip install -q --no-build-isolation -e ".[test]"
exec python -m pytest "$@"
