"""Adapters from entraclaw's signer and credentials to what other libraries expect.

- :func:`client_assertion_callable`: a :class:`Signer` as MSAL's
  ``client_credential={"client_assertion": callable}``, usable by any
  ``ConfidentialClientApplication``; MSAL calls it whenever it needs an
  assertion, and each call signs a fresh one (new ``jti``, current time).
- :class:`AccessToken` / :class:`AccessTokenInfo` (re-exported from
  :mod:`entraclaw.auth.token_cache`) have azure-core's shapes, so entraclaw
  credentials satisfy azure-core's ``TokenCredential`` and
  ``SupportsTokenInfo`` protocols without depending on azure-core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from entraclaw.auth.assertion import MAX_ASSERTION_LIFETIME, _check_endpoint, build_client_assertion, resolve_signer
from entraclaw.auth.signer import SUPPORTED_ALGORITHMS, Algorithm, Signer, SupportsSigner
from entraclaw.auth.thumbprint import validate_x5t_s256
from entraclaw.auth.token_cache import AccessToken, AccessTokenInfo
from entraclaw.errors import ConfigurationError, ThumbprintMismatchError

__all__ = [
    "AccessToken",
    "AccessTokenInfo",
    "ClientAssertionCallable",
    "TokenRequestOptions",
    "client_assertion_callable",
]

# Mirrors azure.core.credentials.TokenRequestOptions (a TypedDict there).
TokenRequestOptions = Mapping[str, Any]

# MSAL asks for an assertion right before each request; five minutes is ample
# for one request and keeps a leaked assertion's value short.
DEFAULT_ASSERTION_LIFETIME = 300


class ClientAssertionCallable:
    """Zero-argument callable returning a fresh signed client assertion.

    The optional ``context`` parameter has a default, so MSAL (>= 1.35, which
    passes a context only to callables that require one) calls it with no
    arguments; when a context is passed its token endpoint must agree.
    """

    __slots__ = ("algorithm", "cert_thumbprint", "client_id", "lifetime", "signer", "token_endpoint")

    def __init__(
        self,
        signer: Signer,
        client_id: str,
        token_endpoint: str,
        *,
        cert_thumbprint: str,
        algorithm: Algorithm = "RS256",
        lifetime: int = DEFAULT_ASSERTION_LIFETIME,
    ) -> None:
        self.signer = signer
        self.client_id = client_id
        self.token_endpoint = token_endpoint
        self.cert_thumbprint = cert_thumbprint
        self.algorithm: Algorithm = algorithm
        self.lifetime = lifetime

    def __call__(self, context: Mapping[str, Any] | None = None) -> str:
        if context is not None:
            endpoint = context.get("token_endpoint")
            if endpoint and endpoint != self.token_endpoint:
                raise ConfigurationError(
                    f"The client assertion for {self.client_id} is for {self.token_endpoint}, "
                    f"but MSAL is calling {endpoint}.",
                    remedy="Build the callable with the same authority as the ConfidentialClientApplication.",
                    client_id=self.client_id,
                )
        return build_client_assertion(
            private_key_pem=self.signer,
            cert_thumbprint=self.cert_thumbprint,
            client_id=self.client_id,
            token_endpoint=self.token_endpoint,
            algorithm=self.algorithm,
            lifetime=self.lifetime,
        )

    def __repr__(self) -> str:
        return (
            f"<ClientAssertionCallable client_id={self.client_id} alg={self.algorithm} "
            f"x5t#S256={self.cert_thumbprint} aud={self.token_endpoint}>"
        )


def client_assertion_callable(
    signer: Signer | SupportsSigner | str | bytes,
    client_id: str,
    token_endpoint: str,
    algorithm: Algorithm = "RS256",
    *,
    cert_thumbprint: str | None = None,
    lifetime: int = DEFAULT_ASSERTION_LIFETIME,
) -> ClientAssertionCallable:
    """MSAL ``client_assertion`` callable signing with ``signer`` for ``client_id`` at ``token_endpoint``.

    ``signer`` may be a :class:`Signer`, a key handle with ``as_signer()`` or
    PEM text (parsed once, here). ``cert_thumbprint`` (x5t#S256) is needed only
    when the signer does not know its certificate.

    Use: ``ConfidentialClientApplication(client_id, authority=...,
    client_credential={"client_assertion": client_assertion_callable(...)})``.
    """
    resolved = resolve_signer(signer)
    thumbprint = cert_thumbprint or resolved.x5t_s256
    if thumbprint is None:
        raise ConfigurationError(
            f"The signer for {client_id} has no certificate, so its x5t#S256 is unknown.",
            remedy="Pass cert_thumbprint= (the x5t#S256 of the certificate registered on the app).",
            client_id=client_id,
        )
    if not 0 < lifetime <= MAX_ASSERTION_LIFETIME:
        raise ConfigurationError(
            f"Assertion lifetime {lifetime}s for {client_id} is outside 1..{MAX_ASSERTION_LIFETIME}.",
            remedy=f"Use at most {MAX_ASSERTION_LIFETIME} seconds.",
            client_id=client_id,
        )
    # Fail now, not inside MSAL's request: a wrong thumbprint, endpoint or
    # algorithm is a setup error. No signature is made here (on a TPM that costs).
    thumbprint = validate_x5t_s256(thumbprint, source=f"x5t#S256 thumbprint for {client_id}")
    _check_endpoint(token_endpoint)
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise ConfigurationError(
            f"Algorithm {algorithm!r} is not supported for the client assertion of {client_id}.",
            remedy="Use 'RS256' (the default) or 'PS256'.",
            client_id=client_id,
        )
    known = resolved.x5t_s256
    if known is not None and known != thumbprint:
        raise ThumbprintMismatchError(
            f"Thumbprint {thumbprint} given for {client_id} is not the signing certificate's ({known}).",
            remedy="Pass the x5t#S256 of the signer's certificate, or the matching key.",
            client_id=client_id,
            thumbprint=thumbprint,
            certificate_thumbprint=known,
        )
    return ClientAssertionCallable(
        resolved, client_id, token_endpoint, cert_thumbprint=thumbprint, algorithm=algorithm, lifetime=lifetime
    )
