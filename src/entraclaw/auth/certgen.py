"""Software key and self-signed certificate generation (PEM path, demo, tests).

On Windows provisioning prefers a TPM key made by the native module; this is
the path for macOS/Linux and for the emulator's tenant.
"""

from __future__ import annotations

import datetime as _dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = ["certificate_builder", "generate_rsa_key", "private_key_to_pem", "self_signed_certificate"]


def generate_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_to_pem(key: rsa.RSAPrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def self_signed_certificate(
    key: rsa.RSAPrivateKey,
    common_name: str,
    *,
    days: int = 365,
    not_before: _dt.datetime | None = None,
) -> x509.Certificate:
    """A self-signed certificate for ``key`` with subject ``CN=common_name``, as Entra key credentials use."""
    return certificate_builder(key.public_key(), common_name, days=days, not_before=not_before).sign(
        key, hashes.SHA256()
    )


def certificate_builder(
    public_key: rsa.RSAPublicKey,
    common_name: str,
    *,
    days: int = 365,
    not_before: _dt.datetime | None = None,
) -> x509.CertificateBuilder:
    """The unsigned certificate :func:`self_signed_certificate` makes (a TPM key signs it elsewhere)."""
    start = not_before or (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=5))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
