"""The TPM's own statement about the device key: TPM2_Certify by an attestation key (AK).

The AK is a restricted RSASSA-SHA256 signing primary of the endorsement
hierarchy (template in :mod:`entraclaw.tpm2.session`): a restricted key signs
only structures the TPM made itself (they start with TPM_GENERATED_VALUE), so
its signature over a TPMS_ATTEST naming the device key says "this key is in
the TPM that holds this AK" -- the claim the Windows Platform Crypto Provider
makes with NCryptCreateClaim. The three parts are parsed and checked by
:mod:`entraclaw.attestation` exactly like the Windows claim: the attested name
is the key file's public area, that area is the certificate's key, the
signature verifies under the AK, and the nonce is the one sent.

The AK is re-derived from the endorsement seed each time, so its public key
is stable for this TPM; a relying party trusts it only after binding it to
the EK (credential activation against the EK certificate), which needs the
manufacturer's EK chain -- real hardware, not swtpm.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509

from entraclaw.attestation import KeyAttestation, TpmObjectAttributes, parse_certify, verify_key_claim
from entraclaw.errors import AttestationError, EntraclawError
from entraclaw.tpm2.session import TpmCallFailed, ak_template

if TYPE_CHECKING:
    from entraclaw.errors import SigningError
    from entraclaw.tpm2.session import TpmConnection


class Tpm2Signer(Protocol):
    """What attestation needs of a loaded TPM key (tpm2.signer.Tpm2Signer has it): its connection, the
    key's public area and certificate, a way to run a command with the key loaded, the error rule.
    A protocol, so that this module does not import the signer that imports it."""

    @property
    def connection(self) -> TpmConnection: ...
    @property
    def tss(self) -> Any: ...
    @property
    def public_area(self) -> Any: ...
    @property
    def certificate(self) -> x509.Certificate: ...
    def _with_key(self, command: str, fn: Any) -> Any: ...
    def _error(self, failed: TpmCallFailed, *, reloads: int = 0) -> SigningError: ...

__all__ = ["EK_CERT_NV_RSA", "attest_key", "unattested"]

#: NV index of the RSA EK certificate (TCG EK Credential Profile 2.0, 2.2.1.4).
EK_CERT_NV_RSA = 0x01C00002


def unattested(attributes: int, why: str) -> KeyAttestation:
    return KeyAttestation(
        hardware=True,
        attributes=TpmObjectAttributes(attributes),
        problems=(why,),
        claim_problem=why,
    )


def _ek_certificate(signer: Tpm2Signer) -> tuple[x509.Certificate | None, str | None]:
    conn = signer.connection

    def read(esapi: Any) -> bytes:
        index = esapi.tr_from_tpmpublic(EK_CERT_NV_RSA)
        public, _name = esapi.nv_read_public(index)
        size = int(public.nvPublic.dataSize)
        data = b""
        while len(data) < size:
            chunk = min(768, size - len(data))
            data += bytes(esapi.nv_read(index, chunk, len(data), auth_handle=index))
        return data

    try:
        der = conn.call("TPM2_NV_Read", read)
    except TpmCallFailed as failed:
        from entraclaw.tpm2.rc import format_rc

        return None, f"no EK certificate in NV index 0x{EK_CERT_NV_RSA:08X} ({failed.command}: {format_rc(failed.rc)})"
    try:
        return x509.load_der_x509_certificate(_der_prefix(der)), None
    except ValueError:
        return None, f"NV index 0x{EK_CERT_NV_RSA:08X} does not hold a DER X.509 EK certificate"


def _der_prefix(data: bytes) -> bytes:
    """The DER SEQUENCE at the start of ``data``: NV indices may be larger than the certificate they hold."""
    if len(data) < 4 or data[0] != 0x30:
        return data
    if data[1] < 0x80:
        return data[: 2 + data[1]]
    width = data[1] & 0x7F
    return data[: 2 + width + int.from_bytes(data[2 : 2 + width], "big")]


def attest_key(signer: Tpm2Signer, *, ak_public: bytes | None = None) -> KeyAttestation:
    """Certify the key with the AK and check the result; never raises for a bad or missing claim."""
    conn, tss = signer.connection, signer.tss
    attributes = int(signer.public_area.publicArea.objectAttributes)
    nonce = secrets.token_bytes(16)
    problems: list[str] = []
    with conn.lock:
        try:
            ak, created_ak_public = conn.create_primary("ENDORSEMENT", ak_template(tss))
        except TpmCallFailed as failed:
            from entraclaw.tpm2.rc import format_rc

            return unattested(attributes, f"no AK ({failed.command}: {format_rc(failed.rc)})")
        try:
            null_scheme = tss.TPMT_SIG_SCHEME(scheme=tss.TPM2_ALG.NULL)
            try:
                attest, signature = signer._with_key(
                    "TPM2_Certify",
                    lambda esapi, handle: esapi.certify(handle, ak, tss.TPM2B_DATA(nonce), null_scheme),
                )
            except EntraclawError as exc:
                return unattested(attributes, f"TPM2_Certify failed: {exc.message}")
        finally:
            conn.flush(ak)
        ek, ek_problem = _ek_certificate(signer)
    if ek_problem:
        problems.append(ek_problem)

    # The AK as its TPM2B_PUBLIC (issue 14): verify_key_claim checks it is a restricted signing key
    # bound to its TPM and that its Name is the claim's signer, not just that a key verifies.
    trusted = ak_public if ak_public is not None else bytes(created_ak_public.marshal())
    raw_attest = bytes(attest)
    try:
        claim = parse_certify(raw_attest, bytes(signature.marshal()), bytes(signer.public_area.marshal()))
        if claim.attest.extra_data != nonce:
            raise AttestationError("The certification does not carry the nonce sent with it (a replay).",
                                   reason="nonce")
        verify_key_claim(
            claim,
            public_key=signer.certificate.public_key(),
            aik_public=trusted,
            nonce=nonce,
            aik_qualified_name=endorsement_primary_qualified_name(trusted),
        )
    except AttestationError as exc:
        why = f"the claim is invalid ({exc.context.get('reason', 'format')}): {exc.message}"
        return KeyAttestation(hardware=True, claim=raw_attest, problems=(*problems, why), claim_problem=why)
    if ak_public is None:
        problems.append("the AK is this TPM's own, not yet bound to an EK certificate by a relying party")
    return KeyAttestation(
        hardware=True,
        claim=raw_attest,
        parsed=claim,
        attributes=claim.public.attributes,
        signature_verified=True,
        ek_certificate=ek,
        platform_type="TPM 2.0",
        problems=tuple(problems),
    )


def ak_public_area(signer: Tpm2Signer) -> bytes:
    """The AK's TPM2B_PUBLIC, for a relying party to enroll (its attributes and Name are checked, not just the key)."""
    conn = signer.connection
    with conn.lock:
        try:
            ak, public = conn.create_primary("ENDORSEMENT", ak_template(conn.tss))
        except TpmCallFailed as failed:
            raise signer._error(failed) from None
        conn.flush(ak)
    return bytes(public.marshal())


#: TPM_RH_ENDORSEMENT: the qualified name of a hierarchy is its handle (TPM 2.0 Part 1, "Qualified Name").
_TPM_RH_ENDORSEMENT = 0x4000000B


def endorsement_primary_qualified_name(ak_public: bytes) -> bytes:
    """The qualified name a primary key of the endorsement hierarchy signs TPM2_Certify with.

    qualifiedSigner in TPMS_ATTEST is the signer's qualified name: nameAlg || H(QN(parent) || Name), and
    a hierarchy's QN is its handle, so the AK made by ``create_primary("ENDORSEMENT", ...)`` has this one.
    """
    import hashlib

    from entraclaw.attestation import parse_tpm_public

    aik = parse_tpm_public(ak_public)
    alg = aik.name[:2]
    digest = {b"\x00\x0b": hashlib.sha256, b"\x00\x0c": hashlib.sha384, b"\x00\x04": hashlib.sha1}.get(alg)
    if digest is None:
        return aik.name
    return alg + digest(_TPM_RH_ENDORSEMENT.to_bytes(4, "big") + aik.name).digest()

