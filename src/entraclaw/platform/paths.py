"""The one place that decides where entraclaw's state lives.

``ENTRACLAW_HOME`` wins; otherwise ``%LOCALAPPDATA%\\entraclaw`` on Windows
(resolved through ``platformdirs``, which asks the Known Folder API rather than
trusting an environment string) and ``~/.entraclaw`` elsewhere. Every file
entraclaw keeps (``.env``, the token cache, the DPAPI key files) is named here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from entraclaw.errors import ConfigurationError, EntraclawError

__all__ = [
    "DIVERGED_MARKER",
    "ENV_HOME",
    "MIGRATED_MARKER",
    "MIGRATION_STEPS",
    "MigrationResult",
    "StateDirInfo",
    "audit_log_path",
    "describe_state_dir",
    "env_file_path",
    "keys_dir",
    "legacy_state_dir",
    "migrate_legacy_state",
    "state_dir",
    "token_cache_path",
]

ENV_HOME = "ENTRACLAW_HOME"
APP_NAME = "entraclaw"

logger = logging.getLogger(__name__)


def _windows_local_appdata() -> Path:
    import platformdirs

    # appauthor=False: no vendor folder; roaming=False: %LOCALAPPDATA%, not %APPDATA%.
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False, roaming=False))


def state_dir(*, environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The state directory (not created here)."""
    env = os.environ if environ is None else environ
    override = env.get(ENV_HOME, "").strip()
    if override:
        return Path(override).expanduser()
    if (platform or sys.platform) == "win32":
        return _windows_local_appdata()
    return Path.home() / ".entraclaw"


def legacy_state_dir() -> Path:
    """Where pre-Windows-port installs kept state on every OS: ``~/.entraclaw``."""
    return Path.home() / ".entraclaw"


# What lives in a state directory. ``home`` is a state directory chosen elsewhere (--state-dir);
# without it, :func:`state_dir`'s.


def _home(home: str | os.PathLike[str] | None, environ: Mapping[str, str] | None) -> Path:
    return Path(home) if home is not None else state_dir(environ=environ)


def env_file_path(home: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None) -> Path:
    return _home(home, environ) / ".env"


def token_cache_path(home: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None) -> Path:
    return _home(home, environ) / "agent_tokens.bin"


def audit_log_path(home: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None) -> Path:
    """The agent's audit trail (``entraclaw-mcp`` appends, ``entraclaw audit`` reads)."""
    return _home(home, environ) / "audit.jsonl"


def keys_dir(home: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None) -> Path:
    """Where the file-backed key stores and PEM key files live."""
    return _home(home, environ) / "keys"


# --- where it came from (for `doctor`) ----------------------------------------------------

ServiceKind = Literal["LocalSystem", "LocalService", "NetworkService"]
_SERVICE_KINDS: tuple[str, ...] = ("LocalSystem", "LocalService", "NetworkService")


@dataclass(frozen=True)
class StateDirInfo:
    """The state directory, how it was chosen, and (Windows) which account's profile it is in."""

    path: Path
    chosen_by: str
    platform: str
    account_kind: str | None = None
    account_name: str | None = None
    account_sid: str | None = None
    note: str | None = None

    @property
    def service_account(self) -> bool:
        return self.account_kind in _SERVICE_KINDS

    def lines(self) -> list[str]:
        out = [f"state directory  {self.path}", f"chosen by        {self.chosen_by}"]
        if self.account_kind is not None:
            who = self.account_name or self.account_sid or "?"
            out.append(f"account          {who} ({self.account_kind}, SID {self.account_sid})")
        if self.note:
            out.append(f"note             {self.note}")
        return out


def describe_state_dir(*, environ: Mapping[str, str] | None = None, platform: str | None = None) -> StateDirInfo:
    """Where state lives and why: ENTRACLAW_HOME, the Known Folder (Windows) or the home directory.

    On Windows it also says whether the process runs as LocalSystem, LocalService or
    NetworkService: their Known Folder is the service profile (for example
    ``C:\\Windows\\ServiceProfiles\\LocalService\\AppData\\Local``), not an interactive
    user's, and so are their ``CurrentUser`` certificate store and DPAPI keys.
    """
    env = os.environ if environ is None else environ
    plat = platform or sys.platform
    path = state_dir(environ=env, platform=plat)
    if env.get(ENV_HOME, "").strip():
        chosen = f"{ENV_HOME} (environment)"
    elif plat == "win32":
        chosen = "Known Folder LocalAppData (platformdirs)"
    else:
        chosen = "home directory (~/.entraclaw)"
    if plat != "win32":
        return StateDirInfo(path, chosen, plat)
    try:
        import importlib

        account = importlib.import_module("entraclaw.platform.winacl").current_account()
    except (ImportError, EntraclawError) as exc:
        return StateDirInfo(path, chosen, plat, note=f"the account could not be determined ({type(exc).__name__})")
    kind = str(getattr(account, "kind", "user"))
    note = None
    if kind in _SERVICE_KINDS:
        note = (
            f"running as {kind}: this is that service account's profile, and its CurrentUser certificate "
            "store and DPAPI keys are the service's, not an interactive user's; set up entraclaw as this "
            f"account, or set {ENV_HOME}"
        )
    return StateDirInfo(
        path,
        chosen,
        plat,
        account_kind=kind,
        account_name=getattr(account, "name", None),
        account_sid=getattr(account, "sid", None),
        note=note,
    )


