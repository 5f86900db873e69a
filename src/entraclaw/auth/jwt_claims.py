"""Read a JWT's claims for display, without printing (or verifying) the token.

For traces and ``entraclaw token``: the payload is decoded, never the
signature checked — the resource (Graph) is the one that verifies it. Nothing
here returns or logs the token itself.
"""

from __future__ import annotations

import json
from typing import Any

from entraclaw.auth._b64 import b64url_decode
from entraclaw.errors import EncodingError

__all__ = ["SUMMARY_CLAIMS", "claims_summary", "unverified_claims"]

#: Claims worth showing: who the token is for, who it is, what it allows, when it ends.
SUMMARY_CLAIMS = (
    "aud",
    "iss",
    "idtyp",
    "oid",
    "sub",
    "upn",
    "appid",
    "azp",
    "tid",
    "scp",
    "roles",
    "iat",
    "nbf",
    "exp",
)


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS as a dict.

    :class:`~entraclaw.errors.EncodingError` (a ValueError, with no token text) when it is not one.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise _not_a_jwt(token, f"has {len(parts)} dot-separated parts instead of 3")
    try:
        payload = json.loads(b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _not_a_jwt(token, "has a payload that is not base64url JSON") from None
    if not isinstance(payload, dict):
        raise _not_a_jwt(token, "has a payload that is not a JSON object")
    return payload


def _not_a_jwt(token: str, why: str) -> EncodingError:
    return EncodingError(
        f"The {len(token)}-character token {why}, so its claims cannot be read.",
        remedy="Only JWT access tokens carry readable claims; print the token as issued with `entraclaw token --raw`.",
        length=len(token),
    )


def claims_summary(token: str) -> dict[str, Any]:
    """The :data:`SUMMARY_CLAIMS` present in ``token``, in that order."""
    claims = unverified_claims(token)
    return {name: claims[name] for name in SUMMARY_CLAIMS if name in claims}
