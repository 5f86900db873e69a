"""The state directory: the legacy ~/.entraclaw migration (killed at every step) and describe_state_dir."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from cng_helpers import Standin, standin_fixture  # noqa: F401  (fixture)
from crash_helpers import run_writer
from entraclaw.errors import NativeModuleUnavailableError
from entraclaw.platform import paths
from entraclaw.platform.paths import (
    DIVERGED_MARKER,
    MIGRATED_MARKER,
    MIGRATION_STEPS,
    describe_state_dir,
    migrate_legacy_state,
)

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")

LEGACY_FILES = {
    ".env": b"ENTRACLAW_TENANT_ID=11111111-1111-1111-1111-111111111111\n",
    "agent_tokens.bin": os.urandom(2048),
    "keys/blueprint-key-a.dpapi": os.urandom(600),
    "keys/nested/deeper.txt": b"deep\n",
    "empty.txt": b"",
}


def make_legacy(root: Path) -> Path:
    legacy = root / "home" / ".entraclaw"
    for rel, data in LEGACY_FILES.items():
        path = legacy / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (legacy / "emptydir").mkdir()
    return legacy


def tree(root: Path) -> dict[str, str]:
    """Relative path -> content digest ('dir' for directories), markers left out."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel in (MIGRATED_MARKER, DIVERGED_MARKER):
            continue
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def target_for(root: Path) -> Path:
    return root / "LocalAppData" / "entraclaw"


def leftovers(root: Path) -> list[str]:
    names = [p.name for p in (root / "LocalAppData").iterdir()] + [p.name for p in (root / "home").iterdir()]
    return sorted(n for n in names if "migrating" in n or "migrated-away" in n)


def test_migrates_once_and_is_idempotent(tmp_path, caplog):
    legacy = make_legacy(tmp_path)
    expected = tree(legacy)
    target = target_for(tmp_path)
    with caplog.at_level(logging.WARNING):
        result = migrate_legacy_state(legacy=legacy, target=target, platform="win32")
    assert result.status == "migrated"
    assert tree(target) == expected and not legacy.exists()
    assert str(legacy) in caplog.text and str(target) in caplog.text
    assert (target / MIGRATED_MARKER).exists()
    again = migrate_legacy_state(legacy=legacy, target=target, platform="win32")
    assert again.status == "no-legacy" and tree(target) == expected
    assert leftovers(tmp_path) == []


def test_not_applicable_off_windows_or_with_entraclaw_home(tmp_path):
    assert migrate_legacy_state(platform="linux").status == "not-applicable"
    home = {"ENTRACLAW_HOME": str(tmp_path)}
    assert migrate_legacy_state(platform="win32", environ=home).status == "not-applicable"
    same = tmp_path / "x"
    assert migrate_legacy_state(legacy=same, target=same, platform="win32").status == "not-applicable"


def test_no_legacy_directory(tmp_path):
    (tmp_path / "home").mkdir()
    result = migrate_legacy_state(legacy=tmp_path / "home" / ".entraclaw", target=target_for(tmp_path))
    assert result.status == "no-legacy" and not target_for(tmp_path).exists()


def test_empty_target_directory_does_not_block_the_move(tmp_path):
    legacy = make_legacy(tmp_path)
    expected = tree(legacy)
    target = target_for(tmp_path)
    target.mkdir(parents=True)
    assert migrate_legacy_state(legacy=legacy, target=target).status == "migrated"
    assert tree(target) == expected


def test_both_exist_and_differ_keeps_the_new_one_and_warns_once(tmp_path, caplog):
    legacy = make_legacy(tmp_path)
    target = target_for(tmp_path)
    target.mkdir(parents=True)
    (target / ".env").write_bytes(b"ENTRACLAW_TENANT_ID=22222222-2222-2222-2222-222222222222\n")
    (target / "only-new.txt").write_bytes(b"n")
    legacy_before, target_before = tree(legacy), tree(target)
    with caplog.at_level(logging.WARNING):
        first = migrate_legacy_state(legacy=legacy, target=target)
    assert first.status == "diverged" and first.warned
    assert "differs: .env" in first.differences
    assert "only in the new directory: only-new.txt" in first.differences
    assert "only in the legacy directory: agent_tokens.bin" in first.differences
    assert str(legacy) in caplog.text and str(target) in caplog.text and "differs: .env" in caplog.text
    # Never merged: both trees exactly as they were.
    assert tree(legacy) == legacy_before and tree(target) == target_before
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        second = migrate_legacy_state(legacy=legacy, target=target)
    assert second.status == "diverged" and not second.warned and caplog.text == ""
    # A new difference in the legacy directory is worth one more warning.
    (legacy / "later.txt").write_bytes(b"x")
    assert migrate_legacy_state(legacy=legacy, target=target).warned


