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
# Needs: dbus-run-session (Debian: dbus-daemon), dbus-send (dbus-bin), gnome-keyring-daemon (gnome-keyring),
# and scripts/lib/secret_service.sh beside it (sourced: the session and daemon start shared with the harness).
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

# shellcheck source=lib/secret_service.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/secret_service.sh"
secret_service_enter_session _ENTRACLAW_IN_STATE_KEYRING "$0" "$@"

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
secret_service_use_dirs "$runtime" "$state/secret-service"
secret_service_start "$0" "$password_file"
secret_service_restore_xdg

"$@"
