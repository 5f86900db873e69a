#!/usr/bin/env bash
# Run a command with a real, unlocked Secret Service: a private D-Bus session bus
# (dbus-run-session) and gnome-keyring-daemon (secrets component) whose login
# keyring is created and unlocked with a throwaway random password.
#
#   scripts/with_secret_service.sh CMD [ARGS...]
#
# The keyring lives in a temporary XDG_DATA_HOME / XDG_RUNTIME_DIR, never in the
# user's own keyrings, and is removed when CMD ends; the bus and the daemon end
# with the session. Exit status is CMD's. Used by .ci/run around the test
# command, and to TRY the keyring store on a headless machine: a key stored in
# it is gone when CMD ends. For a real headless service use
# scripts/with_state_keyring.sh (keyring kept in the state directory) or
# `entraclaw setup --key-storage file` (docs/headless.md).
#
# Needs: dbus-run-session (Debian: dbus-daemon), dbus-send (dbus-bin), gnome-keyring-daemon (gnome-keyring).
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

# shellcheck source=lib/secret_service.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/secret_service.sh"
secret_service_enter_session _ENTRACLAW_IN_SECRET_SESSION "$0" "$@"

work=$(mktemp -d "${TMPDIR:-/tmp}/entraclaw-secret-service.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
mkdir -m 700 "$work/runtime" "$work/data"
secret_service_use_dirs "$work/runtime" "$work/data"

password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
# The password travels through a pipe, never a file or an argument.
secret_service_start "$0" <(printf '%s' "$password")
unset password
# Tells the tests this Secret Service is a throwaway one they may write to (they refuse to touch
# a user's own keyring) and tells scripts/test.sh not to start another.
export ENTRACLAW_PRIVATE_SECRET_SERVICE=1
# Where the throwaway keyring file is, so tests can show it holds no secret in the clear.
export ENTRACLAW_SECRET_SERVICE_DATA="$work/data"
secret_service_restore_xdg

"$@"
