"""The emulator's token signer: one RSA key, published as JWKS, that signs T1, T2, T3 and id tokens.

Header shape follows Entra (``typ``, ``alg=RS256``, ``kid`` = ``x5t`` = the
base64url SHA-1 of the signing certificate). The key survives restarts through
the state file, so tokens issued before a restart still verify after it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from entraclaw.auth._b64 import b64url_encode
from entraclaw.emulator import jwt_codec

__all__ = ["TOKEN_EXCHANGE_AUDIENCE", "TOKEN_EXCHANGE_AUDIENCES", "TokenIssuer"]

#: The app id Entra uses for api://AzureADTokenExchange (the audience of T1 and T2).
TOKEN_EXCHANGE_AUDIENCE = "fb60f99c-7a34-4190-8149-302f77469936"  # noqa: S105 - an app id
TOKEN_EXCHANGE_AUDIENCES = frozenset({TOKEN_EXCHANGE_AUDIENCE, "api://AzureADTokenExchange"})


def _int_b64(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class TokenIssuer:
    def __init__(self, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert
        der = cert.public_bytes(serialization.Encoding.DER)
        self.kid = b64url_encode(hashlib.sha1(der, usedforsecurity=False).digest())
        self._x5c = base64.b64encode(der).decode("ascii")
        self.public_key = key.public_key()

    @classmethod
    def generate(cls) -> TokenIssuer:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "entraclaw emulator token signing")])
        start = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=5)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + _dt.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes) -> TokenIssuer:
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the signing key is not RSA")
        return cls(key, x509.load_pem_x509_certificate(cert_pem))

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def jwks(self, issuer: str) -> dict[str, Any]:
        numbers = self.public_key.public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "x5t": self.kid,
                    "n": _int_b64(numbers.n),
                    "e": _int_b64(numbers.e),
                    "x5c": [self._x5c],
                    "issuer": issuer,
                }
            ]
        }

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5t": self.kid, "kid": self.kid}
        return jwt_codec.sign_rs256(header, claims, self.key)

    def mint(self, *, issuer: str, tenant_id: str, now: float, lifetime: int, **claims: Any) -> str:
        issued = int(now)
        body: dict[str, Any] = {
            "iss": issuer,
            "iat": issued,
            "nbf": issued,
            "exp": issued + lifetime,
            "tid": tenant_id,
            "uti": b64url_encode(uuid.uuid4().bytes),
            "ver": "2.0",
        }
        body.update(claims)
        return self.sign(body)

    def verify(self, token: jwt_codec.ParsedJwt) -> bool:
        """True when ``token`` carries this issuer's kid and its RS256 signature verifies."""
        if token.header.get("kid") != self.kid or token.header.get("alg") != "RS256":
            return False
        return jwt_codec.verify(token, self.public_key, "RS256")
