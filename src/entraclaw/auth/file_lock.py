"""An exclusive lock between processes on one machine, held on a lock file.

``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows. The lock file is never
deleted: deleting it while another process waits on the old inode is how
lock-by-file-existence schemes let two holders in at once. Within a process a
``threading.Lock`` per path serialises threads first, because Windows byte-range
locks are per handle and POSIX flock is per open file description.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

from entraclaw.errors import KeystoreError

__all__ = ["InterProcessLock"]

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()
_POLL = 0.01


def _thread_lock(path: str) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.get(path)
        if lock is None:
            lock = _THREAD_LOCKS[path] = threading.Lock()
        return lock


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


class InterProcessLock:
    """``with InterProcessLock(path, timeout=60):`` — exclusive across threads and processes."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._fd: int | None = None
        self._thread_lock = _thread_lock(str(self.path.resolve()))

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise self._timeout_error()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            self._thread_lock.release()
            raise KeystoreError(
                f"Cannot open the token cache lock file {self.path}: {exc.strerror}.",
                remedy="Make the cache directory writable by this user, or choose another cache path.",
                path=str(self.path),
                os_error=exc.errno,
            ) from exc
        try:
            delay = _POLL
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    raise self._timeout_error()
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        except BaseException as exc:
            # Every way out without the lock (timeout, a lock call the OS refuses, Ctrl-C while
            # polling) closes the file and lets the next thread in.
            os.close(fd)
            self._thread_lock.release()
            if isinstance(exc, OSError):
                raise KeystoreError(
                    f"Cannot lock the token cache lock file {self.path}: {exc.strerror or type(exc).__name__}.",
                    remedy="Keep the cache on a local file system that supports file locks, or choose another "
                    "cache path.",
                    path=str(self.path),
                    os_error=exc.errno,
                ) from exc
            raise
        self._fd = fd

    def _timeout_error(self) -> KeystoreError:
        return KeystoreError(
            f"Timed out after {self.timeout:g} s waiting for the token cache lock {self.path}.",
            remedy="Another process holds the cache lock; check for a hung entraclaw process, then retry.",
            path=str(self.path),
        )

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            _unlock(fd)
        finally:
            os.close(fd)
            self._thread_lock.release()

    def __enter__(self) -> InterProcessLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
