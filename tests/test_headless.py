"""Headless Linux, as a new user meets it: no desktop keyring, a service account, a state directory.

Regressions, each seen failing first:
- the `setup` line `emulator serve` prints failed with "No OS keyring is available" and its remedy never
  named `--key-storage file`;
- scripts/with_secret_service.sh throws its keyring away, so a key stored in it is gone for the next
  `token`; scripts/with_state_keyring.sh keeps the keyring in the state directory, unlocked from a
  password file or a systemd credential, across D-Bus sessions;
- migrate_legacy_state() ran only when the runtime loaded its config, not in setup, rotate or doctor.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capabilities import require
from emulator_helpers import serve, stop_serve
from provisioning_helpers import HAVE_GRAPH_AGENT_API

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.skipif(not HAVE_GRAPH_AGENT_API, reason="the emulator's Graph Agent ID API has not landed"),
    pytest.mark.skipif(sys.platform != "linux", reason="headless Linux"),
]


def _no_desktop_env(home: Path) -> dict[str, str]:
    """A service account's environment: no session bus, no keyring backend forced, a state dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENTRACLAW_", "DBUS_", "XDG_RUNTIME"))}
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PYTHON_KEYRING_BACKEND", "GNOME_KEYRING_CONTROL"):
        env.pop(name, None)
    env["ENTRACLAW_HOME"] = str(home)
    # An XDG_DATA_HOME of its own: nothing may reach the user's real keyrings.
    env["XDG_DATA_HOME"] = str(home.parent / "xdg-data")
    return env


