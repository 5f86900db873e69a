"""The secret scanner (credential_helpers.assert_no_secrets) over every keystore code path that can
speak: each error's message, remedy, repr, structured fields and pickled form, and every log record,
while a real RSA private key PEM is the value being stored."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cng_helpers import HR, Standin, require_standin, standin_fixture  # noqa: F401  (fixture)
from conftest import KeyPair
from credential_helpers import assert_no_secrets, error_texts
from entraclaw.errors import EntraclawError, KeystoreError
from entraclaw.keystore import (
    CngSentinelStore,
    DpapiFileStore,
    KeyringStore,
    MemoryStore,
    load_blueprint_pem,
    store_blueprint_pem,
)

APP_ID = "1c1b0b5e-0000-4000-8000-00000000b1e5"


# --- the scanner itself ----------------------------------------------------------------------------


def test_scanner_catches_a_pem_key_whole_or_cut(keypair: KeyPair) -> None:
    pem = keypair.pem.decode("ascii")
    body = "".join(pem.splitlines()[1:-1])
    for leaked in (pem, pem[:40], "key was " + body[:24] + "...", pem.splitlines()[-1]):
        with pytest.raises(AssertionError):
            assert_no_secrets(leaked)


def test_scanner_does_not_flag_certificates_thumbprints_or_paths(keypair: KeyPair) -> None:
    from cryptography.hazmat.primitives import serialization

    cert_pem = keypair.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    public = keypair.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert_no_secrets(cert_pem + public.decode("ascii") + keypair.sha1 + keypair.x5t_s256 + " /home/x/.entraclaw/keys")


def test_scanner_takes_eyj_inside_a_base64_run_for_certificate_bytes_not_a_token() -> None:
    """About one certificate in 250 has "eyJ" and six base64url characters inside its PEM body; the
    scanner flagged it as a JWT prefix and the test above failed now and then. A token starts a word."""
    from credential_helpers import JWT_PREFIX_RE

    assert_no_secrets("MIIDBTCCAe2gAwIBAgIUeyJabcdefgh0123+/Q==")
    for text in ("Bearer eyJhbGciOiJSUzI1NiJ9", "client_assertion=eyJ0eXAiOiJKV1Qi", "'eyJraWQiOiJhYmMi'"):
        assert JWT_PREFIX_RE.search(text), text


# --- every path that raises or logs ----------------------------------------------------------------


def _all_texts(err: BaseException) -> Iterator[str]:
    yield from error_texts(err)
    if isinstance(err, EntraclawError):
        yield err.remedy
        yield json.dumps(err.context, default=repr)
        yield repr(pickle.loads(pickle.dumps(err)))  # what crosses a process or log-handler boundary


class _LeakyBackend:
    """A keyring backend whose errors quote the value (as a careless third-party backend might)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise RuntimeError(f"cannot store {password!r} for {username}")

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        raise PasswordDeleteError("not found")


def _paths(tmp: Path, pem: str, kp: KeyPair, other: KeyPair, standin: Standin) -> dict[str, Callable[[], Any]]:
    dpapi = DpapiFileStore(tmp / "dpapi")

    def dpapi_protect_fails() -> None:
        standin.fail("CryptProtectData", HR["E_ACCESSDENIED"])
        dpapi.put("e1", pem)

    def dpapi_wrong_entry() -> None:
        dpapi.put("e2", pem)
        dpapi.path_for("e3").write_bytes(dpapi.path_for("e2").read_bytes())
        dpapi.get("e3")

    def dpapi_plaintext_restored() -> None:
        dpapi.put("e4", pem)
        dpapi.path_for("e4").write_text(pem)
        dpapi.get("e4")

    def dpapi_unwritable() -> None:
        blocked = DpapiFileStore(tmp / "file-not-dir" / "keys")
        (tmp / "file-not-dir").write_text("in the way")
        blocked.put("e", pem)

    return {
        "bytes instead of str": lambda: MemoryStore().put("e", pem.encode()),  # type: ignore[arg-type]
        "bad entry name": lambda: MemoryStore().put("bad\nname", pem),
        "keyring backend quotes the value": lambda: KeyringStore(backend=_LeakyBackend()).put("e", pem),
        "DPAPI protect fails": dpapi_protect_fails,
        "DPAPI file moved to another entry": dpapi_wrong_entry,
        "plaintext PEM restored over a DPAPI file": dpapi_plaintext_restored,
        "DPAPI directory not writable": dpapi_unwritable,
        "CNG sentinel handed a PEM": lambda: CngSentinelStore(tmp / "cng").put("e", pem),
        "key does not match certificate": lambda: store_blueprint_pem(
            pem, blueprint_app_id=APP_ID, certificate=other.cert, store=MemoryStore()
        ),
        "missing entry": lambda: load_blueprint_pem("blueprint-key-none", MemoryStore()),
    }


PATH_NAMES = [
    "bytes instead of str",
    "bad entry name",
    "keyring backend quotes the value",
    "DPAPI protect fails",
    "DPAPI file moved to another entry",
    "plaintext PEM restored over a DPAPI file",
    "DPAPI directory not writable",
    "CNG sentinel handed a PEM",
    "key does not match certificate",
    "missing entry",
]


@pytest.mark.parametrize("path_name", PATH_NAMES)
def test_no_key_material_in_any_keystore_error_or_log(
    path_name: str,
    tmp_path: Path,
    standin: Standin,
    keypair: KeyPair,
    other_keypair: KeyPair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_standin()
    pem = keypair.pem.decode("ascii")
    action = _paths(tmp_path, pem, keypair, other_keypair, standin)[path_name]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KeystoreError) as caught:
        action()
    for text in _all_texts(caught.value):
        assert_no_secrets(text, [pem])
    for record in caplog.records:
        assert_no_secrets(record.getMessage(), [pem])


def test_credential_manager_overflow_log_and_reprs_hold_no_key(
    tmp_path: Path, keypair: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    require_standin()
    pem = keypair.pem.decode("ascii")
    store = KeyringStore(backend=_MemoryBackend(), size_limit=2560, overflow=DpapiFileStore(tmp_path / "keys"))
    caplog.set_level(logging.DEBUG)
    store.put("blueprint-key", pem)
    assert store.get("blueprint-key") == pem
    texts = [record.getMessage() for record in caplog.records]
    assert any("over the Credential Manager limit" in text for text in texts)
    texts += [repr(store), str(store), repr(store.describe("blueprint-key")), repr(store.overflow)]
    for text in texts:
        assert_no_secrets(text, [pem])


class _MemoryBackend:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if self.values.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")
