"""Local state of provisioning: journals, the device config, the crash hook.

The journals (``setup-journal.json``, ``rotate-journal.json`` in the state
directory) record each step as it completes, so a run killed between any two
steps resumes where it stopped instead of creating objects twice. Every write
is atomic (temp file in the same directory, fsync, replace) and owner-only.

The device config is the ``.env`` in the state directory, written through
:mod:`entraclaw.platform.dotenv` (one key updated in place, comments and
unknown keys kept, atomic, owner-only).

``ENTRACLAW_TEST_CRASH_AT=<step>`` makes :func:`checkpoint` kill the process
(SIGKILL) at that named point, through the platform layer's one crash hook: the
crash tests use it to kill setup and rotate between every pair of steps. It does
nothing unless that variable names the step.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from entraclaw.config import FIELD_ENV, raw_settings
from entraclaw.errors import ConfigurationError

__all__ = [
    "CONFIG_KEYS",
    "CRASH_ENV",
    "CRASH_RETURN_CODES",
    "SETUP_JOURNAL_NAME",
    "Journal",
    "atomic_write",
    "checkpoint",
    "optional_attr",
    "read_device_config",
    "resolve_state_dir",
    "unfinished_setup_endpoints",
    "write_device_config",
]

SETUP_JOURNAL_NAME = "setup-journal.json"
CRASH_ENV = "ENTRACLAW_TEST_CRASH_AT"  # entraclaw.platform.files.CRASH_ENV
#: How a process killed at a crash point ends: SIGKILL on POSIX, exit code 86 elsewhere.
CRASH_RETURN_CODES = (-9, 86)

# The names of entraclaw.config's one table; setup writes exactly these.
CONFIG_KEYS: tuple[str, ...] = tuple(FIELD_ENV.values())


def optional_attr(module: str, name: str) -> Any:
    """``module.name`` when the module exists (a platform piece landing in parallel), else None."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def checkpoint(name: str) -> None:
    """Test hook: die like a kill -9 when ENTRACLAW_TEST_CRASH_AT names this point (the platform's one hook)."""
    from entraclaw.platform.files import crash_point

    crash_point(name)


def resolve_state_dir(state_dir: Path | None = None) -> Path:
    """``state_dir`` as given, else the platform's, after moving a legacy ``~/.entraclaw`` there.

    setup, rotate and doctor come through here before they read or write anything, so the
    migration (Windows without ENTRACLAW_HOME; a no-op elsewhere) runs for them as it does when
    the runtime loads its config. Its failure is a ConfigurationError that says nothing was lost.
    """
    if state_dir is not None:
        return state_dir
    from entraclaw.platform import paths

    paths.migrate_legacy_state()
    return paths.state_dir()


def atomic_write(path: Path, data: bytes) -> None:
    """Owner-only atomic replace of ``path`` (the platform layer's one writer)."""
    from entraclaw.platform.files import atomic_write as platform_atomic_write

    platform_atomic_write(path, data, private=True)


class Journal:
    """A JSON document in the state directory, rewritten atomically after each step."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}

    def load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.data = {}
            return self.data
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read the journal {self.path}: {exc.strerror}.",
                remedy="Make the state directory readable by this user (or set ENTRACLAW_HOME), then re-run.",
                path=str(self.path),
            ) from None
        try:
            document = json.loads(text)
        except ValueError:
            raise ConfigurationError(
                f"The journal {self.path} is not valid JSON (it was edited or the disk lost a write).",
                remedy=f"Delete {self.path} and re-run; setup finds existing objects by name before creating any.",
                path=str(self.path),
            ) from None
        self.data = document if isinstance(document, dict) else {}
        return self.data

    def save(self) -> None:
        atomic_write(self.path, json.dumps(self.data, indent=2, sort_keys=True).encode("utf-8"))

    def update(self, **values: Any) -> None:
        self.data.update(values)
        self.save()

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.data = {}


def read_device_config(env_file: Path, *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ENTRACLAW_* settings as written: :func:`entraclaw.config.raw_settings` (one precedence)."""
    return raw_settings(environ=environ, env_file=env_file)


def unfinished_setup_endpoints(state_dir: Path) -> dict[str, str]:
    """Tenant, authority, Graph URL and CA bundle of an interrupted setup, as ENTRACLAW_* settings.

    An interrupted setup has not written the ``.env`` yet; its journal remembers where it was going,
    so a re-run (or ``--rollback``) needs only the admin sign-in. Empty when there is nothing to resume.
    """
    journal = Journal(state_dir / SETUP_JOURNAL_NAME)
    data = journal.load()
    recorded = data.get("endpoints")
    if data.get("status") == "complete" or not isinstance(recorded, dict):
        return {}
    return {k: v for k, v in recorded.items() if k in CONFIG_KEYS and isinstance(v, str) and v}


def write_device_config(env_file: Path, updates: Mapping[str, str | None]) -> None:
    """Update the given keys of the ``.env`` in one atomic replace; ``None`` deletes a key."""
    from entraclaw.platform.dotenv import update_env_file

    update_env_file(env_file, dict(updates))
