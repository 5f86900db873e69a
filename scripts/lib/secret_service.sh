# shellcheck shell=bash
# Shared by scripts/with_secret_service.sh (throwaway keyring) and scripts/with_state_keyring.sh
# (keyring kept in the state directory): a private D-Bus session with gnome-keyring-daemon's secrets
# component, unlocked with a password read on stdin. Sourced, never run.

# Re-run the calling script inside a private session bus, once: MARKER is set for the inner run.
#   secret_service_enter_session MARKER SCRIPT [ARGS...]   (returns only inside the session)
secret_service_enter_session() {
    local marker=$1 script=$2
    shift 2
    if [ "${!marker:-}" = 1 ]; then
        unset "$marker"
        return 0
    fi
    local missing=()
    command -v dbus-run-session >/dev/null || missing+=("dbus-run-session (apt-get install dbus-daemon)")
    command -v dbus-send >/dev/null || missing+=("dbus-send (apt-get install dbus-bin)")
    command -v gnome-keyring-daemon >/dev/null || missing+=("gnome-keyring-daemon (apt-get install gnome-keyring)")
    if [ ${#missing[@]} -gt 0 ]; then
        printf '%s: missing %s\n' "$script" "${missing[*]}" >&2
        exit 127
    fi
    exec env "$marker=1" dbus-run-session -- bash "$script" "$@"
}

# Point gnome-keyring at RUNTIME (its control socket) and DATA (DATA/keyrings holds the keyrings);
# secret_service_restore_xdg gives CMD the caller's values back (clients reach the daemon over the bus).
#   secret_service_use_dirs RUNTIME DATA
secret_service_use_dirs() {
    _ss_saved_runtime=${XDG_RUNTIME_DIR-__unset__}
    _ss_saved_data=${XDG_DATA_HOME-__unset__}
    export XDG_RUNTIME_DIR="$1" XDG_DATA_HOME="$2"
}

secret_service_restore_xdg() {
    _ss_restore XDG_RUNTIME_DIR "$_ss_saved_runtime"
    _ss_restore XDG_DATA_HOME "$_ss_saved_data"
}

_ss_restore() { if [ "$2" = __unset__ ]; then unset "$1"; else export "$1=$2"; fi; }

# Start the daemon: --unlock reads the password from PASSWORD_FILE (only it: the other commands keep
# the caller's stdin), creates the "login" keyring (the default collection) if there is none and
# unlocks it; --start then attaches to that daemon and prints the variables clients need, which are
# exported here. Waits until the service is on the bus.
#   secret_service_start SCRIPT PASSWORD_FILE
secret_service_start() {
    local script=$1 password_file=$2 unlock_env start_env line
    unlock_env=$(gnome-keyring-daemon --daemonize --unlock --components=secrets <"$password_file")
    start_env=$(gnome-keyring-daemon --start --components=secrets 2>/dev/null)
    while IFS= read -r line; do
        case "$line" in
            *=*) export "${line?}" ;;
        esac
    done <<<"$unlock_env
$start_env"
    # The daemonized keyring may still be registering on the bus when --unlock returns (seen on a
    # loaded machine: every first test failed). Wait, bounded, until org.freedesktop.secrets has an owner.
    local _
    for _ in $(seq 1 150); do
        if dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
            org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q "boolean true"; then
            return 0
        fi
        sleep 0.1
    done
    echo "$script: gnome-keyring-daemon did not register org.freedesktop.secrets within 15 s" >&2
    exit 1
}
