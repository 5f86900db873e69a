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

if [ "${_ENTRACLAW_IN_SECRET_SESSION:-}" != 1 ]; then
    missing=()
    command -v dbus-run-session >/dev/null || missing+=("dbus-run-session (apt-get install dbus-daemon)")
    command -v dbus-send >/dev/null || missing+=("dbus-send (apt-get install dbus-bin)")
    command -v gnome-keyring-daemon >/dev/null || missing+=("gnome-keyring-daemon (apt-get install gnome-keyring)")
    if [ ${#missing[@]} -gt 0 ]; then
        printf '%s: missing %s\n' "$0" "${missing[*]}" >&2
        exit 127
    fi
    exec env _ENTRACLAW_IN_SECRET_SESSION=1 dbus-run-session -- bash "$0" "$@"
fi
unset _ENTRACLAW_IN_SECRET_SESSION

work=$(mktemp -d "${TMPDIR:-/tmp}/entraclaw-secret-service.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
mkdir -m 700 "$work/runtime" "$work/data"
# gnome-keyring puts its control socket in XDG_RUNTIME_DIR and its keyrings in
# XDG_DATA_HOME/keyrings: both private to this run. CMD gets the caller's values
# back (clients reach the daemon over the session bus).
saved_runtime=${XDG_RUNTIME_DIR-__unset__} saved_data=${XDG_DATA_HOME-__unset__}
export XDG_RUNTIME_DIR="$work/runtime" XDG_DATA_HOME="$work/data"

password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
# --unlock reads the password on stdin, creates the "login" keyring (the
# default collection) if there is none, and unlocks it; --start then attaches
# to that daemon and prints the variables clients need.
unlock_env=$(printf '%s' "$password" | gnome-keyring-daemon --daemonize --unlock --components=secrets)
start_env=$(gnome-keyring-daemon --start --components=secrets 2>/dev/null)
unset password
# Tells the tests this Secret Service is a throwaway one they may write to (they refuse to touch
# a user's own keyring) and tells scripts/test.sh not to start another.
export ENTRACLAW_PRIVATE_SECRET_SERVICE=1
# Where the throwaway keyring file is, so tests can show it holds no secret in the clear.
export ENTRACLAW_SECRET_SERVICE_DATA="$work/data"
while IFS= read -r line; do
    case "$line" in
        *=*) export "${line?}" ;;
    esac
done <<<"$unlock_env
$start_env"
# The daemonized keyring may still be registering on the bus when --unlock returns (seen on a
# loaded machine: every first test failed). Wait, bounded, until org.freedesktop.secrets has an owner.
ready=0
for _ in $(seq 1 150); do
    if dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q "boolean true"; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    echo "$0: gnome-keyring-daemon did not register org.freedesktop.secrets within 15 s" >&2
    exit 1
fi
restore() { if [ "$2" = __unset__ ]; then unset "$1"; else export "$1=$2"; fi; }
restore XDG_RUNTIME_DIR "$saved_runtime"
restore XDG_DATA_HOME "$saved_data"

"$@"
