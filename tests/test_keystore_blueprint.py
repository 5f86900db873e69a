"""The PEM path of macOS/Linux end to end: the Blueprint key stored in the real Secret Service under
blueprint_key_entry(...), read back by the config's keystore:<entry> reference, signs assertions that
`cryptography` verifies against the certificate, and gets the three-hop token from the emulator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from conftest import KeyPair
from credential_helpers import GRAPH_SCOPE, assert_no_secrets, error_texts, seed
from entraclaw.auth import build_client_assertion
from entraclaw.auth.signer import PemSigner
from entraclaw.errors import InvalidThumbprintError, KeystoreError
from entraclaw.keystore import (
    KeyringStore,
    MemoryStore,
    blueprint_key_entry,
    default_keystore,
    load_blueprint_pem,
    store_blueprint_pem,
)
from keystore_helpers import require_secret_service, secret_service_backend, track_puts

APP_ID = "1C1B0B5E-0000-4000-8000-00000000B1E5"
TOKEN_ENDPOINT = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"


def test_entry_name_is_per_app_and_per_key(keypair: KeyPair, other_keypair: KeyPair) -> None:
    entry = blueprint_key_entry(APP_ID, keypair.sha1.lower())
    assert entry == f"blueprint-key-{APP_ID.lower()}-{keypair.sha1}"
    # Rotation: a new certificate gets a new entry, so the key in use is never overwritten.
    assert blueprint_key_entry(APP_ID, other_keypair.sha1) != entry


@pytest.mark.parametrize("app_id", ["", "not-a-guid", "1c1b0b5e-0000-4000-8000"])
def test_entry_name_refuses_a_bad_app_id(app_id: str, keypair: KeyPair) -> None:
    with pytest.raises(KeystoreError, match="is not a GUID"):
        blueprint_key_entry(app_id, keypair.sha1)


def test_entry_name_refuses_a_bad_thumbprint() -> None:
    with pytest.raises(InvalidThumbprintError):
        blueprint_key_entry(APP_ID, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0")  # an x5t#S256, not SHA-1


def test_store_refuses_a_key_that_is_not_the_certificates(keypair: KeyPair, other_keypair: KeyPair) -> None:
    store = MemoryStore()
    with pytest.raises(KeystoreError, match="does not belong to certificate") as caught:
        store_blueprint_pem(other_keypair.pem, blueprint_app_id=APP_ID, certificate=keypair.cert, store=store)
    for text in error_texts(caught.value):
        assert_no_secrets(text, [other_keypair.pem.decode()])
    assert store.get(blueprint_key_entry(APP_ID, keypair.sha1)) is None


def test_store_refuses_what_is_not_a_pem_key(keypair: KeyPair) -> None:
    with pytest.raises(KeystoreError, match="not an unencrypted PEM private key"):
        store_blueprint_pem("garbage", blueprint_app_id=APP_ID, certificate=keypair.cert, store=MemoryStore())


def test_load_of_a_missing_entry_names_it_and_what_to_do() -> None:
    with pytest.raises(KeystoreError) as caught:
        load_blueprint_pem("blueprint-key-missing", MemoryStore())
    err = caught.value
    assert err.entry == "blueprint-key-missing"
    assert "store_blueprint_pem" in err.remedy and "file:<path>" in err.remedy


@pytest.fixture
def default_store() -> Iterator[KeyringStore]:
    """default_keystore() of this Linux machine: service "entraclaw" in the (private) Secret Service."""
    require_secret_service()
    store = default_keystore(platform="linux")
    assert isinstance(store, KeyringStore)
    written = track_puts(store)
    yield store
    for entry in written:
        store.delete(entry)


def test_pem_from_the_secret_service_signs_an_assertion_verified_against_the_certificate(
    default_store: KeyringStore, keypair: KeyPair
) -> None:
    entry = store_blueprint_pem(
        keypair.pem.decode("ascii"), blueprint_app_id=APP_ID, certificate=keypair.cert, store=default_store
    )
    assert entry == blueprint_key_entry(APP_ID, keypair.sha1)
    # Read back through a separate store object talking to the service directly, not a cache.
    stored = load_blueprint_pem(entry, KeyringStore(backend=secret_service_backend()))
    key_part, _, cert_part = stored.partition("-----BEGIN CERTIFICATE-----")
    assert key_part == keypair.pem.decode("ascii")  # the key, then its certificate
    assert keypair.cert.public_bytes(serialization.Encoding.PEM).decode("ascii").endswith(cert_part)
    signer = PemSigner.from_pem(key_part.encode("ascii"), certificate=("-----BEGIN CERTIFICATE-----" + cert_part))
    assert signer.x5t_s256 == keypair.x5t_s256
    assertion = build_client_assertion(
        private_key_pem=signer,
        cert_thumbprint=keypair.x5t_s256,
        client_id=APP_ID.lower(),
        token_endpoint=TOKEN_ENDPOINT,
    )
    signing_input, _, signature_b64 = assertion.rpartition(".")
    signature = jwt.utils.base64url_decode(signature_b64)
    keypair.cert.public_key().verify(signature, signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    public_pem = keypair.cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(assertion, public_pem, algorithms=["RS256"], audience=TOKEN_ENDPOINT)
    assert claims["iss"] == claims["sub"] == APP_ID.lower()
    assert jwt.get_unverified_header(assertion)["x5t#S256"] == keypair.x5t_s256


def test_from_config_gets_a_token_with_the_key_in_the_secret_service(
    default_store: KeyringStore, tmp_path: Path
) -> None:
    """Issue 7's "done when": a config written by the .env writer, the key in the real Secret Service."""
    from entraclaw.auth.credential import AgentUserCredential
    from entraclaw.emulator import Emulator
    from entraclaw.platform.dotenv import update_env_file

    with Emulator() as emu:
        seeded = seed(emu)
        key_pem = seeded.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
        entry = store_blueprint_pem(
            key_pem, blueprint_app_id=seeded.blueprint_app_id, certificate=seeded.cert, store=default_store
        )
        signer = seeded.signer
        env_file = tmp_path / "home" / ".env"
        env_file.parent.mkdir()
        update_env_file(
            env_file,
            {
                **seeded.chain_env(),
                "ENTRACLAW_BLUEPRINT_CERT_X5T_S256": signer.x5t_s256 or "",
                "ENTRACLAW_BLUEPRINT_CERT_SHA1": signer.sha1_thumbprint or "",
                "ENTRACLAW_KEY_REF": f"keystore:{entry}",
                "ENTRACLAW_KEY_PROVIDER": "pem",
                "ENTRACLAW_CA_BUNDLE": emu.ca_bundle_path,
            },
        )
        text = env_file.read_text()
        assert "PRIVATE KEY" not in text and key_pem not in text  # the key is in the service, not the file
        # The default keystore (no keystore= argument): what the agent does on a Linux host.
        credential = AgentUserCredential.from_config(env_file=env_file, environ={})
        try:
            token = credential.get_token(GRAPH_SCOPE)
        finally:
            credential.close()
        assert token.token
        assert emu.stats.count() == 3


def test_unknown_entry_in_the_config_is_a_clear_error(default_store: KeyringStore) -> None:
    entry = f"blueprint-key-missing-{uuid.uuid4().hex[:8]}"
    assert default_store.get(entry) is None
    with pytest.raises(KeystoreError) as caught:
        load_blueprint_pem(entry, default_store)
    assert caught.value.entry == entry
    assert "keyring:SecretService.Keyring" in str(caught.value) or "libsecret" in str(caught.value)
