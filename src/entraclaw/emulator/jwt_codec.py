"""Just enough JWS for the emulator: split and decode a compact JWT, verify RS256/PS256, sign RS256.

Kept separate from :mod:`entraclaw.auth` (the client side) so a bug in the
client's encoder cannot be mirrored by the server's decoder: this module parses
strictly on its own (three parts, unpadded base64url, JSON objects).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from entraclaw.auth._b64 import b64url_decode, b64url_encode

__all__ = ["MalformedJwt", "ParsedJwt", "parse", "sign_rs256", "verify"]

VERIFY_ALGORITHMS = frozenset({"RS256", "PS256"})
_MAX_JWT_LENGTH = 16 * 1024


class MalformedJwt(ValueError):
    """The text is not a compact JWS with JSON header and claims. Message names the part, never the token."""


@dataclass(frozen=True)
class ParsedJwt:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; RFC 8259 (and Entra's parser) does not. A NaN
    # ``exp`` or ``nbf`` compares false with everything, so it would slip past every time check.
    raise ValueError(f"{name} is not JSON")


# Header parameters every reader of the header compares or hashes as text: a list or an
# object there (``"alg": ["RS256"]``) is a malformed token, refused here once for every
# caller (client assertions, T1/T2, Graph bearers) instead of crashing each of them.
_TEXT_HEADER_PARAMETERS = ("alg", "typ", "kid", "x5t", "x5t#S256", "cty")


def _json_part(text: str, part: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(text), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJwt(f"the JWT {part} is not base64url JSON") from exc
    except RecursionError:
        # Deeply nested arrays/objects exhaust the parser's stack; no real header or claim set
        # nests more than a few levels.
        raise MalformedJwt(f"the JWT {part} nests too deeply") from None
    if not isinstance(value, dict):
        raise MalformedJwt(f"the JWT {part} is not a JSON object")
    return value


def parse(token: str) -> ParsedJwt:
    if not isinstance(token, str) or not token:
        raise MalformedJwt("the JWT is empty")
    if len(token) > _MAX_JWT_LENGTH:
        raise MalformedJwt("the JWT is too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedJwt(f"the JWT has {len(parts)} parts, not 3")
    header = _json_part(parts[0], "header")
    for name in _TEXT_HEADER_PARAMETERS:
        if name in header and not isinstance(header[name], str):
            raise MalformedJwt(f"the JWT header parameter '{name}' is not a string")
    claims = _json_part(parts[1], "payload")
    try:
        signature = b64url_decode(parts[2])
    except ValueError as exc:
        raise MalformedJwt("the JWT signature is not base64url") from exc
    return ParsedJwt(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def _padding(algorithm: str) -> padding.AsymmetricPadding:
    if algorithm == "RS256":
        return padding.PKCS1v15()
    # PS256 per RFC 7518: MGF1-SHA256, salt length = hash length. Entra's
    # verifier also accepts the maximum salt length some signers use.
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)


def verify(jwt: ParsedJwt, key: rsa.RSAPublicKey, algorithm: str) -> bool:
    if algorithm not in VERIFY_ALGORITHMS:
        return False
    try:
        key.verify(jwt.signature, jwt.signing_input, _padding(algorithm), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def sign_rs256(header: dict[str, Any], claims: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    signing_input = (
        b64url_encode(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url_encode(signature)
