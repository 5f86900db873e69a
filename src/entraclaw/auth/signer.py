"""The ``Signer`` abstraction: something that signs a JWS signing input.

A signer reports its certificate (so thumbprints and the public key come from
one place) and signs with RS256 (RSASSA-PKCS1-v1_5 + SHA-256) or PS256
(RSASSA-PSS + SHA-256, salt length = hash length). ``PemSigner`` keeps the
parsed key in memory; the CNG signer in :mod:`entraclaw.cng` keeps a handle to a
key that never leaves the TPM. Both are interchangeable for
:func:`entraclaw.auth.build_client_assertion`.
"""

from __future__ import annotations

import abc
from typing import Literal, Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from entraclaw.auth.thumbprint import compute_cert_thumbprint, compute_sha1_thumbprint
from entraclaw.errors import KeyMaterialError, UnsupportedKeyError

__all__ = [
    "MIN_RSA_BITS",
    "SUPPORTED_ALGORITHMS",
    "Algorithm",
    "PemSigner",
    "Signer",
    "SupportsSigner",
    "load_certificate",
    "verify_signature",
]

Algorithm = Literal["RS256", "PS256"]
SUPPORTED_ALGORITHMS: frozenset[str] = frozenset({"RS256", "PS256"})
MIN_RSA_BITS = 2048


def _padding_for(algorithm: str) -> padding.AsymmetricPadding:
    if algorithm == "RS256":
        return padding.PKCS1v15()
    if algorithm == "PS256":
        return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    raise UnsupportedKeyError(
        f"Algorithm {algorithm!r} is not supported for client assertions.",
        remedy="Use 'RS256' (accepted everywhere by Entra) or 'PS256'.",
        algorithm=algorithm,
    )


def load_certificate(data: bytes | str | x509.Certificate) -> x509.Certificate:
    """Accept a certificate as an object, DER bytes or PEM text/bytes."""
    if isinstance(data, x509.Certificate):
        return data
    raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError as exc:
        raise KeyMaterialError(
            f"The certificate ({len(raw)} bytes) is neither valid DER nor PEM.",
            remedy="Export the certificate again (DER .cer or PEM) and pass its bytes unchanged.",
        ) from exc


def verify_signature(public_key: rsa.RSAPublicKey, signature: bytes, data: bytes, algorithm: str) -> bool:
    """True when ``signature`` is ``algorithm``'s signature of ``data`` under ``public_key``."""
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(signature, data, _padding_for(algorithm), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


class Signer(abc.ABC):
    """Signs JWS signing inputs; knows its certificate.

    Subclasses implement :meth:`sign` and :attr:`certificate`. Implementations
    must be safe to call from several threads at once.
    """

    supported_algorithms: frozenset[str] = SUPPORTED_ALGORITHMS

    @property
    @abc.abstractmethod
    def certificate(self) -> x509.Certificate | None:
        """The certificate whose public key verifies this signer's signatures, if known."""

    @abc.abstractmethod
    def sign(self, data: bytes, algorithm: Algorithm = "RS256") -> bytes:
        """Sign SHA-256(``data``) with the private key and return the raw signature."""

    @property
    def key_description(self) -> str:
        """A short, non-secret description for logs (``PEM RSA-2048``, ``CNG TPM ...``)."""
        return type(self).__name__

    # Thumbprints are derived from the certificate once and cached: they sit on
    # the hot path of every assertion.
    @property
    def x5t_s256(self) -> str | None:
        cached = getattr(self, "_x5t_s256_cache", None)
        if cached is None and self.certificate is not None:
            cached = compute_cert_thumbprint(self.certificate.public_bytes(serialization.Encoding.DER))
            self._x5t_s256_cache = cached
        return cached

    @property
    def sha1_thumbprint(self) -> str | None:
        cert = self.certificate
        if cert is None:
            return None
        return compute_sha1_thumbprint(cert.public_bytes(serialization.Encoding.DER))

    def public_key(self) -> rsa.RSAPublicKey | None:
        cert = self.certificate
        if cert is None:
            return None
        key = cert.public_key()
        return key if isinstance(key, rsa.RSAPublicKey) else None

    def close(self) -> None:  # noqa: B027 - optional hook; most signers hold no handle
        """Release any handle the signer holds. Idempotent."""

    def __enter__(self) -> Signer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key_description} x5t#S256={self.x5t_s256}>"