def test_identical_copy_made_by_hand_retires_the_legacy_directory(tmp_path):
    legacy = make_legacy(tmp_path)
    expected = tree(legacy)
    target = target_for(tmp_path)
    shutil.copytree(legacy, target)
    assert migrate_legacy_state(legacy=legacy, target=target).status == "migrated"
    assert tree(target) == expected and not legacy.exists()


def test_target_changed_after_migration_still_retires_unchanged_legacy(tmp_path):
    # Killed after the rename; then the app wrote to the new directory before the next run.
    legacy = make_legacy(tmp_path)
    target = target_for(tmp_path)
    killed = _child_migrate(legacy, target, crash_at="migrate:renamed")
    assert killed.returncode == -signal.SIGKILL if sys.platform != "win32" else killed.returncode == 86
    (target / ".env").write_bytes(b"ENTRACLAW_TENANT_ID=33333333-3333-3333-3333-333333333333\n")
    assert migrate_legacy_state(legacy=legacy, target=target).status == "migrated"
    assert not legacy.exists() and (target / ".env").read_bytes().startswith(b"ENTRACLAW_TENANT_ID=3333")


# --- killed between every step ---------------------------------------------------------------------


def _child_migrate(legacy: Path, target: Path, *, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        f"""
        from entraclaw.platform.paths import migrate_legacy_state
        result = migrate_legacy_state(legacy={str(legacy)!r}, target={str(target)!r}, platform="win32")
        print(result.status)
        """
    )
    return run_writer(code, crash_at=crash_at)


@POSIX
@pytest.mark.parametrize("step", MIGRATION_STEPS)
def test_killed_migration_loses_nothing_and_the_next_run_converges(tmp_path, step):
    legacy = make_legacy(tmp_path)
    expected = tree(legacy)
    target = target_for(tmp_path)
    if step == "migrate:cleaned":
        # Make the first step meaningful: a leftover copy of a dead migration is waiting.
        stale = target.parent / ".entraclaw.migrating-999999999-dead"
        stale.mkdir(parents=True)
        (stale / ".env").write_bytes(b"half")

    killed = _child_migrate(legacy, target, crash_at=step)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr  # the hook fired

    # Whatever the step, the data exists whole in at least one place.
    whole_legacy = legacy.exists() and tree(legacy) == expected
    whole_target = target.exists() and tree(target) == expected
    assert whole_legacy or whole_target, step
    if target.exists():
        assert whole_target, "the target is only ever a complete copy"

    done = _child_migrate(legacy, target)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("migrated", "no-legacy")
    assert tree(target) == expected and not legacy.exists()
    assert leftovers(tmp_path) == []
    # And once more: nothing left to do.
    assert _child_migrate(legacy, target).stdout.strip() == "no-legacy"


@POSIX
def test_killed_twice_in_a_row_still_converges(tmp_path):
    legacy = make_legacy(tmp_path)
    expected = tree(legacy)
    target = target_for(tmp_path)
    for step in ("migrate:copy-partial", "migrate:fsynced", "migrate:legacy-retired", "migrate:tombstone-partial"):
        _child_migrate(legacy, target, crash_at=step)
    assert _child_migrate(legacy, target).returncode == 0
    assert tree(target) == expected and not legacy.exists() and leftovers(tmp_path) == []


@POSIX
def test_every_migration_step_is_a_real_crash_point(tmp_path):
    # Each name in MIGRATION_STEPS fires during one full migration (the kill test relies on it).
    for step in MIGRATION_STEPS:
        root = tmp_path / step.replace(":", "_")
        legacy = make_legacy(root)
        result = _child_migrate(legacy, target_for(root), crash_at=step)
        assert result.returncode == -signal.SIGKILL, step


def test_a_live_migration_copy_is_left_alone(tmp_path):
    legacy = make_legacy(tmp_path)
    target = target_for(tmp_path)
    live = target.parent / f".entraclaw.migrating-{os.getpid()}-live"
    live.mkdir(parents=True)
    assert migrate_legacy_state(legacy=legacy, target=target).status == "migrated"
    assert live.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_copied_files_keep_owner_only_modes(tmp_path):
    legacy = make_legacy(tmp_path)
    (legacy / ".env").chmod(0o600)
    target = target_for(tmp_path)
    migrate_legacy_state(legacy=legacy, target=target)
    assert (target / ".env").stat().st_mode & 0o777 == 0o600
    assert target.stat().st_mode & 0o077 == 0


# --- describe_state_dir --------------------------------------------------------------------------------


