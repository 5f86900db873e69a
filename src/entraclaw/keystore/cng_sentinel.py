"""The Windows Blueprint key: the key stays in CNG (TPM or software KSP); this store keeps only where it is.

``put(entry, reference)`` records a non-secret reference to a certificate in a
Windows certificate store: ``cng:CurrentUser/<SHA1>``, ``cng:LocalMachine/<SHA1>``
or a bare SHA-1 thumbprint (CurrentUser). Anything else, a PEM above all, is
refused with :class:`~entraclaw.errors.SecretRefusedError`: this store must never
become a place where a private key sits in a file. ``get`` returns a
:class:`~entraclaw.cng.CngKeyHandle`, the sentinel the signer turns into a
:class:`~entraclaw.cng.CngSigner`; the certificate and key are only opened then.

References live in ``<state dir>/keys/<entry>.cngref`` (one line of text, written
atomically, owner-only): not secret, but only this user needs them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from entraclaw.errors import SecretRefusedError
from entraclaw.keystore._files import (
    delete_entry_file,
    entry_file_error,
    entry_file_name,
    read_entry_file,
    write_entry_file,
)
from entraclaw.keystore.base import SERVICE, EntryInfo, KeyStore, validate_entry
from entraclaw.platform.paths import keys_dir

if TYPE_CHECKING:
    from entraclaw.cng import CngKeyHandle

__all__ = ["CNGREF_SUFFIX", "CngSentinelStore", "format_reference", "parse_reference"]

CNGREF_SUFFIX = ".cngref"
_REFERENCE = re.compile(r"cng:(CurrentUser|LocalMachine)/([0-9A-Fa-f]{40})")
_BARE_SHA1 = re.compile(r"[0-9A-Fa-f]{40}")


def format_reference(sha1: str, store_location: str = "CurrentUser") -> str:
    """``cng:<location>/<SHA1>``, the ENTRACLAW_KEY_REF form of a CNG key."""
    return f"cng:{store_location}/{sha1.upper()}"


def parse_reference(value: str) -> tuple[str, str] | None:
    """``(store_location, SHA1)`` for a reference, or None if ``value`` is not one."""
    text = value.strip()
    match = _REFERENCE.fullmatch(text)
    if match:
        return match.group(1), match.group(2).upper()
    if _BARE_SHA1.fullmatch(text):
        return "CurrentUser", text.upper()
    return None


class CngSentinelStore(KeyStore["CngKeyHandle"]):
    """References to CNG keys by certificate thumbprint, one file per entry in ``directory``."""

    name = "cng-sentinel"

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else keys_dir()

    def path_for(self, entry: str) -> Path:
        entry = validate_entry(entry, backend=self.name)
        return self.directory / entry_file_name(entry, CNGREF_SUFFIX)

    def put(self, entry: str, secret: str) -> None:
        path = self.path_for(entry)
        parsed = parse_reference(secret) if isinstance(secret, str) else None
        if parsed is None:
            looks_like_key = isinstance(secret, str) and ("PRIVATE KEY" in secret or "-----BEGIN" in secret)
            what = "a PEM private key" if looks_like_key else "a value that is not a certificate reference"
            # The value is never echoed: it may be a key.
            raise SecretRefusedError(
                f"The CNG sentinel store refuses {what} for entry {entry!r}: it records only "
                "'cng:CurrentUser/<SHA1>', 'cng:LocalMachine/<SHA1>' or a bare SHA-1 thumbprint.",
                service=SERVICE,
                backend=self.name,
                entry=entry,
                path=str(path),
            )
        location, sha1 = parsed
        write_entry_file(
            path,
            (format_reference(sha1, location) + "\n").encode("ascii"),
            backend=self.name,
            entry=entry,
            remedy=f"Make {self.directory} writable by this user, then record the reference again.",
        )

    def reference(self, entry: str) -> str | None:
        """The recorded ``cng:<location>/<SHA1>`` for ``entry``, or None."""
        path = self.path_for(entry)
        remedy = f"Delete {path} and record the reference again (cng:CurrentUser/<SHA1>)."
        data = read_entry_file(path, backend=self.name, entry=entry, remedy=remedy)
        if data is None:
            return None
        try:
            parsed = parse_reference(data.decode("ascii"))
        except UnicodeDecodeError:
            parsed = None
        if parsed is None:
            raise entry_file_error(
                f"{path} (entry {entry!r}) does not hold a CNG certificate reference.",
                backend=self.name,
                entry=entry,
                path=path,
                remedy=remedy,
            )
        return format_reference(parsed[1], parsed[0])

    def get(self, entry: str) -> CngKeyHandle | None:
        from entraclaw.cng import CngKeyHandle

        reference = self.reference(entry)
        if reference is None:
            return None
        parsed = parse_reference(reference)
        assert parsed is not None  # reference() only returns parsed references
        location, sha1 = parsed
        return CngKeyHandle(sha1, location)

    def delete(self, entry: str) -> bool:
        path = self.path_for(entry)
        return delete_entry_file(path, backend=self.name, entry=entry, remedy=f"Delete {path} by hand.")

    def describe(self, entry: str) -> EntryInfo:
        path = self.path_for(entry)
        reference = self.reference(entry)
        location = str(path) if reference is None else f"{path} -> certificate {reference}"
        size = None if reference is None else path.stat().st_size
        return EntryInfo(self.name, entry, reference is not None, location, size)

    def __repr__(self) -> str:
        return f"<CngSentinelStore {self.directory}>"
