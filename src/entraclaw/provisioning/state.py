"""Local state of provisioning: journals, the device config, the crash hook.

The journals (``setup-journal.json``, ``rotate-journal.json`` in the state
directory) record each step as it completes, so a run killed between any two
steps resumes where it stopped instead of creating objects twice. Every write
is atomic (temp file in the same directory, fsync, replace) and owner-only.

The device config is the ``.env`` in the state directory, written through
:mod:`entraclaw.platform.dotenv` (one key updated in place, comments and
unknown keys kept). Where that module is not importable yet (the platform
layer lands in parallel), a minimal writer with the same atomic rule stands in.

``ENTRACLAW_CRASH_AT=<step>`` makes :func:`checkpoint` end the process with
``os._exit`` at that named point: the crash tests use it to kill setup and
rotate between every pair of steps. It does nothing unless that variable names
the step.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from entraclaw.errors import ConfigurationError

__all__ = [
    "CONFIG_KEYS",
    "CRASH_ENV",
    "CRASH_EXIT_CODE",
    "Journal",
    "atomic_write",
    "checkpoint",
    "optional_attr",
    "read_device_config",
    "resolve_state_dir",
    "write_device_config",
]

CRASH_ENV = "ENTRACLAW_CRASH_AT"
CRASH_EXIT_CODE = 86

# The names of entraclaw.config's one table (CONTRACTS); setup writes exactly these.
CONFIG_KEYS: tuple[str, ...] = (
    "ENTRACLAW_TENANT_ID",
    "ENTRACLAW_AUTHORITY_HOST",
    "ENTRACLAW_GRAPH_URL",
    "ENTRACLAW_BLUEPRINT_APP_ID",
    "ENTRACLAW_BLUEPRINT_OBJECT_ID",
    "ENTRACLAW_AGENT_IDENTITY_ID",
    "ENTRACLAW_AGENT_USER_ID",
    "ENTRACLAW_AGENT_USER_UPN",
    "ENTRACLAW_BLUEPRINT_CERT_X5T_S256",
    "ENTRACLAW_BLUEPRINT_CERT_SHA1",
    "ENTRACLAW_KEY_REF",
    "ENTRACLAW_KEY_PROVIDER",
    "ENTRACLAW_SCOPES",
    "ENTRACLAW_CA_BUNDLE",
)


def optional_attr(module: str, name: str) -> Any:
    """``module.name`` when the module exists (a platform piece landing in parallel), else None."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def checkpoint(name: str) -> None:
    """Test hook: exit abruptly (no cleanup, no flush) when ENTRACLAW_CRASH_AT names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(CRASH_EXIT_CODE)


def resolve_state_dir(state_dir: Path | None = None) -> Path:
    if state_dir is not None:
        return state_dir
    from entraclaw.platform.paths import state_dir as _state_dir

    return _state_dir()


def atomic_write(path: Path, data: bytes) -> None:
    """Owner-only atomic replace of ``path`` (the platform layer's primitive when present)."""
    platform_atomic_write = optional_attr("entraclaw.platform.files", "atomic_write")
    if platform_atomic_write is not None:
        platform_atomic_write(path, data, private=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


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


def _parse_env_text(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        name = name.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def read_device_config(env_file: Path, *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ENTRACLAW_* settings: process environment over the ``.env`` file (the config precedence)."""
    values: dict[str, str] = {}
    read_env_file = optional_attr("entraclaw.platform.dotenv", "read_env_file")
    if env_file.exists():
        if read_env_file is not None:
            parsed = read_env_file(env_file)
            entries = getattr(parsed, "entries", parsed)
            for name, item in dict(entries).items():
                values[str(name)] = str(item[0] if isinstance(item, tuple) else item)
        else:
            values.update(_parse_env_text(env_file.read_text(encoding="utf-8")))
    env = os.environ if environ is None else environ
    for name in CONFIG_KEYS:
        if env.get(name):
            values[name] = env[name]
    return values


def write_device_config(env_file: Path, updates: Mapping[str, str | None]) -> None:
    """Update the given keys of the ``.env`` in one atomic replace; ``None`` deletes a key."""
    update_env_file = optional_attr("entraclaw.platform.dotenv", "update_env_file")
    if update_env_file is not None:
        update_env_file(env_file, dict(updates))
        return
    lines: list[str] = []
    seen: set[str] = set()
    if env_file.exists():
        for raw in env_file.read_text(encoding="utf-8").splitlines():
            name = raw.split("=", 1)[0].strip() if "=" in raw and not raw.lstrip().startswith("#") else None
            if name is not None and name in updates:
                seen.add(name)
                value = updates[name]
                if value is not None:
                    lines.append(f"{name}={value}")
                continue
            lines.append(raw)
    for name, value in updates.items():
        if name not in seen and value is not None:
            lines.append(f"{name}={value}")
    atomic_write(env_file, ("\n".join(lines) + "\n").encode("utf-8"))
