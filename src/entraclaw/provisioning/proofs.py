"""Proof-of-possession JWTs for Graph's ``addKey`` / ``removeKey``.

Per "Generate proof of possession tokens for rolling keys"
(learn.microsoft.com/graph/application-rollkey-prooftoken) and the addKey page:
a self-signed JWT, signed with the private key of one of the application's
existing valid certificates, with

- ``aud``: ``00000002-0000-0000-c000-000000000000``, as the ``application: addKey`` and
  ``agentIdentityBlueprint: addKey`` pages (learn.microsoft.com/graph/api/application-addkey,
  .../agentidentityblueprint-addkey) and the rollkey page name it. Graph's own app id
  ``00000003-…`` is refused with 401 ``Authentication_MissingOrMalformed``
  (github.com/microsoftgraph/microsoft-graph-docs/issues/22076);
- ``iss``: the **object id** of the application making the call (not its app id);
- ``nbf``, ``exp`` with ``exp`` at most ``nbf`` + 10 minutes.

The header is what .NET's ``X509SigningCredentials`` (the doc's sample)
writes: ``alg`` RS256, ``kid`` = the certificate's SHA-1 thumbprint in hex,
``x5t`` = base64url of that SHA-1, ``typ`` JWT. Base64url without ``=``
padding (the doc: padding gives ``Authentication_MissingOrMalformed``).
The signer may be a PEM key or a CNG/TPM key: only ``Signer.sign`` is used.
"""

from __future__ import annotations

import json
import time
import uuid

from cryptography.hazmat.primitives import serialization

from entraclaw.auth._b64 import b64url_encode
from entraclaw.auth.signer import Signer
from entraclaw.auth.thumbprint import compute_sha1_thumbprint
from entraclaw.errors import ClientAssertionError

__all__ = ["MAX_PROOF_LIFETIME", "PROOF_AUDIENCE", "build_proof"]

PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"
MAX_PROOF_LIFETIME = 600


def build_proof(
    signer: Signer,
    application_object_id: str,
    *,
    now: float | None = None,
    lifetime: int = MAX_PROOF_LIFETIME,
    audience: str = PROOF_AUDIENCE,
) -> str:
    """A proof JWT for ``application_object_id`` signed (RS256) by ``signer``'s registered key."""
    if not 0 < lifetime <= MAX_PROOF_LIFETIME:
        raise ClientAssertionError(
            f"Proof lifetime {lifetime} s for application {application_object_id} is outside 1..600 s.",
            remedy="Graph accepts proofs that live at most 10 minutes; use the default.",
        )
    certificate = signer.certificate
    if certificate is None:
        raise ClientAssertionError(
            f"The key signing a proof for application {application_object_id} has no certificate, so Graph "
            "cannot tell which registered key it is.",
            remedy="Open the key together with its certificate (the keystore entry holds both).",
        )
    sha1 = compute_sha1_thumbprint(certificate.public_bytes(serialization.Encoding.DER))
    header = {"alg": "RS256", "kid": sha1, "typ": "JWT", "x5t": b64url_encode(bytes.fromhex(sha1))}
    issued = int(time.time() if now is None else now)
    claims = {
        "aud": audience,  # only the conformance run passes another, to record the refusal
        "iss": application_object_id,
        "nbf": issued,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
    }
    signing_input = (
        b64url_encode(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = signer.sign(signing_input.encode("ascii"), "RS256")
    return f"{signing_input}.{b64url_encode(signature)}"
