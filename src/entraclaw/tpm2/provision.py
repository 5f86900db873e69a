"""Make a device key in the TPM and its self-signed certificate; probe whether a TPM is usable.

The certificate is built with :func:`entraclaw.auth.certgen.certificate_builder`
(the same fields as a software key's) around the TPM key's public key, signed
by a throwaway RSA-2048 key to get the DER, and that signature is replaced by
the TPM's RSASSA-SHA256 signature of the same TBSCertificate: both are 256
bytes, the last 256 of the DER. The result is verified before it is used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from entraclaw.auth.certgen import certificate_builder, generate_rsa_key
from entraclaw.errors import EntraclawError, KeyMaterialError
from entraclaw.tpm2.device import TctiSource, tcti_config
from entraclaw.tpm2.keyfile import Tpm2KeyFile, write_key_file
from entraclaw.tpm2.rc import error_for_rc
from entraclaw.tpm2.session import TpmCallFailed, TpmConnection, key_template, srk_template
from entraclaw.tpm2.signer import Tpm2Signer, public_key_of

__all__ = ["create_key", "make_key", "probe"]


def _self_signed(conn: TpmConnection, handle: Any, public: Any, common_name: str, days: int) -> x509.Certificate:
    tss = conn.tss
    key = public_key_of(tss, public)
    draft = certificate_builder(key, common_name, days=days).sign(generate_rsa_key(), hashes.SHA256())
    der = draft.public_bytes(serialization.Encoding.DER)
    scheme = tss.TPMT_SIG_SCHEME(scheme=tss.TPM2_ALG.RSASSA)
    scheme.details.any.hashAlg = tss.TPM2_ALG.SHA256
    validation = tss.TPMT_TK_HASHCHECK(tag=tss.TPM2_ST.HASHCHECK, hierarchy=tss.TPM2_RH.NULL)
    digest = tss.TPM2B_DIGEST(hashlib.sha256(draft.tbs_certificate_bytes).digest())
    signed = conn.call("TPM2_Sign", lambda esapi: esapi.sign(handle, digest, scheme, validation))
    signature = bytes(signed.signature.rsassa.sig)
    if len(signature) != 256 or der[-256:] != draft.signature:
        raise KeyMaterialError(
            f"The certificate for CN={common_name} could not be assembled around the TPM's signature.",
            remedy="Retry `entraclaw setup --key-storage tpm`; report it if it persists.",
        )
    cert = x509.load_der_x509_certificate(der[:-256] + signature)
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise KeyMaterialError(
            f"The TPM's signature of the certificate for CN={common_name} does not verify under its own key.",
            remedy="Check the TPM with `entraclaw doctor`, or use `entraclaw setup --key-storage file`.",
        ) from None
    return cert


def create_key(
    path: Path,
    common_name: str,
    *,
    days: int = 365,
    tcti: TctiSource | None = None,
) -> Tpm2Signer:
    """Create a sign-only RSA-2048 key in the TPM, its certificate, and the key file at ``path``."""
    source = tcti if tcti is not None else tcti_config()
    write_key_file(path, make_key(common_name, days=days, tcti=source))
    return Tpm2Signer(path, tcti=source)


def make_key(common_name: str, *, days: int = 365, tcti: TctiSource | None = None) -> Tpm2KeyFile:
    """The key file's content for a new key (nothing is written; the TPM keeps nothing either)."""
    source = tcti if tcti is not None else tcti_config()
    conn = TpmConnection(source)
    tss = conn.tss
    try:
        parent, _srk = conn.create_primary("OWNER", srk_template(tss))
        try:
            private, public = conn.call(
                "TPM2_Create",
                lambda esapi: esapi.create(parent, tss.TPM2B_SENSITIVE_CREATE(), key_template(tss))[:2],
            )
            handle = conn.call("TPM2_Load", lambda esapi: esapi.load(parent, private, public))
        finally:
            conn.flush(parent)
        try:
            cert = _self_signed(conn, handle, public, common_name, days)
        finally:
            conn.flush(handle)
    except TpmCallFailed as failed:
        raise error_for_rc(
            failed.rc, failed.command, subject=f"a new TPM key for CN={common_name} (TPM {conn.description})",
            attempts=failed.attempts, tcti=conn.description,
        ) from None
    finally:
        conn.close()
    return Tpm2KeyFile(
        public=bytes(public.marshal()),
        private=bytes(private.marshal()),
        certificate_der=cert.public_bytes(serialization.Encoding.DER),
    )


def probe(tcti: TctiSource | None = None) -> str | None:
    """None when a TPM answers at ``tcti`` (and tpm2-pytss is installed); else why not, in one sentence."""
    source = tcti if tcti is not None else tcti_config()
    try:
        conn = TpmConnection(source)
        try:
            conn.call(
                "TPM2_GetCapability",
                lambda esapi: esapi.get_capability(conn.tss.TPM2_CAP.TPM_PROPERTIES, conn.tss.TPM2_PT.MANUFACTURER, 1),
            )
        except TpmCallFailed as failed:
            raise error_for_rc(failed.rc, failed.command, subject=f"the TPM at {conn.description}") from None
        finally:
            conn.close()
    except EntraclawError as exc:
        return exc.message
    return None
