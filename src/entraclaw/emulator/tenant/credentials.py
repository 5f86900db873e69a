"""``keyCredentials``: a registered certificate, parsed once (public key, thumbprints), and its Graph form."""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from entraclaw.auth._b64 import b64url_encode
from entraclaw.errors import EmulatorError

__all__ = ["KeyCredential"]


def _new_id() -> str:
    return str(uuid.uuid4())


def _iso(moment: _dt.datetime) -> str:
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> _dt.datetime:
    moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=_dt.timezone.utc)


@dataclass(frozen=True)
class KeyCredential:
    """One ``keyCredentials`` entry of type AsymmetricX509Cert, usage Verify, with its parsed key."""

    key_id: str
    certificate: x509.Certificate
    display_name: str
    start: _dt.datetime
    end: _dt.datetime
    custom_key_identifier: str
    der: bytes = field(repr=False)
    public_key: rsa.RSAPublicKey = field(repr=False)
    x5t_s256: str = ""
    x5t: str = ""

    @classmethod
    def from_certificate(
        cls,
        cert: x509.Certificate,
        *,
        key_id: str | None = None,
        display_name: str | None = None,
        start: _dt.datetime | None = None,
        end: _dt.datetime | None = None,
        custom_key_identifier: str | None = None,
    ) -> KeyCredential:
        public_key = cert.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError(f"certificate {cert.subject.rfc4514_string()} does not hold an RSA key")
        der = cert.public_bytes(serialization.Encoding.DER)
        sha1 = hashlib.sha1(der, usedforsecurity=False).digest()
        return cls(
            key_id=key_id or _new_id(),
            certificate=cert,
            display_name=display_name if display_name is not None else cert.subject.rfc4514_string(),
            start=start or cert.not_valid_before_utc,
            end=end or cert.not_valid_after_utc,
            # Graph stores the certificate's SHA-1 thumbprint here, base64-encoded.
            custom_key_identifier=custom_key_identifier or base64.b64encode(sha1).decode("ascii"),
            der=der,
            public_key=public_key,
            x5t_s256=b64url_encode(hashlib.sha256(der).digest()),
            x5t=b64url_encode(sha1),
        )

    @classmethod
    def from_graph(cls, item: Any) -> KeyCredential:
        """Parse one Graph ``keyCredential`` object; ValueError names the bad property."""
        if not isinstance(item, dict):
            raise ValueError("each keyCredentials item must be an object")
        if item.get("type") != "AsymmetricX509Cert":
            raise ValueError(f"keyCredential type {item.get('type')!r} is not supported; use 'AsymmetricX509Cert'")
        if item.get("usage") != "Verify":
            raise ValueError(f"keyCredential usage {item.get('usage')!r} is not supported; use 'Verify'")
        raw = item.get("key")
        if not isinstance(raw, str) or not raw:
            raise ValueError("keyCredential 'key' (base64 DER certificate) is required")
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode(raw, validate=True))
        except ValueError as exc:
            raise ValueError("keyCredential 'key' is not a base64 DER certificate") from exc
        key_id = item.get("keyId")
        if key_id is not None:
            try:
                key_id = str(uuid.UUID(str(key_id)))
            except ValueError as exc:
                raise ValueError(f"keyCredential keyId {key_id!r} is not a GUID") from exc
        try:
            start = _parse_iso(item["startDateTime"]) if item.get("startDateTime") else None
            end = _parse_iso(item["endDateTime"]) if item.get("endDateTime") else None
        except (TypeError, ValueError) as exc:
            raise ValueError("keyCredential startDateTime/endDateTime must be ISO 8601") from exc
        return cls.from_certificate(
            cert,
            key_id=key_id,
            display_name=item.get("displayName"),
            start=start,
            end=end,
            custom_key_identifier=item.get("customKeyIdentifier"),
        )

    def to_graph(self, *, include_key: bool) -> dict[str, Any]:
        return {
            "customKeyIdentifier": self.custom_key_identifier,
            "displayName": self.display_name,
            "endDateTime": _iso(self.end),
            "key": base64.b64encode(self.der).decode("ascii") if include_key else None,
            "keyId": self.key_id,
            "startDateTime": _iso(self.start),
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
        }

    def valid_at(self, now: float) -> bool:
        moment = _dt.datetime.fromtimestamp(now, _dt.timezone.utc)
        begins = max(self.start, self.certificate.not_valid_before_utc)
        ends = min(self.end, self.certificate.not_valid_after_utc)
        return begins <= moment <= ends


def _certs(certificates: Iterable[x509.Certificate | KeyCredential]) -> tuple[KeyCredential, ...]:
    out = []
    for item in certificates:
        if isinstance(item, KeyCredential):
            out.append(item)
            continue
        try:
            out.append(KeyCredential.from_certificate(item))
        except ValueError as exc:
            # from_certificate's ValueError is for the Graph handlers (a 400); callers of the
            # Python API get the typed error.
            raise EmulatorError(
                f"Cannot register {exc}.",
                remedy="Register a certificate for an RSA key (Entra key credentials here are RSA; "
                "entraclaw.auth.certgen.generate_rsa_key makes one).",
                subject=item.subject.rfc4514_string(),
            ) from None
    return tuple(out)
