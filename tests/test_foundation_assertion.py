"""Client assertions, verified independently with PyJWT against the certificate's public key."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from entraclaw.auth import (
    PemSigner,
    Signer,
    b64url_decode,
    b64url_encode,
    build_client_assertion,
    resolve_signer,
)
from entraclaw.auth.certgen import private_key_to_pem, self_signed_certificate
from entraclaw.errors import (
    ClientAssertionError,
    ConfigurationError,
    KeyMaterialError,
    ThumbprintMismatchError,
    UnsupportedKeyError,
)

ENDPOINT = "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token"
CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def _build(keypair, **kw):
    args = dict(
        private_key_pem=keypair.pem.decode(),
        cert_thumbprint=keypair.x5t_s256,
        client_id=CLIENT,
        token_endpoint=ENDPOINT,
    )
    args.update(kw)
    return build_client_assertion(**args)


def _verify(token, keypair, algorithm):
    return jwt.decode(
        token,
        keypair.cert.public_key(),
        algorithms=[algorithm],
        audience=ENDPOINT,
        issuer=CLIENT,
        options={"require": ["exp", "nbf", "iat", "aud", "iss", "sub", "jti"]},
    )


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_assertion_verifies_with_certificate_public_key(keypair, algorithm):
    token = _build(keypair, algorithm=algorithm)
    claims = _verify(token, keypair, algorithm)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": algorithm, "typ": "JWT", "x5t#S256": keypair.x5t_s256}
    assert claims["sub"] == claims["iss"] == CLIENT
    assert claims["aud"] == ENDPOINT


def test_claim_window(keypair):
    before = int(time.time())
    claims = _verify(_build(keypair), keypair, "RS256")
    after = int(time.time())
    assert before <= claims["iat"] <= after
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 600


def test_lifetime_and_fixed_clock(keypair):
    claims = jwt.decode(
        _build(keypair, lifetime=120, now=1_700_000_000),
        keypair.cert.public_key(),
        algorithms=["RS256"],
        audience=ENDPOINT,
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (1_700_000_000, 1_700_000_000, 1_700_000_120)


@pytest.mark.parametrize("lifetime", [0, -1, 601, 3600])
def test_lifetime_outside_entra_limit_rejected(keypair, lifetime):
    with pytest.raises(ClientAssertionError) as info:
        _build(keypair, lifetime=lifetime)
    assert CLIENT in str(info.value)


def test_jti_unique(keypair):
    jtis = {_verify(_build(keypair), keypair, "RS256")["jti"] for _ in range(200)}
    assert len(jtis) == 200


def _tamper(token, part, change):
    pieces = token.split(".")
    if part == 2:
        sig = bytearray(b64url_decode(pieces[2]))
        sig[len(sig) // 2] ^= 0x01
        pieces[2] = b64url_encode(bytes(sig))
    else:
        doc = json.loads(b64url_decode(pieces[part]))
        change(doc)
        pieces[part] = b64url_encode(json.dumps(doc, separators=(",", ":")).encode())
    return ".".join(pieces)


@pytest.mark.parametrize(
    ("part", "change"),
    [
        (1, lambda c: c.update(sub="ffffffff-bbbb-cccc-dddd-eeeeeeeeeeee")),
        (1, lambda c: c.update(exp=c["exp"] + 3600)),
        (1, lambda c: c.update(aud="https://evil.example/token")),
        (0, lambda h: h.update({"x5t#S256": "A" * 43})),
        (2, None),
    ],
)
def test_tampering_breaks_verification(keypair, part, change):
    token = _tamper(_build(keypair), part, change)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, keypair.cert.public_key(), algorithms=["RS256"], audience=ENDPOINT)


def test_wrong_key_does_not_verify(keypair, other_keypair):
    token = _build(keypair)
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(token, other_keypair, "RS256")


def test_signer_and_pem_paths_agree_on_header(keypair):
    signer = PemSigner.from_pem(keypair.pem, certificate=keypair.cert)
    token = _build(keypair, private_key_pem=signer)
    _verify(token, keypair, "RS256")
    assert signer.x5t_s256 == keypair.x5t_s256
    assert signer.sha1_thumbprint == keypair.sha1


def test_thumbprint_checked_against_known_certificate(keypair, other_keypair):
    signer = PemSigner.from_pem(keypair.pem, certificate=keypair.cert)
    with pytest.raises(ThumbprintMismatchError) as info:
        _build(keypair, private_key_pem=signer, cert_thumbprint=other_keypair.x5t_s256)
    assert keypair.x5t_s256 in str(info.value) and other_keypair.x5t_s256 in str(info.value)
    assert info.value.client_id == CLIENT


def test_malformed_thumbprint_rejected_before_signing(keypair):
    with pytest.raises(ConfigurationError):
        _build(keypair, cert_thumbprint="not-a-thumbprint")


def test_include_x5t_adds_sha1_header(keypair):
    signer = PemSigner.from_pem(keypair.pem, certificate=keypair.cert)
    header = jwt.get_unverified_header(_build(keypair, private_key_pem=signer, include_x5t=True))
    assert b64url_decode(header["x5t"]).hex().upper() == keypair.sha1


def test_include_x5t_without_certificate_is_clear(keypair):
    with pytest.raises(ClientAssertionError, match="include_x5t"):
        _build(keypair, include_x5t=True)


def test_extra_claims_cannot_override_registered(keypair):
    token = _build(keypair, extra_claims={"ver": "2"})
    assert _verify(token, keypair, "RS256")["ver"] == "2"
    with pytest.raises(ClientAssertionError, match="aud"):
        _build(keypair, extra_claims={"aud": "https://elsewhere"})


@pytest.mark.parametrize(
    "endpoint", ["http://login.microsoftonline.com/t/oauth2/v2.0/token", "ftp://x/token", "token", ""]
)
def test_insecure_endpoint_rejected(keypair, endpoint):
    with pytest.raises(ConfigurationError):
        _build(keypair, token_endpoint=endpoint)


def test_loopback_http_endpoint_allowed(keypair):
    _build(keypair, token_endpoint="http://127.0.0.1:8080/t/oauth2/v2.0/token")


def test_unsupported_algorithm(keypair):
    with pytest.raises(ClientAssertionError):
        _build(keypair, algorithm="HS256")


def test_empty_client_id(keypair):
    with pytest.raises(ConfigurationError):
        _build(keypair, client_id=" ")


def test_encrypted_pem_with_password(keypair):
    enc = private_key_to_pem(keypair.key, password=b"correct horse")
    token = _build(keypair, private_key_pem=enc, password="correct horse")
    _verify(token, keypair, "RS256")
    with pytest.raises(KeyMaterialError, match="encrypted"):
        _build(keypair, private_key_pem=enc)
    with pytest.raises(KeyMaterialError) as info:
        _build(keypair, private_key_pem=enc, password="wrong")
    assert "wrong" not in str(info.value)


def test_ec_key_rejected():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(UnsupportedKeyError, match="RSA"):
        PemSigner.from_pem(pem)


def test_short_rsa_key_rejected():
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(UnsupportedKeyError, match="1024"):
        PemSigner.from_pem(private_key_to_pem(key))


@pytest.mark.parametrize("garbage", [b"", b"hello", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
def test_garbled_pem_rejected_without_echo(garbage):
    with pytest.raises(UnsupportedKeyError) as info:
        PemSigner.from_pem(garbage)
    if garbage:
        assert garbage.decode() not in str(info.value) or garbage == b""


def test_truncated_real_pem_not_echoed(keypair):
    truncated = keypair.pem[: len(keypair.pem) // 2]
    with pytest.raises(UnsupportedKeyError) as info:
        PemSigner.from_pem(truncated)
    body = keypair.pem.decode().splitlines()[1]
    assert body not in str(info.value) and body not in repr(info.value)


def test_certificate_must_belong_to_key(keypair, other_keypair):
    with pytest.raises(KeyMaterialError, match=other_keypair.sha1):
        PemSigner.from_pem(keypair.pem, certificate=other_keypair.cert)


def test_signer_repr_holds_no_key_material(keypair):
    signer = PemSigner.from_pem(keypair.pem, certificate=keypair.cert)
    text = repr(signer)
    assert "PRIVATE" not in text and keypair.pem.decode().splitlines()[1] not in text
    assert keypair.x5t_s256 in text


def test_pem_is_parsed_once_per_key(keypair):
    first = resolve_signer(keypair.pem)
    assert resolve_signer(keypair.pem.decode()) is first


class _Handle:
    """A key handle in the shape of the Windows CNG sentinel."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self.calls = 0

    def as_signer(self) -> Signer:
        self.calls += 1
        return self.signer


def test_key_handle_dispatch(keypair):
    handle = _Handle(PemSigner.from_pem(keypair.pem, certificate=keypair.cert))
    token = _build(keypair, private_key_pem=handle, algorithm="PS256")
    _verify(token, keypair, "PS256")
    assert handle.calls == 1


def test_unknown_key_type_rejected(keypair):
    with pytest.raises(ConfigurationError, match="int"):
        _build(keypair, private_key_pem=12345)


def test_self_signed_helper_cert_is_rsa_2048(keypair):
    assert keypair.cert.public_key().key_size == 2048
    assert self_signed_certificate(keypair.key, "x").subject.rfc4514_string() == "CN=x"


@pytest.mark.parametrize("client_id", ['app"with\\quotes', "appé-ü-✓", "a\nb"])
def test_claims_are_valid_json_for_any_client_id(keypair, client_id):
    token = _build(keypair, client_id=client_id)
    claims = jwt.decode(token, keypair.cert.public_key(), algorithms=["RS256"], audience=ENDPOINT)
    assert claims["iss"] == claims["sub"] == client_id
