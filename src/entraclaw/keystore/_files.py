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

from entraclaw.errors import ConfigurationError, EntraclawError, KeystoreError
from entraclaw.keystore.base import SERVICE
from entraclaw.platform.files import atomic_write

__all__ = [
    "atomic_write_private",
    "delete_entry_file",
    "entry_file_error",
    "entry_file_name",
    "read_entry_file",
    "reason",
    "write_entry_file",
]

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


def reason(exc: BaseException) -> str:
    """A short cause for a message: the OS error's text, or an entraclaw error's message (never data)."""
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror}"
    return str(getattr(exc, "message", exc))


def entry_file_error(
    message: str, *, backend: str, entry: str, path: Path, remedy: str, cause: BaseException | None = None
) -> KeystoreError:
    """The KeystoreError a file store raises for ``entry``: the entry, the file and the OS error number.

    From an entraclaw error (DPAPI) only its diagnostic fields are carried over
    (hresult, api), never the data it was given.
    """
    context: dict[str, object] = {"os_error": None}
    if isinstance(cause, OSError):
        context["os_error"] = cause.errno
    elif isinstance(cause, EntraclawError):
        if not isinstance(cause, ConfigurationError):
            context.update({k: v for k, v in cause.context.items() if k in ("hresult", "hresult_name", "api")})
        context["os_error"] = cause.context.get("os_error")
    return KeystoreError(
        message, remedy=remedy, service=SERVICE, backend=backend, entry=entry, path=str(path), **context
    )


def _os_failure(
    action: str, exc: OSError | ConfigurationError, *, backend: str, entry: str, path: Path, remedy: str
) -> KeystoreError:
    return entry_file_error(
        f"Cannot {action} {path} for entry {entry!r} ({reason(exc)}).",
        backend=backend,
        entry=entry,
        path=path,
        remedy=remedy,
        cause=exc,
    )


def write_entry_file(path: Path, data: bytes, *, backend: str, entry: str, remedy: str) -> None:
    """:func:`atomic_write_private`, failures as KeystoreError naming the entry and the file."""
    try:
        atomic_write_private(path, data)
    except (OSError, ConfigurationError) as exc:
        raise _os_failure("write", exc, backend=backend, entry=entry, path=path, remedy=remedy) from None


def read_entry_file(path: Path, *, backend: str, entry: str, remedy: str) -> bytes | None:
    """The file's bytes, or None when there is none."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _os_failure("read", exc, backend=backend, entry=entry, path=path, remedy=remedy) from None


def delete_entry_file(path: Path, *, backend: str, entry: str, remedy: str) -> bool:
    """Remove the file; False when there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _os_failure("delete", exc, backend=backend, entry=entry, path=path, remedy=remedy) from None
    return True
