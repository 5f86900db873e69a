"""from_config: a config written by the .env writer gets real tokens from the emulator over HTTPS; open_signer."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from cng_helpers import Standin, standin_fixture  # noqa: F401  (fixture)
from credential_helpers import assert_no_secrets, error_texts, seed
from entraclaw.auth.certgen import private_key_to_pem
from entraclaw.auth.credential import AgentIdentityCredential, AgentUserCredential
from entraclaw.auth.thumbprint import compute_cert_thumbprint, compute_sha1_thumbprint
from entraclaw.config import AgentConfig, KeyReference, load_config, open_signer, save_config
from entraclaw.emulator import Emulator
from entraclaw.errors import ConfigurationError, NetworkError
from entraclaw.platform.dotenv import read_env_file, update_env_file

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@pytest.fixture(scope="module")
def emu():
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def seeded(emu):
    return seed(emu, upn=f"agent-{uuid.uuid4().hex[:8]}@contoso.example")


def _der(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def write_config(home: Path, emu, seeded, *, ca_bundle: bool = True, with_cert_in_pem: bool = False) -> Path:
    """The .env a setup would write, through the .env writer, with the key as a PEM file."""
    home.mkdir(parents=True, exist_ok=True)
    key_file = home / "blueprint.pem"
    pem = private_key_to_pem(seeded.key)
    if with_cert_in_pem:
        pem += seeded.cert.public_bytes(serialization.Encoding.PEM)
    key_file.write_bytes(pem)
    values = {
        **seeded.chain_env(),
        "ENTRACLAW_BLUEPRINT_CERT_X5T_S256": None if with_cert_in_pem else compute_cert_thumbprint(_der(seeded.cert)),
        "ENTRACLAW_BLUEPRINT_CERT_SHA1": compute_sha1_thumbprint(_der(seeded.cert)),
        "ENTRACLAW_KEY_REF": f"file:{key_file}",
        "ENTRACLAW_KEY_PROVIDER": "pem",
        "ENTRACLAW_SCOPES": GRAPH_SCOPE,
        "ENTRACLAW_CA_BUNDLE": emu.ca_bundle_path if ca_bundle else None,
    }
    update_env_file(home / ".env", values)
    return home / ".env"


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("ENTRACLAW_") and name != "ENTRACLAW_REQUIRE":
            monkeypatch.delenv(name)
    # Set to something that cannot verify the emulator: the trust must come from ENTRACLAW_CA_BUNDLE.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", os.devnull)
    monkeypatch.setenv("CURL_CA_BUNDLE", os.devnull)
    return monkeypatch


def test_agent_user_credential_from_config_gets_t3_over_https(tmp_path, emu, seeded, clean_env):
    home = tmp_path / "state"
    write_config(home, emu, seeded)
    clean_env.setenv("ENTRACLAW_HOME", str(home))
    before = emu.stats.count()
    with AgentUserCredential.from_config() as credential:
        info = credential.get_token_info(*load_config().scopes)
        assert emu.stats.count() - before == 3  # Hop 1, Hop 2, Hop 3 over the network
        claims = jwt.decode(info.token, emu.signing_public_key, algorithms=["RS256"], options={"verify_aud": False})
        assert claims["oid"] == seeded.agent_user_id and claims["idtyp"] == "user"
        assert credential.agent_user_id == seeded.agent_user_id
        session = credential._owned_session
        assert session is not None and session.trust_env is False and session.verify == emu.ca_bundle_path
    assert credential._owned_session is None  # closed with the credential


def test_agent_identity_credential_from_config_gets_an_app_token(tmp_path, emu, seeded, clean_env):
    dotenv = write_config(tmp_path / "state", emu, seeded)
    emu.tenant.grant_app_roles(seeded.agent_identity_app_id, "https://graph.microsoft.com", ["User.Read.All"])
    with AgentIdentityCredential.from_config(env_file=dotenv, environ={}) as credential:
        token = credential.get_token(GRAPH_SCOPE).token
    claims = jwt.decode(token, emu.signing_public_key, algorithms=["RS256"], options={"verify_aud": False})
    assert claims["idtyp"] == "app" and claims["appid"] == seeded.agent_identity_app_id


def test_config_object_and_overrides(tmp_path, emu, seeded, clean_env):
    dotenv = write_config(tmp_path / "state", emu, seeded)
    config = load_config(environ={}, env_file=dotenv)
    with AgentUserCredential.from_config(config, agent_user_upn=seeded.agent_user_upn) as by_upn:
        assert by_upn.agent_user_upn == seeded.agent_user_upn and by_upn.agent_user_id is None
        claims = jwt.decode(by_upn.get_token(GRAPH_SCOPE).token, options={"verify_signature": False})
        assert claims["oid"] == seeded.agent_user_id


def test_pem_with_its_certificate_needs_no_x5t(tmp_path, emu, seeded, clean_env):
    dotenv = write_config(tmp_path / "state", emu, seeded, with_cert_in_pem=True)
    config = load_config(environ={}, env_file=dotenv)
    assert config.cert_x5t_s256 is None
    with AgentUserCredential.from_config(config) as credential:
        assert credential.signer.x5t_s256 == compute_cert_thumbprint(_der(seeded.cert))
        credential.get_token(GRAPH_SCOPE)


def test_without_ca_bundle_the_emulator_is_not_trusted_even_with_requests_ca_bundle(tmp_path, emu, seeded, clean_env):
    dotenv = write_config(tmp_path / "state", emu, seeded, ca_bundle=False)
    clean_env.setenv("REQUESTS_CA_BUNDLE", emu.ca_bundle_path)  # ignored by design
    with AgentUserCredential.from_config(env_file=dotenv) as credential, pytest.raises(NetworkError):
        credential.get_token(GRAPH_SCOPE)


def test_missing_settings_are_reported_together(tmp_path, clean_env):
    dotenv = tmp_path / ".env"
    update_env_file(dotenv, {"ENTRACLAW_TENANT_ID": "not-a-guid", "UNRELATED": "1"})
    with pytest.raises(ConfigurationError) as info:
        AgentUserCredential.from_config(env_file=dotenv, environ={})
    keys = [p.key for p in info.value.problems]
    assert keys[0] == "ENTRACLAW_TENANT_ID" and len(keys) == 5
    assert info.value.problems[0].origin == f"{dotenv} line 1"


# --- open_signer -----------------------------------------------------------------------------------


class FakeStore:
    """A KeyStore-shaped store: open_signer needs only get() and name (the real backends are the keystore tests')."""

    name = "fake"

    def __init__(self, entries: dict[str, str]) -> None:
        self.entries = entries

    def get(self, entry: str) -> str | None:
        return self.entries.get(entry)


def test_keystore_reference(tmp_path, emu, seeded, clean_env):
    pem = private_key_to_pem(seeded.key).decode("ascii")
    entry = f"blueprint-key-{seeded.blueprint_app_id}-{compute_sha1_thumbprint(_der(seeded.cert))}"
    dotenv = write_config(tmp_path / "state", emu, seeded)
    update_env_file(dotenv, {"ENTRACLAW_KEY_REF": f"keystore:{entry}"})
    config = load_config(environ={}, env_file=dotenv)
    store = FakeStore({entry: pem})
    with AgentUserCredential.from_config(config, keystore=store) as credential:
        credential.get_token(GRAPH_SCOPE)
    with pytest.raises(ConfigurationError) as info:
        open_signer(config, keystore=FakeStore({}))
    assert entry in str(info.value) and "fake" in str(info.value)
    for text in error_texts(info.value):
        assert_no_secrets(text, [pem])


def test_file_key_without_certificate_or_x5t_names_the_key(tmp_path, keypair):
    key_file = tmp_path / "k.pem"
    key_file.write_bytes(keypair.pem)
    with pytest.raises(ConfigurationError) as info:
        open_signer(AgentConfig(key_ref=KeyReference.file(key_file)))
    assert "ENTRACLAW_BLUEPRINT_CERT_X5T_S256" in str(info.value)
    signer = open_signer(AgentConfig(key_ref=KeyReference.file(key_file), cert_x5t_s256=keypair.x5t_s256))
    assert signer.key_description.startswith("PEM RSA")


def test_unreadable_key_file_names_the_path(tmp_path, keypair):
    key_file = tmp_path / "k.pem"
    key_file.write_bytes(keypair.pem)
    config = AgentConfig(key_ref=KeyReference.file(key_file), cert_x5t_s256=keypair.x5t_s256)
    key_file.unlink()
    with pytest.raises(ConfigurationError, match=str(key_file)):
        open_signer(config)


def test_cng_reference_opens_the_cng_key(standin: Standin, keypair):
    installed = standin.add(keypair)
    config = load_config({"key_ref": f"cng:CurrentUser/{installed.thumbprint}"}, environ={}, env_file=False)
    signer = open_signer(config)
    assert signer.sha1_thumbprint == keypair.sha1 and signer.key_description.startswith("CNG")


def test_saved_config_round_trips_through_from_config(tmp_path, emu, seeded, clean_env):
    dotenv = write_config(tmp_path / "a", emu, seeded)
    config = load_config(environ={}, env_file=dotenv)
    copy = save_config(config, tmp_path / "b" / ".env")
    assert read_env_file(copy).values() == read_env_file(dotenv).values()
    with AgentUserCredential.from_config(env_file=copy, environ={}) as credential:
        credential.get_token(GRAPH_SCOPE)


def test_pem_with_certificate_first_then_key(tmp_path, keypair):
    cert_pem = keypair.cert.public_bytes(serialization.Encoding.PEM)
    key_file = tmp_path / "k.pem"
    key_file.write_bytes(b"Bag Attributes: junk\n" + cert_pem + keypair.pem)
    signer = open_signer(AgentConfig(key_ref=KeyReference.file(key_file)))
    assert signer.x5t_s256 == keypair.x5t_s256
