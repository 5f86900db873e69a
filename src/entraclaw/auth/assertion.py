"""Client assertions (RFC 7523 JWT bearer) for certificate credentials.

``build_client_assertion`` keeps the seed project's caller interface: the
``private_key_pem`` argument may be PEM text, a :class:`Signer`, or a key
handle (anything with ``as_signer()``, such as the Windows CNG sentinel), and
the caller does not change when the key moves into the TPM.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as _json_str
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

# Parsed PEM keys, keyed by (PEM, password) as given. Parsing validates the key
# (~40 ms); a caller that passes the same PEM on every call, as the seed's
# callers do, must not pay that per assertion. Keying on the objects themselves
# (str/bytes cache their hash) keeps a hit at a dict lookup; the cache holds
# nothing the parsed key objects it maps to do not already hold.
_PEM_CACHE: OrderedDict[tuple[str, str | bytes | None], PemSigner] = OrderedDict()
_PEM_CACHE_SIZE = 8
_PEM_CACHE_LOCK = threading.Lock()


def _pem_signer(pem: str | bytes, password: str | bytes | None) -> PemSigner:
    # PEM text is ASCII; one key form means str and bytes callers share an entry.
    cache_key = (pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem, password)
    with _PEM_CACHE_LOCK:
        signer = _PEM_CACHE.get(cache_key)
        if signer is not None:
            _PEM_CACHE.move_to_end(cache_key)
            return signer
    signer = PemSigner.from_pem(pem, password=password)
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


@functools.lru_cache(maxsize=64)
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
    if not isinstance(token_endpoint, str):
        raise ConfigurationError(
            f"Token endpoint of type {type(token_endpoint).__name__} for {client_id} is not a URL string.",
            remedy="Pass the token endpoint URL as a string.",
        )
    _check_endpoint(token_endpoint)
    thumbprint = validate_x5t_s256(cert_thumbprint, source=f"x5t#S256 thumbprint for {client_id}")
    signer = resolve_signer(private_key_pem, password=password)
    known = signer.x5t_s256
    if known is not None and known != thumbprint:
        raise ThumbprintMismatchError(
            f"Thumbprint {thumbprint} given for {client_id} is not the signing certificate's ({known}).",
            remedy="Update ENTRACLAW_BLUEPRINT_CERT_X5T_S256 to the certificate's x5t#S256, or use the matching key.",
            client_id=client_id,
            thumbprint=thumbprint,
            certificate_thumbprint=known,
        )

    x5t = None
    if include_x5t:
        cert = signer.certificate
        if cert is None:
            raise ClientAssertionError(
                f"include_x5t needs the certificate, but the signer for {client_id} has none.",
                remedy="Give the signer its certificate, or drop include_x5t (x5t#S256 suffices).",
                client_id=client_id,
            )
        from cryptography.hazmat.primitives import serialization

        x5t = b64url_encode(hashlib.sha1(cert.public_bytes(serialization.Encoding.DER), usedforsecurity=False).digest())

    issued = int(time.time() if now is None else now)
    if extra_claims:
        clash = _RESERVED_CLAIMS.intersection(extra_claims)
        if clash:
            raise ClientAssertionError(
                f"extra_claims for {client_id} may not set {sorted(clash)}.",
                remedy="Remove the registered claims from extra_claims; they are set by entraclaw.",
                client_id=client_id,
            )
        claims: dict[str, Any] = dict(extra_claims)
        claims.update(
            aud=token_endpoint,
            iss=client_id,
            sub=client_id,
            jti=str(uuid.uuid4()),
            iat=issued,
            nbf=issued,
            exp=issued + lifetime,
        )
        payload = json.dumps(claims, separators=(",", ":"))
    else:
        # The common case, written out: json.dumps costs more than the rest of the
        # assertion around the signature, and the shape is fixed.
        payload = (
            f'{{"aud":{_json_str(token_endpoint)},"iss":{_json_str(client_id)},"sub":{_json_str(client_id)},'
            f'"jti":"{uuid.uuid4()}","iat":{issued},"nbf":{issued},"exp":{issued + lifetime}}}'
        )
    signing_input = _encoded_header(algorithm, thumbprint, x5t) + "." + b64url_encode(payload.encode())
    signature = signer.sign(signing_input.encode("ascii"), algorithm)
    return signing_input + "." + b64url_encode(signature)


@functools.lru_cache(maxsize=64)
def _encoded_header(algorithm: str, thumbprint: str, x5t: str | None) -> str:
    header: dict[str, str] = {"alg": algorithm, "typ": "JWT", "x5t#S256": thumbprint}
    if x5t is not None:
        header["x5t"] = x5t
    return b64url_encode(json.dumps(header, separators=(",", ":")).encode())
