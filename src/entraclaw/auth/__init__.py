"""Auth layer: thumbprints, signers and client assertions (pure Python)."""

from entraclaw.auth._b64 import b64url_decode, b64url_encode
from entraclaw.auth.assertion import MAX_ASSERTION_LIFETIME, build_client_assertion, resolve_signer
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

__all__ = [
    "MAX_ASSERTION_LIFETIME",
    "SUPPORTED_ALGORITHMS",
    "Algorithm",
    "PemSigner",
    "Signer",
    "SupportsSigner",
    "b64url_decode",
    "b64url_encode",
    "build_client_assertion",
    "compute_cert_thumbprint",
    "compute_sha1_thumbprint",
    "load_certificate",
    "resolve_signer",
    "validate_sha1_thumbprint",
    "validate_x5t_s256",
    "verify_signature",
]