def _run(argv: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRACLAW_")}
    env.pop("REQUESTS_CA_BUNDLE", None)
    proc, info = serve("--state", str(tmp_path / "s.json"), env=env, cwd=tmp_path)
    try:
        yield info
    finally:
        stop_serve(proc)


def test_the_printed_setup_line_without_a_keyring_names_key_storage_file_and_that_works(
    tmp_path: Path, served: dict[str, str]
) -> None:
    env = _no_desktop_env(tmp_path / "home")
    argv = shlex.split(served["setup"])
    assert argv[:2] == ["entraclaw", "setup"]
    failed = _run([sys.executable, "-m", "entraclaw", *argv[1:]], env)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "No OS keyring is available" in failed.stderr, failed.stderr
    assert "--key-storage file" in failed.stderr, failed.stderr
    assert "scripts/with_state_keyring.sh" in failed.stderr
    # What the remedy says, run as it says.
    done = _run([sys.executable, "-m", "entraclaw", *argv[1:], "--key-storage", "file"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    token = _run([sys.executable, "-m", "entraclaw", "token"], env)
    assert token.returncode == 0, token.stdout + token.stderr


def _keyring_tools() -> bool:
    return all(shutil.which(t) for t in ("dbus-run-session", "dbus-send", "gnome-keyring-daemon"))


def test_a_keystore_key_survives_the_session_in_the_state_directory_keyring(
    tmp_path: Path, served: dict[str, str]
) -> None:
    require("secretservice", _keyring_tools(), "dbus-run-session / gnome-keyring-daemon missing")
    home = tmp_path / "home"
    env = _no_desktop_env(home)
    password = tmp_path / "keyring-password"
    password.write_text("correct horse battery staple")
    password.chmod(0o600)
    env["ENTRACLAW_KEYRING_PASSWORD_FILE"] = str(password)
    wrapper = ["bash", str(ROOT / "scripts" / "with_state_keyring.sh")]
    entraclaw = [sys.executable, "-m", "entraclaw"]
    setup_argv = shlex.split(served["setup"])[1:]

    # The throwaway harness: the key is stored, and gone once the command ends.
    throwaway = _run(["bash", str(ROOT / "scripts" / "with_secret_service.sh"), *entraclaw, *setup_argv,
                      "--key-storage", "keystore"], {**env, "ENTRACLAW_HOME": str(tmp_path / "throwaway")})
    assert throwaway.returncode == 0, throwaway.stdout + throwaway.stderr
    lost = _run(["bash", str(ROOT / "scripts" / "with_secret_service.sh"), *entraclaw, "token"],
                {**env, "ENTRACLAW_HOME": str(tmp_path / "throwaway")})
    assert lost.returncode != 0 and "which is not in the keyring" in lost.stderr, lost.stdout + lost.stderr

    # The persistent one: setup in one D-Bus session, token in another (a restart of the session).
    # (--patch-key-credentials: the throwaway run above registered a certificate as "another device".)
    setup = _run([*wrapper, *entraclaw, *setup_argv, "--key-storage", "keystore", "--patch-key-credentials"], env)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "keystore:" in (home / ".env").read_text()
    keyring_file = home / "secret-service" / "keyrings" / "login.keyring"
    assert keyring_file.is_file()
    assert (keyring_file.stat().st_mode & 0o077) == 0
    assert b"PRIVATE KEY" not in keyring_file.read_bytes()  # encrypted at rest with the password
    token = _run([*wrapper, *entraclaw, "token", "--scope", "https://graph.microsoft.com/User.Read"], env)
    assert token.returncode == 0, token.stdout + token.stderr

    # A systemd credential is the documented alternative to the password file.
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "entraclaw-keyring").write_text(password.read_text())
    by_credential = {k: v for k, v in env.items() if k != "ENTRACLAW_KEYRING_PASSWORD_FILE"}
    by_credential["CREDENTIALS_DIRECTORY"] = str(creds)
    again = _run([*wrapper, *entraclaw, "doctor", "--no-smoke-test"], by_credential)
    assert "key" in again.stdout and "[FAIL   ] key" not in again.stdout, again.stdout + again.stderr

    # The wrong password leaves it locked: a typed error, no prompt, no hang, nothing lost.
    password.write_text("wrong")
    locked = _run([*wrapper, *entraclaw, "token", "--scope", "https://graph.microsoft.com/Mail.Read"], env,
                  timeout=120)
    assert locked.returncode != 0 and "Traceback" not in locked.stderr, locked.stdout + locked.stderr
    assert "entraclaw: error: " in locked.stderr and "with_state_keyring.sh" in locked.stderr, locked.stderr
    assert keyring_file.is_file()


def test_setup_rotate_and_doctor_move_the_legacy_state_directory_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Windows without ENTRACLAW_HOME, the state moves from ~/.entraclaw to %LOCALAPPDATA%\\entraclaw."""
    from entraclaw.cli import main
    from entraclaw.platform import paths

    calls: list[str] = []
    legacy = tmp_path / "profile" / ".entraclaw"
    target = tmp_path / "localappdata" / "entraclaw"
    real = paths.migrate_legacy_state

    def as_on_windows(**kwargs: object) -> paths.MigrationResult:
        calls.append("migrate")
        return real(legacy=legacy, target=target, platform="win32")

    monkeypatch.setattr(paths, "migrate_legacy_state", as_on_windows)
    monkeypatch.setattr(paths, "state_dir", lambda **_kw: target)
    monkeypatch.delenv("ENTRACLAW_HOME", raising=False)
    for command in (["doctor", "--no-smoke-test"], ["rotate", "--as-blueprint", "--dry-run"],
                    ["setup", "--dry-run", "--tenant", "11111111-1111-1111-1111-111111111111", "--azure-cli"]):
        legacy.mkdir(parents=True)
        (legacy / ".env").write_text("ENTRACLAW_TENANT_ID=11111111-1111-1111-1111-111111111111\n")
        calls.clear()
        try:
            main(command)
        except SystemExit:
            pass
        except Exception:
            pass
        assert calls, f"`entraclaw {command[0]}` did not migrate the legacy state directory"
        assert not legacy.exists() and (target / ".env").is_file(), command
        shutil.rmtree(target)
