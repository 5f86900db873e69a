"""Certificate thumbprints: the x5t#S256 Entra reads and the SHA-1 hex Windows stores index by.

Both shapes are validated before use: a thumbprint captured into ``.env`` by a
script whose diagnostic output leaked into the capture is the classic failure
(the seed's Learning #29), and it must be caught at load time, not at Hop 1.
"""

from __future__ import annotations

import hashlib
import re

from entraclaw.auth._b64 import b64url_encode
from entraclaw.errors import InvalidThumbprintError

__all__ = [
    "compute_cert_thumbprint",
    "compute_sha1_thumbprint",
    "validate_sha1_thumbprint",
    "validate_x5t_s256",
]

_X5T_S256 = re.compile(r"[A-Za-z0-9_-]{43}")
_SHA1_HEX = re.compile(r"[0-9A-F]{40}")
# Copying a thumbprint out of certmgr.msc brings an invisible LEFT-TO-RIGHT MARK
# and spaces between byte pairs; PowerShell output brings a trailing newline.
_STRIP = dict.fromkeys(map(ord, " \t\r\n:\u200e\u200f\ufeff"), None)


def compute_cert_thumbprint(der: bytes) -> str:
    """x5t#S256 of a DER certificate: base64url(SHA-256(DER)), 43 characters."""
    return b64url_encode(hashlib.sha256(der).digest())


def compute_sha1_thumbprint(der: bytes) -> str:
    """SHA-1 thumbprint as Windows shows it: 40 upper-case hex digits."""
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def _preview(value: object) -> str:
    # Whatever was pasted into a thumbprint field might be something secret
    # (a token, a PEM): show only enough of it to recognise the mistake.
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    if len(value) <= 48:
        return repr(value)
    return f"{value[:8]!r}... ({len(value)} characters)"


def validate_x5t_s256(value: object, *, source: str = "thumbprint") -> str:
    """Return ``value`` if it is a well-formed x5t#S256, else raise InvalidThumbprintError."""
    if isinstance(value, str):
        candidate = value.strip()
        if _X5T_S256.fullmatch(candidate):
            return candidate
    raise InvalidThumbprintError(
        f"{source} {_preview(value)} is not an x5t#S256 thumbprint "
        "(43 base64url characters, the SHA-256 of the certificate DER).",
        remedy=(
            "Recompute it from the certificate with `entraclaw thumbprint CERT` and write only "
            "that value; make sure no diagnostic output was captured along with it."
        ),
        kind="x5t#S256",
        value_preview=_preview(value),
    )


def validate_sha1_thumbprint(value: object, *, source: str = "thumbprint") -> str:
    """Normalise and validate a SHA-1 thumbprint (spaces, colons, case, invisible marks)."""
    if isinstance(value, str):
        candidate = value.translate(_STRIP).upper()
        if _SHA1_HEX.fullmatch(candidate):
            return candidate
    raise InvalidThumbprintError(
        f"{source} {_preview(value)} is not a SHA-1 certificate thumbprint (40 hex digits).",
        remedy=(
            "Copy the Thumbprint column of `Get-ChildItem Cert:\\CurrentUser\\My` "
            "(or `certutil -user -store My`) for the entraclaw certificate."
        ),
        kind="SHA-1",
        value_preview=_preview(value),
    )
