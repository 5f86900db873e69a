"""KeyringStore against a real Secret Service (gnome-keyring over D-Bus), and its backend checks.

The Secret Service tests need the session scripts/with_secret_service.sh starts; .ci/run requires
capability ``secretservice``, so there they fail instead of skipping. The backend-detection tests
use keyring's own fail/null/chainer classes and need no service.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from credential_helpers import assert_no_secrets, error_texts
from entraclaw.errors import KeystoreError
from entraclaw.keystore import KeyringStore, default_keystore
from entraclaw.keystore.keyring_store import resolve_backend
from keystore_conformance import KeyStoreConformance
from keystore_helpers import plaintext_keyring, require_secret_service, secret_service_backend, secret_service_name

__all__ = ["secret_service_name"]  # the fixture, imported for pytest


class TestSecretServiceConformance(KeyStoreConformance):
    @pytest.fixture
    def store(self, secret_service_name: str) -> KeyringStore:
        return KeyringStore(secret_service_name, backend=secret_service_backend())


class TestCaseInsensitiveNamingConformance(KeyStoreConformance):
    """The naming used on Credential Manager (case-insensitive target names), run on the real Secret
    Service: Key/key/KEY stay three entries whatever the backend compares."""

    @pytest.fixture
    def store(self, secret_service_name: str) -> KeyringStore:
        return KeyringStore(secret_service_name, backend=secret_service_backend(), case_insensitive=True)


def test_case_insensitive_naming_keeps_lower_case_names_and_maps_the_rest(secret_service_name: str) -> None:
    store = KeyringStore(secret_service_name, backend=secret_service_backend(), case_insensitive=True)
    assert store.username_for("blueprint-key-abc") == "blueprint-key-abc"
    mapped = {store.username_for(name) for name in ("Key", "key", "KEY", "key~x")}
    assert len(mapped) == 4
    assert "key" in mapped
    assert all(name == "key" or "~" in name for name in mapped)
    # Mapped names differ even when compared without case.
    assert len({name.lower() for name in mapped}) == 4
    store.put("Key", "upper")
    usernames = {attributes["username"] for attributes, _ in _items(secret_service_name)}
    assert usernames == {store.username_for("Key")}
    assert "(stored as key~" in store.describe("Key").location


def test_windows_backend_defaults_to_case_insensitive_naming() -> None:
    class WinVaultKeyring:
        def get_password(self, service: str, username: str) -> None:
            return None

    WinVaultKeyring.__module__ = "keyring.backends.Windows"
    assert KeyringStore(backend=WinVaultKeyring()).case_insensitive is True
    assert KeyringStore(backend=_LockedBackend()).case_insensitive is False


def _items(service: str) -> list[Any]:
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        return [(item.get_attributes(), item.get_secret()) for item in collection.search_items({"service": service})]
    finally:
        connection.close()


def test_value_is_an_item_of_the_real_secret_service(secret_service_name: str) -> None:
    store = KeyringStore(secret_service_name, backend=secret_service_backend())
    secret = "-----BEGIN PRIVATE KEY-----\n" + uuid.uuid4().hex + "\n-----END PRIVATE KEY-----\n"
    store.put("blueprint-key-x", secret)
    # Read back through secretstorage directly, not through keyring: the item is in the service.
    items = _items(secret_service_name)
    assert len(items) == 1
    attributes, stored = items[0]
    assert attributes["username"] == "blueprint-key-x"
    assert stored == secret.encode("utf-8")
    info = store.describe("blueprint-key-x")
    assert info.backend == "keyring:SecretService.Keyring"
    assert info.location == f"service={secret_service_name} entry=blueprint-key-x in keyring:SecretService.Keyring"
    assert info.size == len(secret)


def test_secret_is_encrypted_at_rest_in_the_keyring_file(secret_service_name: str) -> None:
    import os

    data = Path(os.environ.get("ENTRACLAW_SECRET_SERVICE_DATA", "/nonexistent")) / "keyrings"
    assert data.is_dir(), "scripts/with_secret_service.sh exports ENTRACLAW_SECRET_SERVICE_DATA"
    keyring_file = data / "login.keyring"
    before = keyring_file.stat().st_size
    store = KeyringStore(secret_service_name, backend=secret_service_backend())
    secret = "-----BEGIN PRIVATE KEY-----\n" + uuid.uuid4().hex * 20 + "\n-----END PRIVATE KEY-----\n"
    store.put("at-rest", secret)
    # gnome-keyring rewrites the keyring file while answering the call: the item is on disk now,
    # encrypted with the keyring password; no piece of the secret is readable in any file.
    assert keyring_file.stat().st_size > before + len(secret) // 2
    for file in data.iterdir():
        content = file.read_bytes()
        assert secret.encode() not in content
        assert secret[28:60].encode() not in content  # a 32-character piece of the body
        assert b"PRIVATE KEY" not in content


def test_second_process_reads_what_the_first_stored(secret_service_name: str, tmp_path: Path) -> None:
    store = KeyringStore(secret_service_name, backend=secret_service_backend())
    secret = "cross-process " + uuid.uuid4().hex
    store.put("shared", secret)
    script = tmp_path / "reader.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import hashlib
            from keyring.backends import SecretService
            from entraclaw.keystore import KeyringStore
            value = KeyringStore({secret_service_name!r}, backend=SecretService.Keyring()).get("shared")
            print(hashlib.sha256(value.encode()).hexdigest())
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    import hashlib

    assert done.stdout.strip() == hashlib.sha256(secret.encode()).hexdigest()


def test_default_keystore_on_linux_is_the_secret_service() -> None:
    require_secret_service()
    store = default_keystore(platform="linux")
    assert isinstance(store, KeyringStore)
    assert store.service == "entraclaw"
    assert store.overflow is None and store.size_limit is None
    # keyring's chainer puts SecretService first; what this store writes to is the real service.
    assert store.name in ("keyring:SecretService.Keyring", "keyring:libsecret.Keyring")
    entry = f"default-store-probe-{uuid.uuid4().hex[:8]}"
    try:
        store.put(entry, "probe value")
        assert KeyringStore(backend=secret_service_backend()).get(entry) == "probe value"
    finally:
        store.delete(entry)
    assert store.get(entry) is None


class _LockedBackend:
    """A keyring backend that fails like SecretService does on a locked collection, with a message
    that (unlike the real one) carries the value, to prove the store drops such text."""

    def __init__(self) -> None:
        self.last: str | None = None

    def set_password(self, service: str, username: str, password: str) -> None:
        from keyring.errors import KeyringLocked

        raise KeyringLocked(f"Failed to unlock the collection while storing {password}")

    def get_password(self, service: str, username: str) -> str | None:
        from keyring.errors import KeyringLocked

        raise KeyringLocked("Failed to unlock the collection!")

    def delete_password(self, service: str, username: str) -> None:
        raise OSError(13, "Permission denied")


def test_backend_failures_are_keystore_errors_without_the_secret() -> None:
    store = KeyringStore("entraclaw", backend=_LockedBackend())
    secret = "must-not-leak-" + uuid.uuid4().hex + PEM_TAIL
    with pytest.raises(KeystoreError) as caught:
        store.put("blueprint-key-x", secret)
    err = caught.value
    assert (err.service, err.entry) == ("entraclaw", "blueprint-key-x")
    assert err.backend == "keyring:test_keystore_keyring._LockedBackend"
    assert "KeyringLocked" in err.message
    assert "dbus-run-session" in err.remedy and "scripts/with_state_keyring.sh" in err.remedy
    for text in error_texts(err):
        assert_no_secrets(text, [secret])
    with pytest.raises(KeystoreError, match="Failed to unlock the collection!"):
        store.get("blueprint-key-x")
    with pytest.raises(KeystoreError) as caught:
        store.delete("blueprint-key-x")
    assert caught.value.os_error == 13


PEM_TAIL = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"


# --- backend detection: never a silent fallback -------------------------------------------------


def test_fail_backend_is_refused_naming_it_and_the_fix() -> None:
    from keyring.backends import fail

    with pytest.raises(KeystoreError) as caught:
        KeyringStore(backend=fail.Keyring())
    err = caught.value
    assert err.backend == "keyring:fail.Keyring"
    assert err.service == "entraclaw"
    assert "no usable backend" in err.message
    assert "gnome-keyring" in err.remedy
    assert "dbus-run-session" in err.remedy and "scripts/with_state_keyring.sh" in err.remedy
    assert "`entraclaw setup --key-storage file`" in err.remedy  # the headless fix that needs nothing installed
    assert "python -m keyring --list-backends" in err.remedy


def test_null_backend_is_refused() -> None:
    from keyring.backends import null

    with pytest.raises(KeystoreError, match="stores nothing"):
        KeyringStore(backend=null.Keyring())


def test_chainer_without_backends_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from keyring.backends import chainer

    monkeypatch.setattr(chainer.ChainerBackend, "backends", [])
    with pytest.raises(KeystoreError, match="no backend to chain") as caught:
        KeyringStore(backend=chainer.ChainerBackend())
    assert caught.value.backend == "keyring:chainer.ChainerBackend"


def test_chainer_whose_first_backend_is_plaintext_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from keyring.backends import chainer

    monkeypatch.setattr(chainer.ChainerBackend, "backends", [plaintext_keyring("keyrings.alt.file", priority=0.5)])
    with pytest.raises(KeystoreError, match="plaintext file") as caught:
        KeyringStore(backend=chainer.ChainerBackend())
    assert caught.value.backend == "keyring:keyrings.alt.file.PlaintextKeyring"


def test_active_backend_is_refused_through_default_keystore(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    with pytest.raises(KeystoreError, match="fail"):
        default_keystore(platform="linux")


def test_resolve_backend_unwraps_a_chainer_to_the_backend_that_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    from keyring.backends import chainer

    backend = secret_service_backend()
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [backend])
    assert resolve_backend(chainer.ChainerBackend()) is backend
