"""CngSentinelStore through the stand-in: it records certificate references, refuses keys, and hands
back CngKeyHandle objects that sign through the (stand-in) CNG core."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from cng_helpers import Standin, require_standin, standin_fixture, verify  # noqa: F401  (fixture)
from conftest import KeyPair
from credential_helpers import assert_no_secrets, error_texts
from entraclaw.cng import CngKeyHandle
from entraclaw.errors import KeystoreError, SecretRefusedError
from entraclaw.keystore import CngSentinelStore, format_reference
from keystore_conformance import KeyStoreConformance


class TestCngSentinelConformance(KeyStoreConformance):
    arbitrary_values = False

    @pytest.fixture
    def store(self, tmp_path: Path) -> CngSentinelStore:
        require_standin()
        return CngSentinelStore(tmp_path / "keys")

    def value(self, i: int) -> str:
        sha1 = hashlib.sha1(f"{i}-{uuid.uuid4()}".encode()).hexdigest().upper()
        return format_reference(sha1, "LocalMachine" if i % 2 else "CurrentUser")

    def normalize(self, got: Any) -> Any:
        if got is None:
            return None
        assert isinstance(got, CngKeyHandle)
        return format_reference(got.thumbprint, got.store_location)


@pytest.fixture
def sentinel(tmp_path: Path) -> CngSentinelStore:
    require_standin()
    return CngSentinelStore(tmp_path / "keys")


def test_a_pem_is_refused_with_a_typed_error_and_nothing_is_written(
    sentinel: CngSentinelStore, keypair: KeyPair
) -> None:
    pem = keypair.pem.decode("ascii")
    with pytest.raises(SecretRefusedError) as caught:
        sentinel.put("blueprint-key", pem)
    err = caught.value
    assert isinstance(err, KeystoreError)
    assert "PEM private key" in err.message
    assert (err.backend, err.entry) == ("cng-sentinel", "blueprint-key")
    assert "cng:CurrentUser/<SHA1>" in err.remedy
    for text in error_texts(err):
        assert_no_secrets(text, [pem])
    assert not sentinel.directory.exists() or list(sentinel.directory.iterdir()) == []


@pytest.mark.parametrize("value", ["not a thumbprint", "cng:Elsewhere/" + "A" * 40, "A" * 39, ""])
def test_anything_but_a_reference_is_refused(sentinel: CngSentinelStore, value: str) -> None:
    with pytest.raises(SecretRefusedError, match="not a certificate reference"):
        sentinel.put("e", value)


def test_file_holds_only_the_reference(sentinel: CngSentinelStore, keypair: KeyPair) -> None:
    sentinel.put("blueprint-key", keypair.sha1.lower())  # a bare SHA-1 means CurrentUser
    path = sentinel.path_for("blueprint-key")
    assert path.read_text() == f"cng:CurrentUser/{keypair.sha1}\n"
    assert sentinel.reference("blueprint-key") == f"cng:CurrentUser/{keypair.sha1}"
    info = sentinel.describe("blueprint-key")
    assert info.location == f"{path} -> certificate cng:CurrentUser/{keypair.sha1}"


@pytest.mark.parametrize("location", ["CurrentUser", "LocalMachine"])
def test_handle_from_get_signs_with_the_certificates_key(
    sentinel: CngSentinelStore, standin: Standin, keypair: KeyPair, location: str
) -> None:
    installed = standin.add(keypair, location=location)
    sentinel.put("blueprint-key", format_reference(installed.thumbprint, location))
    handle = sentinel.get("blueprint-key")
    assert isinstance(handle, CngKeyHandle)
    assert (handle.thumbprint, handle.store_location) == (keypair.sha1, location)
    signature = handle.as_signer().sign(b"sentinel signing input")
    verify(keypair, signature, b"sentinel signing input")
    handle.close()


def test_a_corrupt_reference_file_is_an_error_naming_it(sentinel: CngSentinelStore) -> None:
    sentinel.put("e", "A" * 40)
    sentinel.path_for("e").write_text("-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(KeystoreError, match="does not hold a CNG certificate reference") as caught:
        sentinel.get("e")
    assert caught.value.path == str(sentinel.path_for("e"))
