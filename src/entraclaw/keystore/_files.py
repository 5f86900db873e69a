"""File naming and atomic owner-only writes for the file-backed stores (DPAPI file, CNG references).

File names: an entry whose name is already a safe, lower-case file name keeps it
(``blueprint-key-...`` with a lower-case thumbprint stays readable in
``keys/``). Any other name becomes ``<readable part>~<SHA-256 prefix>``: NTFS
and APFS compare names case-insensitively, so ``Key`` and ``key`` must not map
to one file, and ``/``, ``:``, ``..`` or ``CON`` must never reach the file
system. ``~`` is outside the safe set, so the two forms never collide.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from entraclaw.platform.files import atomic_write

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


def atomic_write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step; owner-only from creation (the project's one writer).

    Raises OSError or ConfigurationError (from :func:`entraclaw.platform.files.atomic_write`); the
    stores turn both into KeystoreError naming the entry and the file.
    """
    atomic_write(path, data, private=True)
