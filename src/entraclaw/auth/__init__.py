"""Auth layer: thumbprints, signers and client assertions (pure Python)."""

from typing import TYPE_CHECKING, Any

from entraclaw.auth._b64 import b64url_decode, b64url_encode
from entraclaw.auth.adapters import ClientAssertionCallable, client_assertion_callable
from entraclaw.auth.assertion import MAX_ASSERTION_LIFETIME, build_client_assertion, resolve_signer
from entraclaw.auth.retry import TokenRetryPolicy
from entraclaw.auth.signer import (
    SUPPORTED_ALGORITHMS,
    Algorithm,
    PemSigner,
    Signer,
    SupportsSigner,
    load_certificate,
    verify_signature,
)
from entraclaw.auth.thumbprint import (
    compute_cert_thumbprint,
    compute_sha1_thumbprint,
    validate_sha1_thumbprint,
    validate_x5t_s256,
)
from entraclaw.auth.token_cache import AccessToken, AccessTokenInfo

__all__ = [
    "MAX_ASSERTION_LIFETIME",
    "SUPPORTED_ALGORITHMS",
    "AccessToken",
    "AccessTokenInfo",
    "AgentIdentityCredential",
    "AgentUserCredential",
    "Algorithm",
    "ChainTokens",
    "ClientAssertionCallable",
    "PemSigner",
    "PersistedTokenStore",
    "Signer",
    "SupportsSigner",
    "TokenRetryPolicy",
    "b64url_decode",
    "b64url_encode",
    "build_client_assertion",
    "client_assertion_callable",
    "compute_cert_thumbprint",
    "compute_sha1_thumbprint",
    "load_certificate",
    "resolve_signer",
    "validate_sha1_thumbprint",
    "validate_x5t_s256",
    "verify_signature",
]

# The credentials pull in MSAL and requests; they load on first use so that
# importing the signer (the CNG module, `entraclaw thumbprint`) stays light.
_LAZY = {
    "AgentIdentityCredential": "entraclaw.auth.credential",
    "AgentUserCredential": "entraclaw.auth.credential",
    "ChainTokens": "entraclaw.auth.credential",
    "PersistedTokenStore": "entraclaw.auth.persisted_cache",
}

if TYPE_CHECKING:
    from entraclaw.auth.credential import AgentIdentityCredential, AgentUserCredential, ChainTokens
    from entraclaw.auth.persisted_cache import PersistedTokenStore


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'entraclaw.auth' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
