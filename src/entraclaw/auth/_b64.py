"""base64url without padding (RFC 7515 section 2), the encoding JWTs and x5t#S256 use."""

from __future__ import annotations

import base64
import binascii

from entraclaw.errors import EncodingError

__all__ = ["b64url_decode", "b64url_encode"]


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    """Decode unpadded base64url; :class:`~entraclaw.errors.EncodingError` (a ValueError) otherwise."""
    try:
        raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError:
        raise _not_base64url(len(text), "has characters outside ASCII") from None
    if len(raw) % 4 == 1:
        raise _not_base64url(len(raw), "has an impossible length")
    # validate=True rejects '+' and '/' once translated, and any stray byte.
    if b"+" in raw or b"/" in raw or b"=" in raw:
        raise _not_base64url(len(raw), "holds '+', '/' or '=' padding")
    try:
        return base64.b64decode(raw.replace(b"-", b"+").replace(b"_", b"/") + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise _not_base64url(len(raw), "holds characters outside the base64url alphabet") from None


def _not_base64url(length: int, why: str) -> EncodingError:
    # The text itself is left out: it is often a piece of a token or an assertion.
    return EncodingError(
        f"The {length}-character text {why}; it is not unpadded base64url.",
        remedy="Pass the value exactly as issued (base64url without padding, RFC 7515 section 2).",
        length=length,
    )
