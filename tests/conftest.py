"""Shared fixtures: RSA keys and certificates are generated once per session (keygen is slow)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from entraclaw.auth.certgen import generate_rsa_key, private_key_to_pem, self_signed_certificate
from entraclaw.auth.thumbprint import compute_cert_thumbprint, compute_sha1_thumbprint

sys.path.insert(0, str(Path(__file__).parent))
# Helper modules loaded as plugins keep pytest's assertion introspection.
pytest.register_assert_rewrite("emulator_helpers", "credential_helpers", "cng_helpers", "wine_helpers")


@dataclass(frozen=True)
class KeyPair:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    pem: bytes

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def x5t_s256(self) -> str:
        return compute_cert_thumbprint(self.der)

    @property
    def sha1(self) -> str:
        return compute_sha1_thumbprint(self.der)


def make_keypair(cn: str, bits: int = 2048) -> KeyPair:
    key = generate_rsa_key(bits)
    return KeyPair(key, self_signed_certificate(key, cn), private_key_to_pem(key))


@pytest.fixture(scope="session")
def keypair() -> KeyPair:
    return make_keypair("entraclaw-test-a")


@pytest.fixture(scope="session")
def other_keypair() -> KeyPair:
    return make_keypair("entraclaw-test-b")


@pytest.fixture(scope="session")
def wine_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Wine prefix every Wine test of the session shares (ENTRACLAW_WINEPREFIX when set)."""
    import wine_helpers

    return wine_helpers.session_prefix(tmp_path_factory)
