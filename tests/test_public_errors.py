"""Only entraclaw.errors types leave the public API, and they never quote a secret.

One test per place the review found a built-in exception (ValueError) escaping a public
function: the decoders in entraclaw.auth, GraphClient.find_blueprints, and the emulator's
Python API for registering certificates.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from entraclaw.auth import b64url_decode
from entraclaw.auth.certgen import self_signed_certificate
from entraclaw.auth.jwt_claims import claims_summary, unverified_claims
from entraclaw.emulator import Emulator
from entraclaw.errors import ConfigurationError, EmulatorError, EncodingError, EntraclawError
from entraclaw.provisioning.auth import StaticTokenAuth
from entraclaw.provisioning.graph import GraphClient

# Shaped like a token piece: if it showed up in a message, the test would see it.
SECRETISH = "eyJzZWNyZXQiOiJkby1ub3QtcHJpbnQtbWUifQ"


@pytest.mark.parametrize("bad", [SECRETISH + "=", SECRETISH + "+/", SECRETISH[:-1] + "é", SECRETISH + "a" * 3])
def test_b64url_decode_refuses_with_a_typed_error_that_does_not_quote_the_text(bad: str) -> None:
    with pytest.raises(EncodingError) as caught:
        b64url_decode(bad)
    err = caught.value
    assert isinstance(err, ValueError)  # what callers caught before the typed error existed
    assert err.length == len(bad)
    assert "base64url" in err.message and err.remedy
    for text in (str(err), repr(err), json.dumps(err.context)):
        assert SECRETISH not in text


@pytest.mark.parametrize(
    "token",
    [
        "opaque-" + SECRETISH,  # one part: not a JWS at all
        f"{SECRETISH}.{SECRETISH}!.sig",  # payload not base64url
        "e30." + base64.urlsafe_b64encode(b"[1, 2]").decode().rstrip("=") + ".sig",  # payload not an object
        "e30." + "W" * 4000 + ".sig",  # deep or garbage payload
    ],
)
def test_claims_of_a_token_that_is_not_a_jwt_are_a_typed_error_naming_a_command(token: str) -> None:
    for read in (unverified_claims, claims_summary):
        with pytest.raises(EncodingError) as caught:
            read(token)
        err = caught.value
        assert err.length == len(token)
        assert "`entraclaw token --raw`" in err.remedy
        for text in (str(err), repr(err)):
            assert SECRETISH not in text


def test_find_blueprints_without_a_key_is_a_configuration_error() -> None:
    graph = GraphClient("https://graph.invalid/v1.0", StaticTokenAuth("t" * 40))
    with pytest.raises(ConfigurationError) as caught:
        graph.find_blueprints()
    assert "app_id=" in caught.value.remedy and "display_name=" in caught.value.remedy


def test_emulator_refuses_a_non_rsa_certificate_with_its_own_error() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_certificate(key, "ec Blueprint")  # type: ignore[arg-type]
    emu = Emulator()
    with pytest.raises(EmulatorError) as caught:
        emu.tenant.add_blueprint("ec Blueprint", certificates=[cert])
    err = caught.value
    assert isinstance(err, EntraclawError) and err.subject == "CN=ec Blueprint"
    assert "RSA" in err.message and "generate_rsa_key" in err.remedy


def test_a_garbled_certificate_in_a_key_file_is_a_configuration_error_naming_the_file(tmp_path) -> None:
    from entraclaw.auth.certgen import generate_rsa_key, private_key_to_pem
    from entraclaw.provisioning.keys import open_device_key

    key_pem = private_key_to_pem(generate_rsa_key())
    path = tmp_path / "blueprint.pem"
    path.write_bytes(key_pem + b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigurationError) as caught:
        open_device_key(f"file:{path}")
    err = caught.value
    assert err.path == str(path) and str(path) in err.message
    assert "`entraclaw rotate --force`" in err.remedy
    key_lines = key_pem.decode().splitlines()[1:-1]
    for text in (str(err), repr(err)):
        assert not any(line in text for line in key_lines)
