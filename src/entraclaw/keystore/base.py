"""The one interface every key and secret store implements, and the rules they share.

A store maps an entry name (``blueprint-key-<app id>-<SHA1>``, ...) to a value.
Secret stores hold strings (a PEM private key); the Windows CNG sentinel holds
only a reference and hands back a :class:`~entraclaw.cng.CngKeyHandle`, which is
why :class:`KeyStore` is generic in what ``get`` returns.

Rules shared by all backends:

- ``put`` overwrites; ``get`` of a missing entry is ``None``; ``delete`` is
  idempotent and says whether something was removed.
- Entry names are 1..200 characters, no control characters (D-Bus strings and
  Credential Manager target names cannot carry NUL; a newline in a name is never
  intended). Any other character works, and each backend keeps case-distinct
  names apart (the file backends hash names that a case-insensitive file system
  could confuse).
- No secret ever reaches a message, ``repr``, log record or exception field.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Generic, TypeVar

from entraclaw.errors import KeystoreError

__all__ = [
    "MAX_ENTRY_LENGTH",
    "SERVICE",
    "EntryInfo",
    "KeyStore",
    "describe_exception",
    "validate_entry",
    "validate_secret",
]

#: The keyring service every entraclaw entry lives under.
SERVICE = "entraclaw"
MAX_ENTRY_LENGTH = 200

ValueT = TypeVar("ValueT")


@dataclass(frozen=True)
class EntryInfo:
    """Non-secret facts about one entry.

    ``location`` says where the value lives (a file path, ``service=entraclaw
    entry=... in SecretService``); ``size`` is how many bytes the backend holds
    for it (the encoded secret for a keyring, the file for the file stores), or
    None when the entry does not exist or the backend cannot tell.
    """

    backend: str
    entry: str
    exists: bool
    location: str
    size: int | None = None


def validate_entry(entry: object, *, backend: str) -> str:
    """The entry name, or a KeystoreError saying what is wrong with it (never echoing a long value)."""
    if not isinstance(entry, str):
        raise KeystoreError(
            f"Keystore entry names are strings, not {type(entry).__name__} ({backend}).",
            remedy="Pass the entry name as str, e.g. blueprint_key_entry(app_id, sha1).",
            backend=backend,
        )
    problem = None
    if not entry:
        problem = "is empty"
    elif len(entry) > MAX_ENTRY_LENGTH:
        problem = f"is {len(entry)} characters long (at most {MAX_ENTRY_LENGTH})"
    elif any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in entry):
        problem = "contains a control character"
    elif any(0xD800 <= ord(ch) <= 0xDFFF for ch in entry):
        problem = "contains a lone surrogate (not encodable as UTF-8)"
    if problem is None:
        return entry
    preview = entry[:40].encode("unicode_escape").decode("ascii")
    raise KeystoreError(
        f"Keystore entry name {preview!r} {problem} ({backend}).",
        remedy=f"Use 1..{MAX_ENTRY_LENGTH} printable characters, e.g. blueprint_key_entry(app_id, sha1).",
        backend=backend,
        entry=preview,
    )


def validate_secret(secret: object, *, backend: str, entry: str) -> str:
    """``secret`` if it is a str that UTF-8 (and so UTF-16) can encode; the error names only the type."""
    if not isinstance(secret, str):
        raise KeystoreError(
            f"The value for keystore entry {entry!r} must be str, not {type(secret).__name__} ({backend}).",
            remedy="Decode the key first, e.g. pem_bytes.decode('ascii').",
            backend=backend,
            entry=entry,
        )
    try:
        secret.encode("utf-8")
    except UnicodeEncodeError:
        raise KeystoreError(
            f"The value for keystore entry {entry!r} contains a lone surrogate and cannot be stored ({backend}).",
            remedy="Store text that encodes as UTF-8 (a PEM is ASCII).",
            backend=backend,
            entry=entry,
        ) from None
    return secret


def describe_exception(exc: BaseException, secret: str | None = None) -> str:
    """``Type: text`` for an error message, or just ``Type`` if the text could carry ``secret``.

    Backends' own messages are useful ("collection is locked") but come from
    code we do not control, so any text that contains the secret, or a 16+
    character piece of it, is dropped.
    """
    text = str(exc).strip()
    name = type(exc).__name__
    if not text:
        return name
    if secret:
        pieces = {secret} | {secret[i : i + 16] for i in range(0, max(len(secret) - 15, 1), 8)}
        if any(piece and piece in text for piece in pieces):
            return name
    return f"{name}: {text[:300]}"


class KeyStore(abc.ABC, Generic[ValueT]):
    """A named key/secret store. ``name`` identifies the backend in errors and ``describe``."""

    name: str = "keystore"

    @abc.abstractmethod
    def put(self, entry: str, secret: str) -> None:
        """Store ``secret`` under ``entry``, replacing any previous value."""

    @abc.abstractmethod
    def get(self, entry: str) -> ValueT | None:
        """The value stored under ``entry``, or None."""

    @abc.abstractmethod
    def delete(self, entry: str) -> bool:
        """Remove ``entry``; True if something was removed, False if it did not exist."""

    @abc.abstractmethod
    def describe(self, entry: str) -> EntryInfo:
        """Where ``entry`` is and whether it exists, without revealing the value."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
