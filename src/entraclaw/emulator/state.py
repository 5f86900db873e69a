"""The state file: one JSON document holding the tenant, the CA and the token signing key.

It holds private keys (the emulator's own, never a client's), so it is written
atomically with mode 0600 (temp file in the same directory, fsync, replace, fsync
of the directory): a server killed mid-save leaves the old or the new file, never
half of one. Loading validates the shape and reports the path and the part that
is wrong.

A serving emulator owns its state file: :class:`StateLock` holds an OS lock on
``<state>.lock`` (fcntl.flock on POSIX, msvcrt.locking on Windows) for as long as
it serves, so a second server on the same file is refused with the holder's pid.
The OS drops the lock when the holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from entraclaw.errors import ConfigurationError, EmulatorError
from entraclaw.platform.files import atomic_write

__all__ = ["STATE_VERSION", "StateLock", "file_error", "load_state", "save_state"]

STATE_VERSION = 1
WRITABLE_STATE = "Pass a --state path in a writable directory."
# A hand-written seed may hold only "tenant" (and "tenant_id"); CA and signing key are then generated.
_REQUIRED = ("tenant",)


def save_state(path: Path, data: dict[str, Any]) -> None:
    path = Path(path)
    document = {"version": STATE_VERSION, **data}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(document, indent=2, sort_keys=True).encode("utf-8"), private=True)
    except (OSError, ConfigurationError) as exc:
        raise file_error("write emulator state file", path, exc) from exc


def file_error(
    action: str,
    path: Path,
    exc: OSError | ConfigurationError,
    remedy: str = WRITABLE_STATE,
    *,
    shown: str | None = None,
) -> EmulatorError:
    """An emulator file could not be opened, read or written: name the file, the reason and the emulator's remedy.

    A ConfigurationError comes from the project's one atomic writer (its remedy speaks of
    ENTRACLAW_HOME, which does not apply to emulator files), so only its message is kept.
    """
    reason = exc.message if isinstance(exc, ConfigurationError) else exc.strerror or exc
    return EmulatorError(f"Cannot {action} {shown or path}: {reason}.", remedy=remedy, path=str(path))


class StateLock:
    """An exclusive OS lock on ``<state>.lock``, naming the holder's pid for whoever is refused."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = Path(state_file)
        self.path = self.state_file.with_name(self.state_file.name + ".lock")
        self._fh: IO[bytes] | None = None

    def acquire(self) -> None:
        if self._fh is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+b")  # noqa: SIM115 - held open for as long as the lock
        except OSError as exc:
            raise file_error("open lock file", self.path, exc) from exc
        try:
            _lock(fh)
        except OSError:
            holder = "unknown"
            with contextlib.suppress(OSError):
                fh.seek(0)
                holder = fh.read(32).decode("ascii", "replace").strip() or "unknown"
            fh.close()
            raise EmulatorError(
                f"Emulator state file {self.state_file} is in use by another emulator (pid {holder}); "
                "a second server would overwrite its writes.",
                remedy=f"Stop the emulator with pid {holder} (or use another --state file), then run "
                "`entraclaw emulator serve` again.",
                path=str(self.state_file),
                pid=holder,
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()).encode("ascii"))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is None:
            return
        with contextlib.suppress(OSError):
            fh.seek(0)
            fh.truncate()
            _unlock(fh)
        fh.close()


if sys.platform == "win32":
    import msvcrt

    # Lock one byte far past the pid, so a refused process can still read who holds the file.
    _WIN_LOCK_AT = 1 << 20

    def _lock(fh: IO[bytes]) -> None:
        fh.seek(_WIN_LOCK_AT)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(fh: IO[bytes]) -> None:
        fh.seek(_WIN_LOCK_AT)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fh: IO[bytes]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fh: IO[bytes]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def load_state(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise file_error(
            "read emulator state file", path, exc, "Check the path, or delete the file to start a fresh tenant."
        ) from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EmulatorError(
            f"Emulator state file {path} is not valid JSON (line {getattr(exc, 'lineno', '?')}).",
            remedy="Restore the file from a backup, or delete it to start a fresh tenant.",
            path=str(path),
        ) from exc
    if not isinstance(data, dict):
        raise EmulatorError(
            f"Emulator state file {path} does not hold a JSON object.",
            remedy="Delete it to start a fresh tenant.",
            path=str(path),
        )
    if data.get("version") != STATE_VERSION:
        raise EmulatorError(
            f"Emulator state file {path} has version {data.get('version')!r}; this emulator reads {STATE_VERSION}.",
            remedy="Delete the file to start a fresh tenant.",
            path=str(path),
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise EmulatorError(
            f"Emulator state file {path} lacks {', '.join(missing)}.",
            remedy="Delete the file to start a fresh tenant.",
            path=str(path),
        )
    return data
