"""A token cache file shared by the processes of one user on one machine.

Storage is msal-extensions persistence: encrypted where the OS allows it
(DPAPI on Windows, Keychain on macOS, libsecret on Linux); plaintext only when
the caller passes ``allow_plaintext=True``, and then the file is mode 0600.
Two kinds of lock (:class:`InterProcessLock`), so that reading a token that is on
disk never waits for another process's exchange:

- one *exchange lock per key* (``<path>.<hash>.lock``), held only around the exchange
  of that key: N processes starting cold still cause one exchange per hop (the first
  does the work, the rest find its token in the file when they get the lock);
- the *write lock* ``<path>.lock``, held only around read-merge-write of the file.

Readers take neither: a plaintext file is replaced whole (temporary file + rename), so
a reader sees the old or the new file, never half of one.

A file that cannot be parsed is ignored with a warning (the warning names the
path, never content) and rewritten on the next save.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from entraclaw.auth.file_lock import InterProcessLock
from entraclaw.auth.token_cache import CachedToken
from entraclaw.errors import ConfigurationError, KeystoreError
from entraclaw.platform.files import atomic_write
from entraclaw.platform.paths import token_cache_path

__all__ = ["CACHE_FORMAT_VERSION", "PersistedTokenStore", "default_cache_path"]

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1


class _Persistence(Protocol):
    is_encrypted: bool

    def save(self, content: str) -> None: ...

    def load(self) -> str: ...


def default_cache_path() -> Path:
    """``agent_tokens.bin`` in the state directory (:func:`entraclaw.platform.paths.state_dir`)."""
    return token_cache_path()


def _encrypted_persistence(path: Path) -> _Persistence:
    from msal_extensions import build_encrypted_persistence

    persistence: _Persistence = build_encrypted_persistence(str(path))
    return persistence


class PersistedTokenStore:
    """The shared cache file at ``path``.

    ``allow_plaintext=True`` stores tokens unencrypted (mode 0600) when the OS
    offers no encryption (a Linux server without a Secret Service, a container);
    without it such a machine gets a :class:`KeystoreError` naming the path.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        allow_plaintext: bool = False,
        lock_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout
        self._clock = clock
        self._repairing = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_dir():
                raise IsADirectoryError(21, "Is a directory", str(self.path))
            self._persistence, self.encryption_unavailable_reason = self._open(allow_plaintext)
        except OSError as exc:
            raise KeystoreError(
                f"Cannot use the token cache {self.path}: {exc.strerror or type(exc).__name__}.",
                remedy="Pass a file path (not a directory) in a directory this user can write, or remove "
                f"what is at {self.path}.",
                path=str(self.path),
                os_error=exc.errno,
            ) from None

    def _open(self, allow_plaintext: bool) -> tuple[_Persistence, str | None]:
        try:
            return _encrypted_persistence(self.path), None
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
        if not allow_plaintext:
            raise KeystoreError(
                f"The token cache {self.path} cannot be encrypted on this system ({reason}).",
                remedy=(
                    "Install and unlock an OS secret store (libsecret + a Secret Service such as "
                    "gnome-keyring on Linux), or pass allow_plaintext=True / --allow-plaintext-cache "
                    "to keep the cache in a 0600 file."
                ),
                path=str(self.path),
                service="entraclaw-token-cache",
            )
        from msal_extensions import FilePersistence

        logger.warning(
            "Token cache %s is stored unencrypted (mode 0600) because allow_plaintext=True and "
            "the OS offers no encryption here (%s).",
            self.path,
            reason,
        )
        self._ensure_private_file()
        plain: _Persistence = FilePersistence(str(self.path))
        return plain, reason

    @property
    def is_encrypted(self) -> bool:
        return bool(getattr(self._persistence, "is_encrypted", False))

    def _ensure_private_file(self) -> None:
        if sys.platform == "win32":
            return  # NTFS ignores the mode; %LOCALAPPDATA% is per-user by ACL
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)

    def lock(self, timeout: float | None = None) -> InterProcessLock:
        """The write lock: held only around read-merge-write of the file, never an exchange."""
        return InterProcessLock(self.lock_path, timeout=self.lock_timeout if timeout is None else timeout)

    def exchange_lock(self, key: str, timeout: float | None = None) -> InterProcessLock:
        """The lock of one key's exchange: ``<cache>.<hash of key>.lock``.

        Held by the one process (and thread) exchanging that key; the others wait on it
        and then find the token in the file. Readers of other keys never take it. The
        OS drops it when its holder dies (fcntl/msvcrt locks belong to the process).
        """
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        path = self.path.with_name(f"{self.path.name}.{digest}.lock")
        return InterProcessLock(path, timeout=self.lock_timeout if timeout is None else timeout)

    def load(self) -> dict[str, CachedToken]:
        """Every entry that is still valid. Needs no lock: writers replace the file whole."""
        from msal_extensions.persistence import PersistenceNotFound

        try:
            text = self._persistence.load()
        except PersistenceNotFound:
            return {}
        except Exception as exc:
            logger.warning(
                "Token cache %s could not be read (%s); ignoring it, it will be rewritten.",
                self.path,
                type(exc).__name__,
            )
            return {}
        if not text or not text.strip():
            return {}
        entries, corrupt = self._parse(text)
        if corrupt and not getattr(self._repairing, "active", False):
            self._repair()
        return entries

    def _repair(self) -> None:
        """Rewrite a corrupt file at once (under the write lock, re-read there: a file another
        process just replaced is kept), so one bad file does not cost every later reader a parse."""
        self._repairing.active = True
        try:
            # Best effort, never a wait: if the write lock is busy (or held by this very thread),
            # the next write replaces the file anyway.
            with self.lock(timeout=0):
                self.save(self.load())
        except KeystoreError as exc:
            logger.debug("Token cache %s not rewritten now (%s).", self.path, type(exc).__name__)
        finally:
            self._repairing.active = False

    def _parse(self, text: str) -> tuple[dict[str, CachedToken], bool]:
        try:
            document = json.loads(text)
            if not isinstance(document, dict) or document.get("version") != CACHE_FORMAT_VERSION:
                raise ValueError("unknown cache format")
            raw_entries = document["entries"]
            if not isinstance(raw_entries, dict):
                raise ValueError("entries is not an object")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # RecursionError: a file of deeply nested arrays exhausts the JSON parser's stack.
            logger.warning(
                "Token cache %s is corrupt (%s); ignoring it, it will be rewritten.",
                self.path,
                type(exc).__name__,
            )
            return {}, True
        now = self._clock()
        entries: dict[str, CachedToken] = {}
        skipped = 0
        for key, raw in raw_entries.items():
            try:
                entry = CachedToken.from_json(raw)
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            if entry.valid_at(now):
                entries[str(key)] = entry
        if skipped:
            logger.warning("Token cache %s: ignored %d corrupt entries.", self.path, skipped)
        return entries, False

    def save(self, entries: Mapping[str, CachedToken]) -> None:
        """Write the still-valid ``entries``. Call with :meth:`lock` held."""
        now = self._clock()
        document: dict[str, Any] = {
            "version": CACHE_FORMAT_VERSION,
            "entries": {key: entry.to_json() for key, entry in entries.items() if entry.valid_at(now)},
        }
        text = json.dumps(document, separators=(",", ":"))
        try:
            if self.is_encrypted:
                self._persistence.save(text)
            else:
                # Readers take no lock, so the file must change in one step.
                atomic_write(self.path, text.encode("utf-8"), private=True)
        except (OSError, ConfigurationError) as exc:
            raise KeystoreError(
                f"Cannot write the token cache {self.path} ({type(exc).__name__}).",
                remedy="Make the cache directory writable by this user, or choose another cache path.",
                path=str(self.path),
                os_error=exc.errno if isinstance(exc, OSError) else exc.context.get("os_error"),
            ) from exc
        if not self.is_encrypted:
            self._ensure_private_file()

    def merge_save(self, updates: Mapping[str, CachedToken], *, timeout: float | None = None) -> None:
        """Write ``updates`` over what the file holds now, under the (short) write lock.

        ``updates`` win for their keys (a token this process just fetched replaces a refused
        one); other keys keep whatever another process wrote meanwhile.
        """
        with self.lock(timeout):
            merged = self.load()
            merged.update(updates)
            self.save(merged)

    def __repr__(self) -> str:
        kind = "encrypted" if self.is_encrypted else "plaintext"
        return f"<PersistedTokenStore {self.path} ({kind})>"