# --- moving ~/.entraclaw to %LOCALAPPDATA%\entraclaw (Windows) ----------------------------

#: Crash points of :func:`migrate_legacy_state`, in the order a full run passes them.
MIGRATION_STEPS: tuple[str, ...] = (
    "migrate:cleaned",
    "migrate:copy-partial",
    "migrate:copied",
    "migrate:fsynced",
    "migrate:renamed",
    "migrate:legacy-retired",
    "migrate:tombstone-partial",
)
MIGRATED_MARKER = ".entraclaw-migrated"
DIVERGED_MARKER = ".entraclaw-legacy-diverged"
_MARKERS = frozenset({MIGRATED_MARKER, DIVERGED_MARKER})

MigrationStatus = Literal["not-applicable", "no-legacy", "migrated", "diverged"]


@dataclass(frozen=True)
class MigrationResult:
    status: MigrationStatus
    legacy: Path
    target: Path
    differences: tuple[str, ...] = ()
    warned: bool = False


_Entry = tuple[str, str]


def _manifest(root: Path) -> dict[str, _Entry]:
    """Relative path -> (kind, content digest or link target); markers left out."""
    out: dict[str, _Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in sorted(dirnames):
            full = base / name
            rel = full.relative_to(root).as_posix()
            out[rel] = ("link", os.readlink(full)) if full.is_symlink() else ("dir", "")
        for name in filenames:
            full = base / name
            rel = full.relative_to(root).as_posix()
            if rel in _MARKERS:
                continue
            if full.is_symlink():
                out[rel] = ("link", os.readlink(full))
            else:
                out[rel] = ("file", hashlib.sha256(full.read_bytes()).hexdigest())
    return out


def _fingerprint(manifest: Mapping[str, _Entry]) -> str:
    return hashlib.sha256(json.dumps(sorted(manifest.items())).encode()).hexdigest()


def _differences(legacy: Mapping[str, _Entry], target: Mapping[str, _Entry]) -> tuple[str, ...]:
    out = [f"only in the legacy directory: {p}" for p in sorted(legacy.keys() - target.keys())]
    out += [f"only in the new directory: {p}" for p in sorted(target.keys() - legacy.keys())]
    out += [f"differs: {p}" for p in sorted(legacy.keys() & target.keys()) if legacy[p] != target[p]]
    return tuple(out)


def _copy_tree(source: Path, dest: Path) -> None:
    from entraclaw.platform.files import crash_point, restrict_to_owner

    dest.mkdir(mode=0o700)
    first = True
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        base = Path(dirpath)
        out_dir = dest / base.relative_to(source)
        for name in dirnames:
            src = base / name
            if src.is_symlink():
                os.symlink(os.readlink(src), out_dir / name)
            else:
                (out_dir / name).mkdir(mode=0o700)
        for name in filenames:
            src, dst = base / name, out_dir / name
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
                continue
            shutil.copy2(src, dst, follow_symlinks=False)
            if sys.platform == "win32":
                restrict_to_owner(dst)  # copies get the parent's inherited ACL, not the source's
            if first:
                crash_point("migrate:copy-partial")
                first = False
        dirnames[:] = [d for d in dirnames if not (base / d).is_symlink()]


def _fsync_tree(root: Path) -> None:
    from entraclaw.platform.files import fsync_dir

    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_symlink():
                continue
            with open(full, "rb+") as handle:
                os.fsync(handle.fileno())
        fsync_dir(Path(dirpath))


def _remove_tree(root: Path) -> None:
    from entraclaw.platform.files import crash_point

    first = True
    for dirpath, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
        for name in filenames:
            os.unlink(Path(dirpath) / name)
            if first:
                crash_point("migrate:tombstone-partial")
                first = False
        for name in dirnames:
            full = Path(dirpath) / name
            if full.is_symlink():
                os.unlink(full)
            else:
                os.rmdir(full)
    os.rmdir(root)


def _migration_error(what: str, legacy: Path, target: Path, exc: OSError) -> ConfigurationError:
    return ConfigurationError(
        f"Moving the legacy state directory {legacy} to {target} failed while {what}: "
        f"{exc.strerror or type(exc).__name__} ({exc.filename or ''}).",
        remedy=f"Nothing was lost ({legacy} is only removed after a complete copy). Fix the cause, then run the "
        f"command again; or move {legacy} to {target} by hand.",
        path=str(legacy),
    )


def migrate_legacy_state(
    *,
    legacy: str | os.PathLike[str] | None = None,
    target: str | os.PathLike[str] | None = None,
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> MigrationResult:
    """Move a legacy ``~/.entraclaw`` to the Windows state directory, once.

    Safe to interrupt at any point and to run again: the tree is copied to a temp
    sibling of the target, fsynced, stamped with a fingerprint of the legacy tree,
    and renamed into place; the legacy directory is then renamed aside and removed.
    A re-run removes leftovers of an interrupted run and finishes the job. Never
    merges: when both directories exist and the target was not made from the legacy
    one as it is now, the target is kept, the legacy one is left alone, and one
    warning (per legacy content) names both paths and which files differ.

    ``legacy``/``target``/``platform`` exist so tests can run it anywhere; by default it
    does something only on Windows without ``ENTRACLAW_HOME``.
    """
    from entraclaw.platform.files import atomic_write, crash_point, fsync_dir, pid_alive

    env = os.environ if environ is None else environ
    plat = platform or sys.platform
    old = Path(legacy) if legacy is not None else legacy_state_dir()
    if target is None:
        if plat != "win32" or env.get(ENV_HOME, "").strip():
            return MigrationResult("not-applicable", old, state_dir(environ=env, platform=plat))
        new = state_dir(environ=env, platform=plat)
    else:
        new = Path(target)
    if os.path.normcase(os.path.abspath(old)) == os.path.normcase(os.path.abspath(new)):
        return MigrationResult("not-applicable", old, new)
    parent = new.parent
    tomb = old.with_name(old.name + ".migrated-away")
    prefix = f".{new.name}.migrating-"
    step = "removing leftovers of an interrupted run"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for leftover in parent.glob(prefix + "*"):
            pid_text = leftover.name[len(prefix) :].split("-", 1)[0]
            if pid_text.isdigit() and not pid_alive(int(pid_text)):
                shutil.rmtree(leftover)
        if tomb.is_dir():
            # Only ever made after the target holds a complete copy: nothing in it is needed.
            _remove_tree(tomb)
        crash_point("migrate:cleaned")
        if old.is_symlink():
            # The user put the state elsewhere on purpose; moving (and deleting through) the link is not ours.
            logger.info("Legacy state directory %s is a symbolic link; it is left where it points.", old)
            return MigrationResult("not-applicable", old, new)
        if not old.is_dir():
            return MigrationResult("no-legacy", old, new)
        if new.is_dir() and not any(new.iterdir()):
            new.rmdir()
        step = "comparing the two directories"
        legacy_manifest = _manifest(old)
        fingerprint = _fingerprint(legacy_manifest)
        if new.exists():
            stamp = _read_json(new / MIGRATED_MARKER)
            differences = _differences(legacy_manifest, _manifest(new))
            if stamp.get("legacy_fingerprint") != fingerprint and differences:
                return _diverged(old, new, fingerprint, differences, atomic_write)
        else:
            step = "copying"
            tmp = parent / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
            _copy_tree(old, tmp)
            crash_point("migrate:copied")
            stamp_data = {"legacy": str(old), "legacy_fingerprint": fingerprint}
            (tmp / MIGRATED_MARKER).write_text(json.dumps(stamp_data), encoding="utf-8")
            _fsync_tree(tmp)
            crash_point("migrate:fsynced")
            step = "renaming the copy into place"
            os.rename(tmp, new)
            crash_point("migrate:renamed")
            fsync_dir(parent)
        step = "removing the legacy directory"
        os.rename(old, tomb)
        fsync_dir(old.parent)
        crash_point("migrate:legacy-retired")
        _remove_tree(tomb)
    except OSError as exc:
        raise _migration_error(step, old, new, exc) from exc
    logger.warning("Moved the legacy state directory %s to %s.", old, new)
    return MigrationResult("migrated", old, new)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _diverged(
    old: Path, new: Path, fingerprint: str, differences: tuple[str, ...], atomic_write: Any
) -> MigrationResult:
    marker = new / DIVERGED_MARKER
    warned = _read_json(marker).get("legacy_fingerprint") != fingerprint
    if warned:
        shown = "; ".join(differences[:10]) + (f"; and {len(differences) - 10} more" if len(differences) > 10 else "")
        logger.warning(
            "Both the legacy state directory %s and %s exist and differ (%s). entraclaw uses %s and leaves %s "
            "as it is; nothing is merged. Compare the two and delete %s when nothing in it is needed.",
            old,
            new,
            shown,
            new,
            old,
            old,
        )
        atomic_write(
            marker,
            json.dumps({"legacy": str(old), "legacy_fingerprint": fingerprint, "differences": differences}).encode(),
        )
    return MigrationResult("diverged", old, new, differences, warned)
