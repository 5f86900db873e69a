"""The persisted token cache encrypted by a real Secret Service (msal-extensions LibsecretPersistence,
PyGObject + libsecret + gnome-keyring): without allow_plaintext, the tokens never touch the disk.

Needs capability ``secretservice`` (scripts/with_secret_service.sh) and PyGObject (``gi``), which
scripts/test.sh installs on Linux.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

from capabilities import require
from credential_helpers import assert_no_secrets
from entraclaw.auth.persisted_cache import PersistedTokenStore
from entraclaw.auth.token_cache import CachedToken
from keystore_helpers import require_secret_service


def _require_libsecret() -> None:
    require_secret_service()
    try:
        import gi

        gi.require_version("Secret", "1")
        from gi.repository import Secret  # noqa: F401
    except (ImportError, ValueError) as exc:
        require(
            "secretservice",
            False,
            f"PyGObject with the Secret typelib is missing ({exc}); scripts/test.sh installs PyGObject<3.51, "
            "apt-get install gir1.2-secret-1",
        )


def _token() -> str:
    # JWT-shaped so the scanner would also catch it, unique so a grep of the disk is meaningful.
    return "eyJhbGciOiJSUzI1NiJ9.eyJ0ZXN0IjoiIiwidWlkIjoi" + uuid.uuid4().hex + "In0.c2lnbmF0dXJl"


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_cache_is_encrypted_by_the_secret_service_and_not_on_disk(tmp_path: Path) -> None:
    _require_libsecret()
    path = tmp_path / "agent_tokens.bin"
    store = PersistedTokenStore(path)  # no allow_plaintext: encryption or an error
    assert store.is_encrypted
    assert store.encryption_unavailable_reason is None
    assert "(encrypted)" in repr(store)
    token = _token()
    entry = CachedToken.create(token, expires_on=time.time() + 3600, obtained_on=time.time())
    with store.lock():
        store.save({"t3": entry})
        assert store.load()["t3"].token == token
    # Nothing under the cache directory holds the token, or any part of it.
    for file in _files_under(tmp_path):
        data = file.read_bytes()
        assert token.encode() not in data, file
        assert token[-40:].encode() not in data, file
        assert_no_secrets(data.decode("utf-8", "replace"), [token])


def test_cache_entry_is_an_item_in_the_secret_service(tmp_path: Path) -> None:
    _require_libsecret()
    import secretstorage

    path = tmp_path / "agent_tokens.bin"
    store = PersistedTokenStore(path)
    token = _token()
    with store.lock():
        store.save({"k": CachedToken.create(token, expires_on=time.time() + 3600, obtained_on=time.time())})
    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        holders = [item for item in collection.get_all_items() if token.encode() in item.get_secret()]
        assert len(holders) == 1  # the cache document lives in the service, encrypted in its keyring file
        for item in holders:
            item.delete()
    finally:
        connection.close()


_CHILD = textwrap.dedent(
    """
    import hashlib, json, sys, time
    from entraclaw.auth.persisted_cache import PersistedTokenStore
    from entraclaw.auth.token_cache import CachedToken
    cfg = json.loads(sys.argv[1])
    store = PersistedTokenStore(cfg["path"])
    with store.lock():
        entries = store.load()
        seen = {k: hashlib.sha256(v.token.encode()).hexdigest() for k, v in entries.items()}
        if cfg.get("write"):
            entries["child"] = CachedToken.create(cfg["write"], expires_on=time.time() + 3600, obtained_on=time.time())
            store.save(entries)
    print(json.dumps({"encrypted": store.is_encrypted, "seen": seen}))
    """
)


def _child(path: Path, write: str | None = None) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps({"path": str(path), "write": write})],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert_no_secrets(done.stdout + done.stderr)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_round_trip_across_processes(tmp_path: Path) -> None:
    import hashlib

    _require_libsecret()
    path = tmp_path / "agent_tokens.bin"
    store = PersistedTokenStore(path)
    parent_token, child_token = _token(), _token()
    with store.lock():
        store.save({"parent": CachedToken.create(parent_token, expires_on=time.time() + 3600, obtained_on=time.time())})
    # Another process reads what this one wrote, and writes its own entry...
    result = _child(path, write=child_token)
    assert result["encrypted"] is True
    assert result["seen"] == {"parent": hashlib.sha256(parent_token.encode()).hexdigest()}
    # ...which this process reads back; neither token is in any file.
    with store.lock():
        loaded = store.load()
    assert {k: v.token for k, v in loaded.items()} == {"parent": parent_token, "child": child_token}
    for file in _files_under(tmp_path):
        data = file.read_bytes()
        assert parent_token.encode() not in data and child_token.encode() not in data, file


def test_without_a_secret_service_the_cache_refuses_plaintext(tmp_path: Path) -> None:
    """The same code with the session bus gone: a KeystoreError, never a silent plaintext file."""
    script = textwrap.dedent(
        """
        import sys
        from entraclaw.auth.persisted_cache import PersistedTokenStore
        from entraclaw.errors import KeystoreError
        try:
            store = PersistedTokenStore(sys.argv[1])
        except KeystoreError as exc:
            print("refused", exc.path)
        else:
            print("encrypted" if store.is_encrypted else "PLAINTEXT")
        """
    )
    env = dict(os.environ)
    env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={tmp_path / 'no-bus'}"
    path = tmp_path / "agent_tokens.bin"
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.strip()
    # msal-extensions' LibsecretPersistence tries the service when it is built: no bus, no store.
    assert out == f"refused {path}", out
    assert not path.exists() or path.read_bytes() == b""
