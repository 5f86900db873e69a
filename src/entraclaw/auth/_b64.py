"""base64url without padding (RFC 7515 section 2), the encoding JWTs and x5t#S256 use."""

from __future__ import annotations

import base64
import binascii

__all__ = ["b64url_decode", "b64url_encode"]


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    """Decode unpadded base64url; raises ValueError on characters outside the alphabet."""
    raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    if len(raw) % 4 == 1:
        raise ValueError("base64url text has an impossible length")
    # validate=True rejects '+' and '/' once translated, and any stray byte.
    if b"+" in raw or b"/" in raw or b"=" in raw:
        raise ValueError("text is not unpadded base64url")
    try:
        return base64.b64decode(raw.replace(b"-", b"+").replace(b"_", b"/") + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("text is not unpadded base64url") from exc
