"""The TPM key file: the key's TPM-wrapped blobs and its certificate, nothing secret.

``TPM2B_PRIVATE`` is the key's sensitive area encrypted and integrity-protected
by the parent (the storage primary key, derived from this TPM's storage seed);
only this TPM can load it, and a cleared TPM (new seed) cannot either.
``TPM2B_PUBLIC`` is the public area (modulus, attributes). The certificate is
public. The file is JSON (``"format": "entraclaw-tpm2-key"``), never PEM:
there is no private key in it to encode. Written with the platform's one atomic
owner-only writer, so a kill leaves the old file or the new one.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from entraclaw.errors import ConfigurationError
from entraclaw.platform.files import atomic_write

__all__ = ["FORMAT", "PARENT_SRK", "Tpm2KeyFile", "read_key_file", "write_key_file"]

FORMAT = "entraclaw-tpm2-key"
VERSION = 1
#: The parent: the owner hierarchy's primary made from the TCG ECC P-256 storage key template.
PARENT_SRK = "owner/srk-ecc-p256"
_SUFFIX_FIX = "Run `entraclaw rotate --force` with admin credentials to make a new TPM key and register it."


@dataclass(frozen=True)
class Tpm2KeyFile:
    public: bytes  # marshalled TPM2B_PUBLIC
    private: bytes  # marshalled TPM2B_PRIVATE (wrapped by the parent; useless off this TPM)
    certificate_der: bytes
    parent: str = PARENT_SRK

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "parent": self.parent,
            "public": base64.b64encode(self.public).decode("ascii"),
            "private": base64.b64encode(self.private).decode("ascii"),
            "certificate": base64.b64encode(self.certificate_der).decode("ascii"),
        }
        return (json.dumps(doc, indent=1) + "\n").encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Tpm2KeyFile:
        def bad(what: str) -> ConfigurationError:
            return ConfigurationError(
                f"The TPM key file {where} is not an entraclaw TPM key: {what}.",
                remedy=_SUFFIX_FIX,
                path=where,
            )

        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise bad("it is not JSON (garbled or truncated)") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise bad(f"its format is not {FORMAT!r}")
        if doc.get("version") != VERSION:
            raise bad(f"version {doc.get('version')!r} is not {VERSION}")
        if doc.get("parent") != PARENT_SRK:
            raise bad(f"its parent {str(doc.get('parent'))[:40]!r} is not {PARENT_SRK}")
        fields: dict[str, bytes] = {}
        for name in ("public", "private", "certificate"):
            value = doc.get(name)
            try:
                fields[name] = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
            except (binascii.Error, ValueError):
                fields[name] = b""
            if not fields[name]:
                raise bad(f"its {name!r} field is missing or not base64")
        try:
            x509.load_der_x509_certificate(fields["certificate"])
        except ValueError:
            raise bad("its certificate is not DER X.509") from None
        return cls(fields["public"], fields["private"], fields["certificate"], PARENT_SRK)


def write_key_file(path: Path, key_file: Tpm2KeyFile) -> None:
    atomic_write(path, key_file.to_bytes(), private=True)


def read_key_file(path: Path) -> Tpm2KeyFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"The TPM key file {path} cannot be read: {exc.strerror}.",
            remedy=f"Restore the file (it is useless off this TPM, so a backup of this machine's state directory "
            f"works), or {_SUFFIX_FIX[0].lower()}{_SUFFIX_FIX[1:]}",
            path=str(path),
        ) from None
    return Tpm2KeyFile.from_bytes(data, str(path))
