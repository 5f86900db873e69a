"""Client assertions (RFC 7523 JWT bearer) for certificate credentials.

``build_client_assertion`` keeps the seed project's caller interface: the
``private_key_pem`` argument may be PEM text, a :class:`Signer`, or a key
handle (anything with ``as_signer()``, such as the Windows CNG sentinel), and
the caller does not change when the key moves into the TPM.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from entraclaw.auth._b64 import b64url_encode
from entraclaw.auth.signer import SUPPORTED_ALGORITHMS, Algorithm, PemSigner, Signer, SupportsSigner
from entraclaw.auth.thumbprint import validate_x5t_s256
from entraclaw.errors import ClientAssertionError, ConfigurationError, ThumbprintMismatchError

__all__ = ["MAX_ASSERTION_LIFETIME", "build_client_assertion", "resolve_signer"]

#: Entra accepts client assertions valid for at most 10 minutes.
MAX_ASSERTION_LIFETIME = 600
_RESERVED_CLAIMS = frozenset({"aud", "iss", "sub", "jti", "iat", "nbf", "exp"})
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# Parsed PEM keys, keyed by a digest of (PEM, password). Parsing validates the
# key (~40 ms); a caller that passes the same PEM on every call, as the seed's
# callers do, must not pay that per assertion.
_PEM_CACHE: OrderedDict[bytes, PemSigner] = OrderedDict()
_PEM_CACHE_SIZE = 8
_PEM_CACHE_LOCK = threading.Lock()


def _pem_signer(pem: str | bytes, password: str | bytes | None) -> PemSigner:
    raw = pem.encode("utf-8") if isinstance(pem, str) else bytes(pem)
    pwd = password.encode("utf-8") if isinstance(password, str) else (password or b"")
    cache_key = hashlib.sha256(len(raw).to_bytes(8, "big") + raw + pwd).digest()
    with _PEM_CACHE_LOCK:
        signer = _PEM_CACHE.get(cache_key)
        if signer is not None:
            _PEM_CACHE.move_to_end(cache_key)
            return signer
    signer = PemSigner.from_pem(raw, password=password)
    with _PEM_CACHE_LOCK:
        _PEM_CACHE[cache_key] = signer
        while len(_PEM_CACHE) > _PEM_CACHE_SIZE:
            _PEM_CACHE.popitem(last=False)
    return signer


def resolve_signer(key: str | bytes | Signer | SupportsSigner, *, password: str | bytes | None = None) -> Signer:
    """Turn what callers pass as ``private_key_pem`` into a :class:`Signer`."""
    if isinstance(key, Signer):
        return key
    if isinstance(key, (str, bytes, bytearray)):
        return _pem_signer(bytes(key) if isinstance(key, bytearray) else key, password)
    if isinstance(key, SupportsSigner):
        signer = key.as_signer()
        if not isinstance(signer, Signer):
            raise ConfigurationError(
                f"{type(key).__name__}.as_signer() returned {type(signer).__name__}, not a Signer.",
                remedy="Return an entraclaw.auth.Signer from as_signer().",
            )
        return signer
    raise ConfigurationError(
        f"private_key_pem of type {type(key).__name__} is neither PEM text, a Signer nor a key handle.",
        remedy="Pass the PEM string from the keystore, a Signer, or the CNG key handle.",
    )


def _check_endpoint(token_endpoint: str) -> None:
    parts = urlsplit(token_endpoint)
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS)
    if not secure or not parts.hostname:
        raise ConfigurationError(
            f"Token endpoint {token_endpoint!r} is not an https URL.",
            remedy="Use https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token (or the emulator's URL).",
            token_endpoint=token_endpoint,
        )


def build_client_assertion(
    *,
    private_key_pem: str | bytes | Signer | SupportsSigner,
    cert_thumbprint: str,
    client_id: str,
    token_endpoint: str,
    algorithm: Algorithm = "RS256",
    lifetime: int = MAX_ASSERTION_LIFETIME,
    password: str | bytes | None = None,
    extra_claims: Mapping[str, Any] | None = None,
    include_x5t: bool = False,
    now: float | None = None,
) -> str:
    """Build and sign a client assertion JWT for ``client_id`` at ``token_endpoint``.

    Header: ``alg``, ``typ=JWT``, ``x5t#S256`` (plus the legacy SHA-1 ``x5t``
    when ``include_x5t``). Claims: ``aud`` = token endpoint, ``iss`` = ``sub`` =
    client id, a fresh ``jti``, ``iat`` = ``nbf`` = now, ``exp`` = now +
    ``lifetime`` (at most 600 s). When the signer knows its certificate the
    thumbprint is checked against it before anything is signed.
    """
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise ClientAssertionError(
            f"Algorithm {algorithm!r} is not supported for the client assertion of {client_id}.",
            remedy="Use 'RS256' (the default) or 'PS256'.",
            client_id=client_id,
        )
    if not isinstance(client_id, str) or not client_id.strip():
        raise ConfigurationError(
            "The client id for the client assertion is empty.",
            remedy="Set ENTRACLAW_BLUEPRINT_APP_ID to the Blueprint's application (client) id.",
        )
    if not isinstance(lifetime, int) or not 0 < lifetime <= MAX_ASSERTION_LIFETIME:
        raise ClientAssertionError(
            f"Assertion lifetime {lifetime!r}s for {client_id} is outside 1..{MAX_ASSERTION_LIFETIME} seconds.",
            remedy=f"Pass a lifetime of at most {MAX_ASSERTION_LIFETIME} seconds; Entra rejects longer ones.",
            client_id=client_id,
        )
    _check_endpoint(token_endpoint)
    thumbprint = validate_x5t_s256(cert_thumbprint, source=f"x5t#S256 thumbprint for {client_id}")
    signer = resolve_signer(private_key_pem, password=password)
    known = signer.x5t_s256
    if known is not None and known != thumbprint:
        raise ThumbprintMismatchError(
            f"Thumbprint {thumbprint} given for {client_id} is not the signing certificate's ({known}).",
            remedy="Update ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT to the certificate's x5t#S256, or use the matching key.",
            client_id=client_id,
            thumbprint=thumbprint,
            certificate_thumbprint=known,
        )

    header: dict[str, str] = {"alg": algorithm, "typ": "JWT", "x5t#S256": thumbprint}
    if include_x5t:
        cert = signer.certificate
        if cert is None:
            raise ClientAssertionError(
                f"include_x5t needs the certificate, but the signer for {client_id} has none.",
                remedy="Give the signer its certificate, or drop include_x5t (x5t#S256 suffices).",
                client_id=client_id,
            )
        from cryptography.hazmat.primitives import serialization

        header["x5t"] = b64url_encode(
            hashlib.sha1(cert.public_bytes(serialization.Encoding.DER), usedforsecurity=False).digest()
        )

    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {}
    if extra_claims:
        clash = _RESERVED_CLAIMS.intersection(extra_claims)
        if clash:
            raise ClientAssertionError(
                f"extra_claims for {client_id} may not set {sorted(clash)}.",
                remedy="Remove the registered claims from extra_claims; they are set by entraclaw.",
                client_id=client_id,
            )
        claims.update(extra_claims)
    claims.update(
        aud=token_endpoint,
        iss=client_id,
        sub=client_id,
        jti=str(uuid.uuid4()),
        iat=issued,
        nbf=issued,
        exp=issued + lifetime,
    )
    signing_input = (
        b64url_encode(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = signer.sign(signing_input.encode("ascii"), algorithm)
    return signing_input + "." + b64url_encode(signature)
