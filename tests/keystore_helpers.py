"""Capability checks and fixtures for the keystore tests.

``secretservice``: a real Secret Service on the D-Bus session bus with an unlocked default
collection, as scripts/with_secret_service.sh provides (and .ci/run requires).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capabilities import require

SECRET_SERVICE_HINT = "run the tests under scripts/with_secret_service.sh (needs gnome-keyring, dbus-daemon)"


_READY = False


def secret_service_problem() -> str | None:
    """None when a real, unlocked Secret Service answers on the session bus; else why not.

    Only success is remembered: a failure is checked again by the next test, so one bad moment
    cannot turn into a whole run of failures, and each failure says what it saw."""
    global _READY
    if _READY:
        return None
    problem = _probe_secret_service()
    _READY = problem is None
    return problem


def _probe_secret_service() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"the Secret Service is a Linux desktop service (this is {sys.platform})"
    if os.environ.get("ENTRACLAW_PRIVATE_SECRET_SERVICE") != "1":
        # The tests write and delete items; a user's own keyring is never their playground.
        return "not inside the private Secret Service of scripts/with_secret_service.sh"
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset)"
    try:
        import secretstorage

        connection = secretstorage.dbus_init()
        try:
            if not secretstorage.check_service_availability(connection):
                return "nothing owns org.freedesktop.secrets on the session bus"
            if secretstorage.get_default_collection(connection).is_locked():
                return "the default Secret Service collection is locked"
        finally:
            connection.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def require_secret_service() -> None:
    problem = secret_service_problem()
    require("secretservice", problem is None, f"{problem}; {SECRET_SERVICE_HINT}")


def secret_service_backend() -> Any:
    """keyring's SecretService backend itself (not a chainer): the tests talk to the real service."""
    require_secret_service()
    from keyring.backends import SecretService

    return SecretService.Keyring()


@pytest.fixture
def secret_service_name() -> Iterator[str]:
    """A keyring service name of this test's own; every item under it is removed afterwards."""
    require_secret_service()
    service = f"entraclaw-test-{uuid.uuid4().hex[:12]}"
    yield service
    purge_service(service)


def purge_service(service: str) -> None:
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        for item in collection.search_items({"service": service}):
            item.delete()
    finally:
        connection.close()


class FileKeyProtector:
    """A DataProtector for tests that need several processes to share protected files (the stand-in's
    key is per process). AES-256-GCM under a key file, entropy as associated data: wrong entropy or a
    changed byte fails as DPAPI does. Test-only; DPAPI itself is exercised through the stand-in, Wine
    and Windows."""

    def __init__(self, key_file: Path) -> None:
        if not key_file.exists():
            key_file.write_bytes(os.urandom(32))
        self._key = key_file.read_bytes()

    def protect(self, data: bytes, entropy: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        return nonce + AESGCM(self._key).encrypt(nonce, data, entropy)

    def unprotect(self, blob: bytes, entropy: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        from entraclaw.errors import KeystoreError

        try:
            return AESGCM(self._key).decrypt(blob[:12], blob[12:], entropy)
        except InvalidTag:
            raise KeystoreError("test protector: blob does not decrypt", hresult=0x8007000D) from None


def track_puts(store: Any) -> list[str]:
    """The entries ``store.put`` writes from now on (in order), so a fixture can delete exactly those."""
    written: list[str] = []
    original_put = store.put

    def put(entry: str, secret: str) -> None:
        written.append(entry)
        original_put(entry, secret)

    store.put = put
    return written


def flip_last_byte(path: Path) -> None:
    """Change one bit of the file's last byte: tampering that must make a protected file fail to decrypt."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def plaintext_keyring(module: str, *, priority: float) -> Any:
    """A keyring backend that poses as a plaintext-file backend living in ``module``; it must never be written."""
    from keyring.backend import KeyringBackend

    rank = priority

    class PlaintextKeyring(KeyringBackend):
        priority = rank  # type: ignore[assignment]

        def get_password(self, service: str, username: str) -> str | None:
            return None

        def set_password(self, service: str, username: str, password: str) -> None:
            raise AssertionError("must never be written to")

        def delete_password(self, service: str, username: str) -> None:
            return None

    PlaintextKeyring.__module__ = module
    return PlaintextKeyring()
