"""File naming and atomic owner-only writes for the file-backed stores (DPAPI file, CNG references).

File names: an entry whose name is already a safe, lower-case file name keeps it
(``blueprint-key-...`` with a lower-case thumbprint stays readable in
``keys/``). Any other name becomes ``<readable part>~<SHA-256 prefix>``: NTFS
and APFS compare names case-insensitively, so ``Key`` and ``key`` must not map
to one file, and ``/``, ``:``, ``..`` or ``CON`` must never reach the file
system. ``~`` is outside the safe set, so the two forms never collide.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

__all__ = ["atomic_write_private", "entry_file_name"]

_SAFE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,118}[a-z0-9])?")
# "." too: Windows reads "con.x~..." as the device CON.
_UNSAFE_CHARS = re.compile(r"[^a-z0-9_-]+")
# Device names Windows reserves in every directory, whatever the extension.
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
)


def entry_file_name(entry: str, suffix: str) -> str:
    """The file name (``<stem><suffix>``) the file stores use for ``entry``."""
    if _SAFE.fullmatch(entry) and entry.split(".", 1)[0] not in _RESERVED and ".." not in entry:
        return entry + suffix
    readable = _UNSAFE_CHARS.sub("_", entry.lower()).strip("_")[:60] or "entry"
    digest = hashlib.sha256(entry.encode("utf-8")).hexdigest()[:24]
    return f"{readable}~{digest}{suffix}"


def _shared_atomic_write() -> Callable[..., None] | None:
    # entraclaw.platform.files (stream `config`) is the project's one atomic
    # writer (owner-only DACL on Windows). Looked up at run time so this module
    # works on branches where it has not landed yet.
    try:
        module: Any = importlib.import_module("entraclaw.platform.files")
    except ImportError:
        return None
    writer = getattr(module, "atomic_write", None)
    return cast("Callable[..., None]", writer) if callable(writer) else None


def atomic_write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step; the file is owner-only from its creation on POSIX."""
    shared = _shared_atomic_write()
    if shared is not None:
        shared(path, data, private=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if sys.platform != "win32":
        with contextlib.suppress(OSError):
            os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    # O_EXCL + mode 0600 at creation: no window in which another user can open it.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sys.platform != "win32":
        # The rename is durable only once the directory entry is on disk.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
