#!/usr/bin/env bash
# The README's test command. Installs what the tests need (system packages when run as root on
# Debian/Ubuntu; otherwise it says what is missing), builds entraclaw with the test-only stand-in
# of the native CNG module, and runs pytest. Extra arguments go to pytest.
#
# Where it installs: a virtual environment of its own, OUTSIDE the source tree, so the test-only
# stand-in build never replaces an entraclaw you installed yourself (in a venv or elsewhere):
#     ${ENTRACLAW_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/entraclaw-test-venv}
# It is created on first use and reused after that; delete it to start afresh.
#   - An active venv ($VIRTUAL_ENV) is NOT used, because it is most likely your own install.
#   - To run in a venv you prepared for the purpose (CI: .ci/run does this), point
#     ENTRACLAW_TEST_VENV at it; if that venv is the active one it is used as it is.
#
# On Linux it runs inside scripts/with_secret_service.sh (a private D-Bus session + throwaway
# gnome-keyring) so the keyring and encrypted token cache tests meet a real Secret Service without
# touching your own keyring.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v c++ >/dev/null || need_pkgs+=(g++)
command -v cmake >/dev/null || need_pkgs+=(cmake)
[ -f /usr/include/openssl/evp.h ] || need_pkgs+=(libssl-dev)
command -v x86_64-w64-mingw32-g++-posix >/dev/null || need_pkgs+=(g++-mingw-w64-x86-64-posix)
[ -x /usr/lib/wine/wine64 ] || need_pkgs+=(wine64)
PY=${PYTHON:-python3}
# Debian splits venv support out of python3; without it `python3 -m venv` fails ("ensurepip is not available").
"$PY" -c "import ensurepip" 2>/dev/null || need_pkgs+=(python3-venv)
if [ "$(uname -s)" = Linux ]; then
    # Secret Service (keyring store, encrypted token cache) and what PyGObject builds against.
    command -v gnome-keyring-daemon >/dev/null || need_pkgs+=(gnome-keyring)
    command -v dbus-run-session >/dev/null || need_pkgs+=(dbus-daemon)
    command -v dbus-send >/dev/null || need_pkgs+=(dbus-bin)
    ls /usr/lib/*/girepository-1.0/Secret-1.typelib >/dev/null 2>&1 || need_pkgs+=(libsecret-1-0 gir1.2-secret-1)
    command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
    # The proxy tests start tinyproxy on loopback; the schedule tests check units with systemd-analyze.
    command -v tinyproxy >/dev/null || [ -x /usr/bin/tinyproxy ] || need_pkgs+=(tinyproxy)
    command -v systemd-analyze >/dev/null || need_pkgs+=(systemd)
    pkg-config --exists gobject-introspection-1.0 2>/dev/null || need_pkgs+=(libgirepository1.0-dev)
    pkg-config --exists cairo 2>/dev/null || need_pkgs+=(libcairo2-dev)
    # Linux TPM keys: swtpm is the TPM the tests start; tpm2-pytss compiles against libtss2-dev;
    # tpm2-tools is the load-and-sign baseline of bench/bench_tpm2.py.
    command -v swtpm >/dev/null || need_pkgs+=(swtpm)
    command -v swtpm_setup >/dev/null || need_pkgs+=(swtpm-tools)
    pkg-config --exists tss2-esys 2>/dev/null || need_pkgs+=(libtss2-dev)
    command -v tpm2_sign >/dev/null || need_pkgs+=(tpm2-tools)
fi
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

if [ "$(uname -s)" = Linux ] && [ -z "${ENTRACLAW_PRIVATE_SECRET_SERVICE:-}" ] \
    && command -v dbus-run-session >/dev/null && command -v dbus-send >/dev/null \
    && command -v gnome-keyring-daemon >/dev/null; then
    # The keystore and token-cache tests need a Secret Service, and must never write to the
    # user's own keyring: run everything in a private, throwaway one.
    exec bash scripts/with_secret_service.sh bash scripts/test.sh "$@"
fi

VENV=${ENTRACLAW_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/entraclaw-test-venv}
case "$VENV" in
    "$PWD"/*) echo "error: ENTRACLAW_TEST_VENV ($VENV) is inside the source tree; put it outside (sdist tests walk the tree)." >&2; exit 2 ;;
esac
if [ -n "${VIRTUAL_ENV:-}" ] && [ "$(cd "$VIRTUAL_ENV" && pwd -P)" = "$(mkdir -p "$VENV" && cd "$VENV" && pwd -P)" ]; then
    echo "test venv: $VENV (already active)"
else
    if [ ! -x "$VENV/bin/python" ]; then
        echo "test venv: creating $VENV (your own entraclaw install is not touched)"
        "$PY" -m venv "$VENV"
    else
        echo "test venv: $VENV (your own entraclaw install is not touched)"
    fi
    # shellcheck disable=SC1091
    . "$VENV/bin/activate"
fi

python -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
# Test-only build: the same C++ signer, linked against the software stand-in of ncrypt/crypt32.
# On Linux also the `tpm2` extra (tpm2-pytss, compiled against libtss2-dev) for the TPM key tests.
# Built first, in its own build environment: the --no-build-isolation below would otherwise make its
# build requirements (pkgconfig, cffi, ...) ours.
extras=test
if [ "$(uname -s)" = Linux ] && pkg-config --exists tss2-esys 2>/dev/null; then
    python -m pip install -q "tpm2-pytss>=3.0"
    extras=test,tpm2
fi
ENTRACLAW_BUILD_NATIVE=standin python -m pip install -q --no-build-isolation -e ".[$extras]"
if [ "$(uname -s)" = Linux ]; then
    # msal-extensions encrypts the token cache through libsecret via PyGObject (`gi`). Installed
    # here, not in the `test` extra: it compiles against system headers (girepository, cairo),
    # which `pip install .[test]` cannot bring. <3.51: 3.51+ needs girepository-2.0 (GLib 2.80),
    # Debian 12 has GLib 2.74.
    if pkg-config --exists gobject-introspection-1.0 cairo 2>/dev/null; then
        python -m pip install -q "PyGObject>=3.42,<3.51"
    else
        echo "note: libgirepository1.0-dev/libcairo2-dev missing; encrypted token cache tests will be skipped." >&2
    fi
fi
exec python -m pytest "$@"
