"""The Windows path of default_keystore(), run on Linux: Credential Manager's 2,560-byte blob limit in
front of the DPAPI file store.

The keyring backend is the real Secret Service (gnome-keyring); only the size limit is Windows'.
What the limit means on real Credential Manager (CredWrite accepting 2,560 bytes and refusing
2,562) is proved by the `windows` tests at the end, in cibuildwheel's test step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from cng_helpers import require_standin
from conftest import make_keypair
from credential_helpers import assert_no_secrets
from entraclaw.keystore import (
    CRED_MAX_CREDENTIAL_BLOB_SIZE,
    DpapiFileStore,
    KeyringStore,
    credential_manager_size,
)
from keystore_conformance import KeyStoreConformance
from keystore_helpers import FileKeyProtector, secret_service_backend, secret_service_name

__all__ = ["secret_service_name"]  # fixture

LIMIT = CRED_MAX_CREDENTIAL_BLOB_SIZE


def _windows_like(service: str, directory: Path) -> KeyringStore:
    require_standin()
    return KeyringStore(service, backend=secret_service_backend(), size_limit=LIMIT, overflow=DpapiFileStore(directory))


def _in_keyring(store: KeyringStore, entry: str) -> bool:
    return store.backend.get_password(store.service, entry) is not None


def _in_file(store: KeyringStore, entry: str) -> bool:
    assert isinstance(store.overflow, DpapiFileStore)
    return store.overflow.path_for(entry).exists()


@pytest.fixture
def windows_like(secret_service_name: str, tmp_path: Path) -> KeyringStore:
    return _windows_like(secret_service_name, tmp_path / "keys")


class TestCredentialManagerPathConformance(KeyStoreConformance):
    """The whole suite through keyring + overflow (the large-value test lands in the DPAPI file)."""

    @pytest.fixture
    def store(self, windows_like: KeyringStore) -> KeyringStore:
        return windows_like


def test_the_limit_is_five_times_512() -> None:
    assert LIMIT == 2560
    assert credential_manager_size("a" * 1280) == 2560
    assert credential_manager_size("\U0001f511") == 4  # astral: a surrogate pair
    assert credential_manager_size("é") == 2


@pytest.mark.parametrize(
    ("label", "value", "expected_bytes", "where"),
    [
        ("1280 ASCII chars", "a" * 1280, 2560, "keyring"),
        ("1281 ASCII chars", "a" * 1281, 2562, "file"),
        ("640 astral chars", "\U0001f511" * 640, 2560, "keyring"),
        ("1278 ASCII + 1 astral", "a" * 1278 + "\U0001f511", 2560, "keyring"),
        ("1279 ASCII + 1 astral", "a" * 1279 + "\U0001f511", 2562, "file"),
        ("1279 ASCII + é", "a" * 1279 + "é", 2560, "keyring"),
    ],
)
def test_boundary_is_exact(
    windows_like: KeyringStore,
    caplog: pytest.LogCaptureFixture,
    label: str,
    value: str,
    expected_bytes: int,
    where: str,
) -> None:
    assert len(value.encode("utf-16-le")) == expected_bytes, label
    caplog.set_level(logging.INFO, logger="entraclaw.keystore")
    windows_like.put("boundary", value)
    assert windows_like.get("boundary") == value
    assert (_in_keyring(windows_like, "boundary"), _in_file(windows_like, "boundary")) == (
        where == "keyring",
        where == "file",
    )
    records = [r for r in caplog.records if r.name.startswith("entraclaw.keystore")]
    if where == "keyring":
        assert records == []
    else:
        assert len(records) == 1
        message = records[0].getMessage()
        assert records[0].levelno == logging.WARNING
        assert f"{expected_bytes} bytes as UTF-16" in message
        assert str(windows_like.overflow.path_for("boundary")) in message  # type: ignore[union-attr]
        assert_no_secrets(message, [value])
    info = windows_like.describe("boundary")
    assert info.backend == ("dpapi-file" if where == "file" else "keyring:SecretService.Keyring")
    assert info.size is not None


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_real_pkcs8_pem_goes_to_the_dpapi_file(windows_like: KeyringStore, bits: int) -> None:
    kp = make_keypair(f"entraclaw-credman-{bits}", bits) if bits != 2048 else make_keypair("entraclaw-credman")
    pem = kp.pem.decode("ascii")
    size = credential_manager_size(pem)
    print(f"RSA-{bits} PKCS#8 PEM: {len(pem)} chars, {size} bytes as UTF-16 -> DPAPI file")
    assert size > LIMIT
    windows_like.put("blueprint-key", pem)
    assert (_in_keyring(windows_like, "blueprint-key"), _in_file(windows_like, "blueprint-key")) == (False, True)
    assert windows_like.get("blueprint-key") == pem


def test_moving_between_places_leaves_one_copy(windows_like: KeyringStore) -> None:
    small, big = "small value", "b" * 2000
    windows_like.put("e", small)
    assert (_in_keyring(windows_like, "e"), _in_file(windows_like, "e")) == (True, False)
    windows_like.put("e", big)
    assert (_in_keyring(windows_like, "e"), _in_file(windows_like, "e")) == (False, True)
    assert windows_like.get("e") == big
    windows_like.put("e", small)
    assert (_in_keyring(windows_like, "e"), _in_file(windows_like, "e")) == (True, False)
    assert windows_like.get("e") == small


def test_get_finds_either_place_and_delete_removes_both(windows_like: KeyringStore) -> None:
    assert windows_like.overflow is not None
    windows_like.overflow.put("only-file", "in the file")
    assert windows_like.get("only-file") == "in the file"
    assert windows_like.describe("only-file").backend == "dpapi-file"
    # Both places hold a value (an interrupted put): the keyring wins, delete clears both.
    windows_like.backend.set_password(windows_like.service, "both", "keyring copy")
    windows_like.overflow.put("both", "file copy")
    assert windows_like.get("both") == "keyring copy"
    assert windows_like.delete("both") is True
    assert (_in_keyring(windows_like, "both"), _in_file(windows_like, "both")) == (False, False)
    assert windows_like.delete("both") is False
    assert windows_like.delete("only-file") is True
    assert windows_like.get("only-file") is None


# --- killed between the two steps of a put ------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    sys.path.insert(0, {tests!r})
    from keyring.backends import SecretService
    from keystore_helpers import FileKeyProtector
    from entraclaw.keystore import DpapiFileStore, KeyringStore
    from pathlib import Path

    cfg = json.loads(sys.argv[1])
    overflow = DpapiFileStore(cfg["dir"], protector=FileKeyProtector(Path(cfg["key"])))
    store = KeyringStore(cfg["service"], backend=SecretService.Keyring(), size_limit=2560, overflow=overflow)
    backend = store.backend

    # The hook: SIGKILL right after the first place is written, before the other copy is removed.
    if cfg["kill_after"] == "file":
        real_put = overflow.put
        def put(entry, secret):
            real_put(entry, secret)
            os.kill(os.getpid(), signal.SIGKILL)
        overflow.put = put
    else:
        real_set = backend.set_password
        def set_password(service, entry, secret):
            real_set(service, entry, secret)
            os.kill(os.getpid(), signal.SIGKILL)
        backend.set_password = set_password
    store.put("e", cfg["value"])
    print("not killed")
    """
)