def test_describe_with_entraclaw_home(tmp_path):
    info = describe_state_dir(environ={"ENTRACLAW_HOME": str(tmp_path)}, platform="linux")
    assert info.path == tmp_path and info.chosen_by.startswith("ENTRACLAW_HOME")
    assert info.account_kind is None and not info.service_account
    assert f"state directory  {tmp_path}" in info.lines()


def test_describe_home_directory():
    info = describe_state_dir(environ={}, platform="linux")
    assert info.path == Path.home() / ".entraclaw" and "home directory" in info.chosen_by


def _fake_winacl(monkeypatch, account=None, error=None):
    module = types.ModuleType("entraclaw.platform.winacl")

    def current_account():
        if error is not None:
            raise error
        return account

    module.current_account = current_account  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "entraclaw.platform.winacl", module)
    monkeypatch.setattr(paths, "_windows_local_appdata", lambda: Path("C:/Users/x/AppData/Local/entraclaw"))


@pytest.mark.parametrize("kind", ["LocalSystem", "LocalService", "NetworkService"])
def test_describe_names_a_service_account(monkeypatch, kind):
    account = types.SimpleNamespace(sid="S-1-5-19", name=f"NT AUTHORITY\\{kind}", kind=kind)
    _fake_winacl(monkeypatch, account)
    info = describe_state_dir(environ={}, platform="win32")
    assert info.service_account and info.account_kind == kind
    assert "Known Folder" in info.chosen_by
    text = "\n".join(info.lines())
    assert kind in text and "S-1-5-19" in text and "ENTRACLAW_HOME" in text


def test_describe_an_interactive_user(monkeypatch):
    _fake_winacl(monkeypatch, types.SimpleNamespace(sid="S-1-5-21-1-2-3-1001", name="PC\\me", kind="user"))
    info = describe_state_dir(environ={}, platform="win32")
    assert not info.service_account and info.note is None and info.account_name == "PC\\me"


def test_describe_tolerates_a_missing_or_failing_winacl(monkeypatch):
    _fake_winacl(monkeypatch, error=NativeModuleUnavailableError("no native module"))
    info = describe_state_dir(environ={}, platform="win32")
    assert info.account_kind is None and "NativeModuleUnavailableError" in (info.note or "")
    monkeypatch.setitem(sys.modules, "entraclaw.platform.winacl", None)  # import fails
    info = describe_state_dir(environ={}, platform="win32")
    assert info.account_kind is None and info.note


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_a_symlinked_legacy_directory_is_left_alone(tmp_path):
    real = make_legacy(tmp_path / "real")
    expected = tree(real)
    (tmp_path / "home").mkdir()
    legacy = tmp_path / "home" / ".entraclaw"
    legacy.symlink_to(real)
    result = migrate_legacy_state(legacy=legacy, target=target_for(tmp_path))
    assert result.status == "not-applicable" and legacy.is_symlink() and tree(real) == expected


@pytest.mark.parametrize(("sid", "kind"), [("S-1-5-19", "LocalService"), ("S-1-5-18", "LocalSystem")])
def test_describe_with_the_real_winacl_on_the_standin(standin: Standin, monkeypatch, sid, kind):
    # The real entraclaw.platform.winacl over the stand-in token: a service SID is named as such.
    monkeypatch.setattr(paths, "_windows_local_appdata", lambda: Path("C:/Windows/ServiceProfiles/x/entraclaw"))
    standin.set_current_sid(sid)
    info = describe_state_dir(environ={}, platform="win32")
    assert info.account_sid == sid and info.account_kind == kind and info.service_account
    assert kind in (info.note or "")
    standin.reset()
    user = describe_state_dir(environ={}, platform="win32")
    assert user.account_kind == "user" and not user.service_account


def test_every_state_file_is_named_in_one_place_for_the_default_or_a_given_home(tmp_path, monkeypatch):
    from entraclaw.keystore import CngSentinelStore, DpapiFileStore
    from entraclaw.keystore.dpapi_file import NativeDpapi

    env_home = tmp_path / "env-home"
    monkeypatch.setenv("ENTRACLAW_HOME", str(env_home))
    given = tmp_path / "given"
    assert paths.env_file_path() == env_home / ".env" and paths.env_file_path(given) == given / ".env"
    assert paths.token_cache_path() == env_home / "agent_tokens.bin"
    assert paths.token_cache_path(given) == given / "agent_tokens.bin"
    assert paths.keys_dir() == env_home / "keys" and paths.keys_dir(given) == given / "keys"
    # The file-backed stores default to that keys directory.
    assert CngSentinelStore().directory == paths.keys_dir()
    assert DpapiFileStore(protector=NativeDpapi()).directory == paths.keys_dir()
