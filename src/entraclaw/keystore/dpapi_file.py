"""Secrets in DPAPI-protected files: ``<state dir>/keys/<entry>.dpapi``.

The Windows home for secrets too large for Credential Manager (a PEM of an
RSA-2048 key is ~3.4 KB in UTF-16, over its 2,560-byte blob limit). DPAPI
(CryptProtectData, current-user scope, no UI) encrypts under the user's logon
secret; the optional entropy is derived from the entry name, so a file copied
onto another entry's name does not decrypt
(https://learn.microsoft.com/en-us/windows/win32/api/dpapi/nf-dpapi-cryptprotectdata).

File format, version 1: the ASCII line ``entraclaw-dpapi-v1`` + ``\\n``, then the
DPAPI blob exactly as CryptProtectData returned it. The plaintext inside the
blob is the secret in UTF-8. Entropy: ``entraclaw-keystore-v1`` + NUL + the
entry name in UTF-8. Files are replaced atomically and are owner-only.

On Linux the stand-in build of ``entraclaw._cng`` implements protect/unprotect
with AES-GCM (tests only); tests/test_keystore_wine.py runs this store against
Wine's real CryptProtectData through an injected protector.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from entraclaw.errors import EntraclawError, KeystoreError
from entraclaw.keystore._files import (
    delete_entry_file,
    entry_file_error,
    entry_file_name,
    read_entry_file,
    write_entry_file,
)
from entraclaw.keystore.base import EntryInfo, KeyStore, validate_entry, validate_secret
from entraclaw.platform.paths import keys_dir

__all__ = ["DPAPI_SUFFIX", "FILE_MAGIC", "DataProtector", "DpapiFileStore", "NativeDpapi", "entry_entropy"]

FILE_MAGIC = b"entraclaw-dpapi-v1\n"
DPAPI_SUFFIX = ".dpapi"
_ENTROPY_PREFIX = b"entraclaw-keystore-v1\x00"
_DESCRIPTION = "entraclaw keystore"


def entry_entropy(entry: str) -> bytes:
    """The DPAPI optional entropy for ``entry``: ties each blob to its entry name."""
    return _ENTROPY_PREFIX + entry.encode("utf-8")


class DataProtector(Protocol):
    """CryptProtectData / CryptUnprotectData for the current user (injectable for tests)."""

    def protect(self, data: bytes, entropy: bytes) -> bytes: ...

    def unprotect(self, blob: bytes, entropy: bytes) -> bytes: ...


class NativeDpapi:
    """DPAPI through ``entraclaw._cng`` (real on Windows, the AES-GCM stand-in in Linux tests)."""

    def protect(self, data: bytes, entropy: bytes) -> bytes:
        from entraclaw import cng

        return cng.protect(data, entropy=entropy, description=_DESCRIPTION)

    def unprotect(self, blob: bytes, entropy: bytes) -> bytes:
        from entraclaw import cng

        return cng.unprotect(blob, entropy=entropy)


class DpapiFileStore(KeyStore[str]):
    """One DPAPI-protected file per entry under ``directory`` (default :func:`~entraclaw.platform.paths.keys_dir`)."""

    name = "dpapi-file"

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, protector: DataProtector | None = None):
        self.directory = Path(directory) if directory is not None else keys_dir()
        if protector is None:
            from entraclaw import cng

            if not cng.native_available():
                raise KeystoreError(
                    f"The DPAPI file store ({self.directory}) needs the compiled module entraclaw._cng, "
                    "which this installation does not have.",
                    remedy=(
                        "Use the Windows wheel of entraclaw; on macOS/Linux use the OS keyring "
                        "(entraclaw.keystore.default_keystore())."
                    ),
                    backend=self.name,
                    path=str(self.directory),
                )
            protector = NativeDpapi()
        self._protector = protector

    def path_for(self, entry: str) -> Path:
        entry = validate_entry(entry, backend=self.name)
        return self.directory / entry_file_name(entry, DPAPI_SUFFIX)

    def _error(
        self, message: str, *, entry: str, path: Path, remedy: str, cause: BaseException | None = None
    ) -> KeystoreError:
        return entry_file_error(message, backend=self.name, entry=entry, path=path, remedy=remedy, cause=cause)

    def put(self, entry: str, secret: str) -> None:
        path = self.path_for(entry)
        secret = validate_secret(secret, backend=self.name, entry=entry)
        try:
            blob = self._protector.protect(secret.encode("utf-8"), entry_entropy(entry))
        except EntraclawError as exc:
            raise self._error(
                f"DPAPI could not protect the value for entry {entry!r} ({exc.message})",
                entry=entry,
                path=path,
                remedy=exc.remedy or "Check that the user profile is loaded (DPAPI needs it) and retry.",
                cause=exc,
            ) from None
        write_entry_file(
            path,
            FILE_MAGIC + blob,
            backend=self.name,
            entry=entry,
            remedy=f"Make {self.directory} writable by this user (and only this user), then store it again.",
        )

    def get(self, entry: str) -> str | None:
        path = self.path_for(entry)
        data = read_entry_file(
            path, backend=self.name, entry=entry, remedy=f"Run as the user who owns {path}, or check its permissions."
        )
        if data is None:
            return None
        if not data.startswith(FILE_MAGIC):
            raise self._error(
                f"{path} (entry {entry!r}) is not an entraclaw DPAPI file (unknown header).",
                entry=entry,
                path=path,
                remedy=f"Delete {path} and store the secret again.",
            )
        try:
            plain = self._protector.unprotect(data[len(FILE_MAGIC) :], entry_entropy(entry))
        except EntraclawError as exc:
            raise self._error(
                f"DPAPI could not decrypt {path} for entry {entry!r} ({exc.message}) It was written by another "
                "Windows user, for another entry name, or was changed.",
                entry=entry,
                path=path,
                remedy=f"Run as the user who stored it; otherwise delete {path} and store the secret again.",
                cause=exc,
            ) from None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise self._error(
                f"{path} (entry {entry!r}) decrypted to bytes that are not UTF-8 text.",
                entry=entry,
                path=path,
                remedy=f"Delete {path} and store the secret again.",
            ) from None

    def delete(self, entry: str) -> bool:
        path = self.path_for(entry)
        return delete_entry_file(
            path,
            backend=self.name,
            entry=entry,
            remedy=f"Close programs that hold {path} open and retry, or delete it by hand.",
        )

    def describe(self, entry: str) -> EntryInfo:
        path = self.path_for(entry)
        try:
            size: int | None = path.stat().st_size
        except FileNotFoundError:
            size = None
        return EntryInfo(self.name, entry, size is not None, str(path), size)

    def __repr__(self) -> str:
        return f"<DpapiFileStore {self.directory}>"
