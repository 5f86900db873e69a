"""Atomic, owner-only file writes.

A reader of a file written here sees either the old content or the new one, never
a half-written file, whatever kills the writer: the data goes to a temp file in the
same directory (so ``os.replace`` is a rename, not a copy across file systems), is
fsynced, and only then replaces the target; the directory is fsynced after, so the
rename itself survives a power cut on POSIX.

Owner-only from creation: on POSIX the temp file is created ``O_EXCL`` with mode
0600 and fchmod'ed to 0600 (the umask can only remove bits, but an odd umask such
as 0277 would otherwise leave 0400); on Windows the temp file gets an owner-only
DACL (``entraclaw.platform.winacl``) before a byte of data is written.

Temp files are named ``.<target>.entraclaw-tmp-<pid>-<random>`` (one dot for a dotfile). A writer killed
between creating one and renaming it leaves it behind; the next write to the same
target removes leftovers whose process is gone.

``ENTRACLAW_TEST_CRASH_AT=<step>`` makes the process die at that step (see
:func:`crash_point`); the kill tests use it, nothing else sets it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

from entraclaw.errors import ConfigurationError

__all__ = [
    "CRASH_ENV",
    "WRITE_STEPS",
    "atomic_write",
    "clean_stale_temps",
    "crash_point",
    "ensure_private_dir",
    "fsync_dir",
    "pid_alive",
    "restrict_to_owner",
    "temp_name_prefix",
]

logger = logging.getLogger(__name__)

CRASH_ENV = "ENTRACLAW_TEST_CRASH_AT"
#: The points between the steps of :func:`atomic_write`, in order.
WRITE_STEPS = ("write:temp-created", "write:temp-written", "write:temp-fsynced", "write:replaced")
_TMP_MARK = ".entraclaw-tmp-"


def crash_point(step: str) -> None:
    """Die here, like a power cut or a kill -9, when the kill tests ask for this step."""
    if os.environ.get(CRASH_ENV) != step:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(86)


def pid_alive(pid: int) -> bool:
    """True unless the process is known to be gone (errs on the side of 'alive')."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _win_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: someone else's process, alive
    return True


def _win_pid_alive(pid: int) -> bool:
    # os.kill(pid, 0) on Windows would *terminate* the process (signal 0 is CTRL_C_EVENT
    # territory / TerminateProcess), so ask the kernel instead.
    import ctypes

    synchronize, wait_timeout = 0x00100000, 0x00000102
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    handle = kernel32.OpenProcess(synchronize, False, pid)
    if not handle:
        # ERROR_INVALID_PARAMETER (87): no such process. Anything else (access denied): assume alive.
        return bool(ctypes.get_last_error() != 87)  # type: ignore[attr-defined,unused-ignore]
    try:
        return bool(kernel32.WaitForSingleObject(handle, 0) == wait_timeout)
    finally:
        kernel32.CloseHandle(handle)


def temp_name_prefix(target: Path) -> str:
    hidden = target.name if target.name.startswith(".") else f".{target.name}"
    return f"{hidden}{_TMP_MARK}"


def clean_stale_temps(target: Path) -> list[Path]:
    """Remove temp files of earlier, dead writers of ``target``; return what was removed."""
    prefix = temp_name_prefix(target)
    removed: list[Path] = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix) :].split("-", 1)[0]
        if not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        stale = target.parent / name
        try:
            stale.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("Could not remove the stale temp file %s: %s.", stale, exc.strerror)
            continue
        logger.info("Removed %s, left by an interrupted write of %s.", stale, target)
        removed.append(stale)
    return removed


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; Windows has no directory handles for this)."""
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems (network, FUSE) refuse fsync on directories; the rename is still atomic.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def restrict_to_owner(path: str | os.PathLike[str]) -> None:
    """Only the current user may read or write ``path`` (POSIX 0600 / 0700; Windows owner-only DACL)."""
    target = Path(path)
    if sys.platform == "win32":
        import importlib

        # Imported here: the module and its native DACL code exist only where Windows needs them.
        try:
            winacl = importlib.import_module("entraclaw.platform.winacl")
        except ImportError as exc:
            raise ConfigurationError(
                f"Cannot make {target} owner-only: entraclaw.platform.winacl is missing from this install.",
                remedy="Reinstall entraclaw from its Windows wheel (pip install --force-reinstall entraclaw).",
                path=str(target),
            ) from exc
        winacl.set_owner_only(target)
        return
    try:
        os.chmod(target, 0o700 if target.is_dir() else 0o600)
    except OSError as exc:
        raise _write_error(target, "restrict access to", exc) from exc


def _write_error(target: Path, action: str, exc: OSError) -> ConfigurationError:
    return ConfigurationError(
        f"Cannot {action} {target}: {exc.strerror or type(exc).__name__}.",
        remedy=f"Make {target.parent} writable by this user (or set ENTRACLAW_HOME to a directory that is).",
        path=str(target),
        os_error=exc.errno,
    )


def ensure_private_dir(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` (and parents) if missing; a directory this creates is owner-only."""
    folder = Path(directory)
    if folder.is_dir():
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise _write_error(folder / ".", "create the directory", exc) from exc
    restrict_to_owner(folder)
    return folder


def atomic_write(path: str | os.PathLike[str], data: bytes, *, private: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically; owner-only from creation when ``private``.

    A missing parent directory is created, owner-only.
    """
    target = Path(path)
    directory = ensure_private_dir(target.parent)
    clean_stale_temps(target)
    tmp = directory / f"{temp_name_prefix(target)}{os.getpid()}-{secrets.token_hex(4)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(tmp, flags, 0o600 if private else 0o666)
    except OSError as exc:
        raise _write_error(target, "create a temp file next to", exc) from exc
    done = False
    try:
        if private:
            if sys.platform == "win32":
                restrict_to_owner(tmp)
            else:
                os.fchmod(fd, 0o600)
        crash_point(WRITE_STEPS[0])
        with os.fdopen(fd, "wb", closefd=True) as handle:
            fd = -1
            handle.write(data)
            handle.flush()
            crash_point(WRITE_STEPS[1])
            os.fsync(handle.fileno())
        crash_point(WRITE_STEPS[2])
        os.replace(tmp, target)
        done = True
        crash_point(WRITE_STEPS[3])
        fsync_dir(directory)
    except OSError as exc:
        raise _write_error(target, "write", exc) from exc
    finally:
        if fd >= 0:
            os.close(fd)
        if not done:
            with contextlib.suppress(OSError):
                tmp.unlink()