@runtime_checkable
class SupportsSigner(Protocol):
    """A key handle (for example the Windows CNG sentinel) that can produce a Signer."""

    def as_signer(self) -> Signer: ...


class PemSigner(Signer):
    """RSA private key held in process memory (macOS/Linux keystore path).

    Parse the PEM once and reuse the signer: parsing validates the key and
    costs ~60x a signature.
    """

    def __init__(self, private_key: rsa.RSAPrivateKey, certificate: bytes | str | x509.Certificate | None = None):
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise UnsupportedKeyError(
                f"A {type(private_key).__name__} cannot sign Entra client assertions here.",
                remedy="Use an RSA key of at least 2048 bits.",
            )
        if private_key.key_size < MIN_RSA_BITS:
            raise UnsupportedKeyError(
                f"The RSA key is {private_key.key_size} bits; Entra requires at least {MIN_RSA_BITS}.",
                remedy="Generate a new RSA-2048 (or larger) key and register its certificate.",
                key_size=private_key.key_size,
            )
        self._key = private_key
        self._cert = load_certificate(certificate) if certificate is not None else None
        if self._cert is not None:
            cert_key = self._cert.public_key()
            matches = (
                isinstance(cert_key, rsa.RSAPublicKey)
                and cert_key.public_numbers() == private_key.public_key().public_numbers()
            )
            if not matches:
                raise KeyMaterialError(
                    f"The certificate {compute_sha1_thumbprint(self._cert.public_bytes(serialization.Encoding.DER))} "
                    "does not belong to the private key given with it.",
                    remedy="Pass the certificate that was issued for this key (check the keystore entry).",
                )

    @classmethod
    def from_pem(
        cls,
        pem: str | bytes,
        *,
        password: str | bytes | None = None,
        certificate: bytes | str | x509.Certificate | None = None,
    ) -> PemSigner:
        """Parse a PKCS#1/PKCS#8 PEM (optionally encrypted) into a signer."""
        raw = pem.encode("ascii", "replace") if isinstance(pem, str) else bytes(pem)
        pwd = password.encode("utf-8") if isinstance(password, str) else password
        if b"-----BEGIN" not in raw:
            raise UnsupportedKeyError(
                f"The private key ({len(raw)} bytes) is not PEM: no '-----BEGIN' line.",
                remedy="Store the key as PEM text (PKCS#8 'BEGIN PRIVATE KEY' or 'BEGIN RSA PRIVATE KEY').",
            )
        try:
            key = serialization.load_pem_private_key(raw, password=pwd)
        except TypeError as exc:
            if pwd is None:
                raise KeyMaterialError(
                    "The PEM private key is encrypted and no password was given.",
                    remedy="Pass password= (or set ENTRACLAW_KEY_PASSWORD) for the encrypted key.",
                ) from exc
            raise KeyMaterialError(
                "A password was given but the PEM private key is not encrypted.",
                remedy="Drop the password argument for this key.",
            ) from exc
        except (ValueError, UnsupportedAlgorithm) as exc:
            if pwd is not None and b"ENCRYPTED" in raw:
                raise KeyMaterialError(
                    "The PEM private key could not be decrypted with the password given.",
                    remedy="Check the key password.",
                ) from exc
            raise UnsupportedKeyError(
                f"The PEM private key ({len(raw)} bytes) could not be parsed; it is garbled or truncated.",
                remedy="Re-export the key from the keystore; do not edit the PEM by hand.",
            ) from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise UnsupportedKeyError(
                f"The PEM holds a {type(key).__name__.lstrip('_')} key; Entra client assertions here need RSA.",
                remedy="Generate an RSA-2048 key (EC keys are not accepted for this flow).",
            )
        return cls(key, certificate)

    @property
    def certificate(self) -> x509.Certificate | None:
        return self._cert

    @property
    def key_description(self) -> str:
        return f"PEM RSA-{self._key.key_size}"

    def sign(self, data: bytes, algorithm: Algorithm = "RS256") -> bytes:
        return self._key.sign(data, _padding_for(algorithm), hashes.SHA256())

    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()
