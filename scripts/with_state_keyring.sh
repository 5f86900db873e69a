#!/usr/bin/env bash
# Run a command with a PERSISTENT Secret Service for a headless service account: a private D-Bus
# session bus (dbus-run-session) and gnome-keyring-daemon whose keyrings live in the entraclaw
# state directory, so a key stored by `entraclaw setup --key-storage keystore` is still there for
# the next `entraclaw token`, after the session (and the machine) restarted.
#
#   scripts/with_state_keyring.sh CMD [ARGS...]
#
# Where the keyring lives:   $ENTRACLAW_HOME/secret-service/keyrings/login.keyring (owner-only;
#                            ENTRACLAW_HOME defaults to ~/.entraclaw). Encrypted with the password.
# How it is unlocked:        the password is read from, first that exists:
#   1. $CREDENTIALS_DIRECTORY/entraclaw-keyring   systemd's LoadCredential= / LoadCredentialEncrypted=
#                                                 (the latter is sealed by the host's TPM or its
#                                                 credential key: the best choice on a server)
#   2. $ENTRACLAW_KEYRING_PASSWORD_FILE           an owner-only file you manage
# The first run creates the keyring with that password; later runs unlock it with the same one.
# A wrong password leaves the keyring locked: the command then fails with entraclaw's
# "keyring is locked" error instead of prompting.
#
# Threat model, plainly: with the password in a file next to the state directory this protects
# no better than `entraclaw setup --key-storage file` (an owner-only PEM). It is worth more when
# the password comes from LoadCredentialEncrypted= or a secret manager mounted at run time. Where
# the machine has a TPM, a TPM-backed key is better still (docs/headless.md).
#
# scripts/with_secret_service.sh is the test harness: its keyring is thrown away when CMD ends.
#
# Needs: dbus-run-session (Debian: dbus-daemon), dbus-send (dbus-bin), gnome-keyring-daemon (gnome-keyring).
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

if [ "${_ENTRACLAW_IN_STATE_KEYRING:-}" != 1 ]; then
    missing=()
    command -v dbus-run-session >/dev/null || missing+=("dbus-run-session (apt-get install dbus-daemon)")
    command -v dbus-send >/dev/null || missing+=("dbus-send (apt-get install dbus-bin)")
    command -v gnome-keyring-daemon >/dev/null || missing+=("gnome-keyring-daemon (apt-get install gnome-keyring)")
    if [ ${#missing[@]} -gt 0 ]; then
        printf '%s: missing %s\n' "$0" "${missing[*]}" >&2
        exit 127
    fi
    exec env _ENTRACLAW_IN_STATE_KEYRING=1 dbus-run-session -- bash "$0" "$@"
fi
unset _ENTRACLAW_IN_STATE_KEYRING

state=${ENTRACLAW_HOME:-$HOME/.entraclaw}
password_file=
if [ -n "${CREDENTIALS_DIRECTORY:-}" ] && [ -f "$CREDENTIALS_DIRECTORY/entraclaw-keyring" ]; then
    password_file=$CREDENTIALS_DIRECTORY/entraclaw-keyring
elif [ -n "${ENTRACLAW_KEYRING_PASSWORD_FILE:-}" ]; then
    password_file=$ENTRACLAW_KEYRING_PASSWORD_FILE
fi
if [ -z "$password_file" ] || [ ! -r "$password_file" ]; then
    echo "$0: no keyring password: set ENTRACLAW_KEYRING_PASSWORD_FILE to an owner-only file, or pass it as the" \
        "systemd credential 'entraclaw-keyring' (LoadCredentialEncrypted=entraclaw-keyring:...)." >&2
    exit 2
fi

umask 077
mkdir -p "$state/secret-service"
chmod 700 "$state" "$state/secret-service"
runtime=$(mktemp -d "${TMPDIR:-/tmp}/entraclaw-keyring-run.XXXXXX")
trap 'rm -rf "$runtime"' EXIT
# gnome-keyring keeps keyrings in XDG_DATA_HOME/keyrings (here: the state directory, persistent) and
# its control socket in XDG_RUNTIME_DIR (here: private to this run). CMD gets the caller's values back.
saved_runtime=${XDG_RUNTIME_DIR-__unset__} saved_data=${XDG_DATA_HOME-__unset__}
export XDG_RUNTIME_DIR="$runtime" XDG_DATA_HOME="$state/secret-service"

unlock_env=$(gnome-keyring-daemon --daemonize --unlock --components=secrets <"$password_file")
start_env=$(gnome-keyring-daemon --start --components=secrets 2>/dev/null)
while IFS= read -r line; do
    case "$line" in
        *=*) export "${line?}" ;;
    esac
done <<<"$unlock_env
$start_env"
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