def _run_killed_put(service: str, tmp_path: Path, value: str, kill_after: str) -> None:
    cfg = {"dir": str(tmp_path / "keys"), "key": str(tmp_path / "test.key"), "service": service}
    cfg.update(value=value, kill_after=kill_after)
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(tests=str(Path(__file__).parent)))
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(cfg)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("old", "new", "kill_after"),
    [("small old value", "N" * 1281, "file"), ("O" * 1281, "small new value", "keyring")],
    ids=["keyring-to-file", "file-to-keyring"],
)
def test_put_killed_between_steps_loses_nothing_and_converges(
    secret_service_name: str, tmp_path: Path, old: str, new: str, kill_after: str
) -> None:
    overflow = DpapiFileStore(tmp_path / "keys", protector=FileKeyProtector(tmp_path / "test.key"))
    store = KeyringStore(secret_service_name, backend=secret_service_backend(), size_limit=LIMIT, overflow=overflow)
    store.put("e", old)
    _run_killed_put(secret_service_name, tmp_path, new, kill_after)
    # Both places hold a value now; what get returns is one whole value, never nothing.
    assert _in_keyring(store, "e") and _in_file(store, "e")
    # keyring-to-file: the keyring still has the old value (the put did not finish);
    # file-to-keyring: the keyring has the new one. Either way a complete value.
    assert store.get("e") == (old if kill_after == "file" else new)
    store.put("e", new)  # the next run converges
    assert store.get("e") == new
    assert [_in_keyring(store, "e"), _in_file(store, "e")].count(True) == 1
    assert store.delete("e") is True
    assert store.get("e") is None


# --- what only Windows proves ------------------------------------------------------------------


def _require_windows_credman() -> None:
    from capabilities import require

    require("windows", sys.platform == "win32", "needs Windows Credential Manager")


@pytest.mark.windows
def test_windows_credential_manager_accepts_2560_bytes_and_refuses_2562() -> None:
    _require_windows_credman()
    import keyring
    from keyring.backends import Windows

    backend = keyring.get_keyring()
    assert isinstance(backend, Windows.WinVaultKeyring), type(backend)
    service = f"entraclaw-test-{uuid.uuid4().hex[:12]}"
    try:
        backend.set_password(service, "fits", "a" * 1280)
        assert backend.get_password(service, "fits") == "a" * 1280
        with pytest.raises(Exception):  # noqa: B017 - pywin32-ctypes raises its own error type
            backend.set_password(service, "too-big", "a" * 1281)
    finally:
        for entry in ("fits", "too-big"):
            with contextlib.suppress(Exception):
                backend.delete_password(service, entry)


@pytest.mark.windows
def test_windows_default_keystore_puts_a_pem_in_a_dpapi_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _require_windows_credman()
    from entraclaw.keystore import default_keystore

    monkeypatch.setenv("ENTRACLAW_HOME", str(tmp_path))
    store = default_keystore()
    assert isinstance(store, KeyringStore)
    assert store.name == "keyring:Windows.WinVaultKeyring"
    entry = f"test-{uuid.uuid4().hex[:12]}"
    pem = make_keypair("entraclaw-windows-credman").pem.decode("ascii")
    try:
        store.put(entry, pem)
        assert store.get(entry) == pem
        assert store.describe(entry).backend == "dpapi-file"
        assert (tmp_path / "keys" / f"{entry}.dpapi").exists()
        store.put(entry, "small")
        assert store.describe(entry).backend == "keyring:Windows.WinVaultKeyring"
        assert not (tmp_path / "keys" / f"{entry}.dpapi").exists()
    finally:
        store.delete(entry)
    assert os.listdir(tmp_path / "keys") == []
