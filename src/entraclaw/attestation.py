"""TPM key attestation: parse and check the claim the Platform Crypto Provider makes for a key.

``NCryptCreateClaim(key, aik, NCRYPT_CLAIM_AUTHORITY_AND_SUBJECT)`` has the TPM
certify the key (TPM2_Certify) with an attestation identity key (AIK). The
claim carries three parts:

* ``TPMS_ATTEST`` -- what the TPM signed: the magic ``TPM_GENERATED_VALUE``
  (only the TPM itself signs data starting with it), the type
  ``TPM_ST_ATTEST_CERTIFY``, the caller's nonce (``extraData``), clock and
  firmware facts, and the *name* of the certified key (its name algorithm plus
  the hash of its public area);
* the AIK's signature over those bytes (``TPMT_SIGNATURE``);
* the key blob holding the key's ``TPM2B_PUBLIC``: its RSA modulus and its
  ``TPMA_OBJECT`` attributes (fixedTPM, fixedParent, sensitiveDataOrigin, sign,
  decrypt, restricted, ...).

Structures: TCG TPM 2.0 Library, Part 2 -- TPM_GENERATED 6.2, TPM_ST 6.9,
TPMA_OBJECT 8.3, TPMS_CERTIFY_INFO 10.12.3, TPMS_ATTEST 10.12.12, TPMT_PUBLIC
12.2.4, names 16 (Part 1). NCryptCreateClaim is documented at
https://learn.microsoft.com/en-us/windows/win32/api/ncrypt/nf-ncrypt-ncryptcreateclaim
but its blob layout is not. The outer header ('KADS', platform, header size,
three lengths) is the key attestation statement of [MS-WCCE] 2.2.2.5; the key
blob ('PCPM', PCP_KEY_BLOB_WIN8) and the signature format (the AIK's raw
RSASSA-PKCS1-v1_5 signature) follow Microsoft's PCP sample code. A
TPMT_SIGNATURE is accepted too. The parser is strict so that a real TPM run
shows at once if the layout differs (see docs/attestation.md).

A claim proves something only when its signature verifies under an AIK the
relying party trusts, given as the AIK's TPM2B_PUBLIC: restricted, sign,
fixedTPM and fixedParent (only a restricted key is barred by the TPM from
signing outside data that starts with TPM_GENERATED_VALUE), its Name equal to
the claim's qualifiedSigner, and its binding to the TPM's endorsement key
established by the relying party (see docs/attestation.md). A nonce in
extraData makes the claim fresh.

This module parses and checks; it never calls the signer (entraclaw.cng), and
the signer never parses: ``assess`` takes what ``CngSigner.info`` read.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from entraclaw.errors import AttestationError

__all__ = [
    "TPMA_DECRYPT",
    "TPMA_FIXED_PARENT",
    "TPMA_FIXED_TPM",
    "TPMA_RESTRICTED",
    "TPMA_SENSITIVE_DATA_ORIGIN",
    "TPMA_SIGN",
    "TPM_GENERATED_VALUE",
    "TPM_ST_ATTEST_CERTIFY",
    "KeyAttestation",
    "KeyClaim",
    "TpmObjectAttributes",
    "TpmPublic",
    "TpmsAttest",
    "assess",
    "attestation_summary",
    "parse_key_claim",
    "parse_tpm_public",
    "verify_key_claim",
]

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_CERTIFY = 0x8017
CLAIM_MAGIC = 0x5344414B  # 'KADS' little-endian: PCP key attestation blob
KEY_BLOB_MAGIC = 0x4D504350  # 'PCPM' little-endian: PCP key blob
CLAIM_HEADER_SIZE = 24

# TPMA_OBJECT bits (Part 2, 8.3.2).
TPMA_FIXED_TPM = 1 << 1
TPMA_ST_CLEAR = 1 << 2
TPMA_FIXED_PARENT = 1 << 4
TPMA_SENSITIVE_DATA_ORIGIN = 1 << 5
TPMA_USER_WITH_AUTH = 1 << 6
TPMA_ADMIN_WITH_POLICY = 1 << 7
TPMA_NO_DA = 1 << 10
TPMA_ENCRYPTED_DUPLICATION = 1 << 11
TPMA_RESTRICTED = 1 << 16
TPMA_DECRYPT = 1 << 17
TPMA_SIGN = 1 << 18

ALG_RSA = 0x0001
ALG_NULL = 0x0010
ALG_RSASSA = 0x0014
ALG_RSAES = 0x0015
ALG_RSAPSS = 0x0016
_HASHES: dict[int, tuple[str, type[hashes.HashAlgorithm]]] = {
    0x0004: ("sha1", hashes.SHA1),
    0x000B: ("sha256", hashes.SHA256),
    0x000C: ("sha384", hashes.SHA384),
    0x000D: ("sha512", hashes.SHA512),
}


def _fail(reason: str, message: str) -> AttestationError:
    return AttestationError(message, reason=reason)


class _Reader:
    """Bounds-checked reads; running off the end is a truncated claim, never an IndexError."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _fail(
                "truncated",
                f"The key attestation claim is truncated: {self.what} needs {n} more bytes at offset "
                f"{self.pos} of {len(self.data)}.",
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def tpm2b(self) -> bytes:
        return self.take(self.u16())

    def done(self) -> None:
        if self.pos != len(self.data):
            raise _fail(
                "format", f"The key attestation claim has {len(self.data) - self.pos} stray bytes after {self.what}."
            )


class _Bit:
    """A read-only bool attribute: whether one TPMA_OBJECT bit is set in ``raw``."""

    def __init__(self, mask: int) -> None:
        self.mask = mask

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _Bit: ...
    @overload
    def __get__(self, obj: TpmObjectAttributes, owner: type | None = None) -> bool: ...
    def __get__(self, obj: TpmObjectAttributes | None, owner: type | None = None) -> bool | _Bit:
        return self if obj is None else bool(obj.raw & self.mask)


@dataclass(frozen=True)
class TpmObjectAttributes:
    """TPMA_OBJECT of a key, decoded."""

    raw: int

    fixed_tpm = _Bit(TPMA_FIXED_TPM)
    fixed_parent = _Bit(TPMA_FIXED_PARENT)
    sensitive_data_origin = _Bit(TPMA_SENSITIVE_DATA_ORIGIN)
    user_with_auth = _Bit(TPMA_USER_WITH_AUTH)
    no_da = _Bit(TPMA_NO_DA)
    restricted = _Bit(TPMA_RESTRICTED)
    decrypt = _Bit(TPMA_DECRYPT)
    sign = _Bit(TPMA_SIGN)

    @property
    def sign_only(self) -> bool:
        return self.sign and not self.decrypt

    @property
    def non_exportable(self) -> bool:
        """Made inside this TPM and can never be duplicated out of it."""
        return self.fixed_tpm and self.fixed_parent and self.sensitive_data_origin

    def missing_for_non_exportable(self) -> list[str]:
        names = [("fixedTPM", self.fixed_tpm), ("fixedParent", self.fixed_parent)]
        names.append(("sensitiveDataOrigin", self.sensitive_data_origin))
        return [name for name, present in names if not present]


@dataclass(frozen=True)
class TpmPublic:
    """The parts of a TPMT_PUBLIC (RSA) the checks need; ``name`` is nameAlg || H(TPMT_PUBLIC)."""

    name_alg: int
    attributes: TpmObjectAttributes
    key_bits: int
    exponent: int
    modulus: bytes
    name: bytes
    raw: bytes
    scheme: int = ALG_NULL  # TPMT_RSA_SCHEME.scheme (RSASSA for a PCP AIK)
    scheme_hash: int | None = None  # its hash algorithm, when the scheme has one


@dataclass(frozen=True)
class TpmsAttest:
    """A TPMS_ATTEST of type TPM_ST_ATTEST_CERTIFY."""

    magic: int
    type: int
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    attested_name: bytes
    attested_qualified_name: bytes
    raw: bytes


@dataclass(frozen=True)
class KeyClaim:
    attest: TpmsAttest
    signature_alg: int
    signature_hash: int | None  # None: a raw signature, which does not say its hash
    signature: bytes
    public: TpmPublic


def _parse_public(data: bytes) -> TpmPublic:
    outer = _Reader(data, "TPM2B_PUBLIC")
    area = outer.tpm2b()
    outer.done()
    r = _Reader(area, "TPMT_PUBLIC")
    key_type = r.u16()
    if key_type != ALG_RSA:
        raise _fail("format", f"The attested key is not an RSA key (TPMI_ALG_PUBLIC 0x{key_type:04X}).")
    name_alg = r.u16()
    attributes = r.u32()
    r.tpm2b()  # authPolicy
    if r.u16() != ALG_NULL:  # symmetric: keyBits + mode follow
        r.u16()
        r.u16()
    scheme = r.u16()
    scheme_hash = None
    if scheme not in (ALG_NULL, ALG_RSAES):
        scheme_hash = r.u16()
    key_bits = r.u16()
    exponent = r.u32() or 65537
    modulus = r.tpm2b()
    r.done()
    if name_alg not in _HASHES:
        raise _fail("format", f"The attested key's name algorithm 0x{name_alg:04X} is not one this parser knows.")
    digest = hashlib.new(_HASHES[name_alg][0], area).digest()
    return TpmPublic(
        name_alg=name_alg,
        attributes=TpmObjectAttributes(attributes),
        key_bits=key_bits,
        exponent=exponent,
        modulus=modulus,
        name=struct.pack(">H", name_alg) + digest,
        raw=area,
        scheme=scheme,
        scheme_hash=scheme_hash,
    )


def _parse_attest(data: bytes) -> TpmsAttest:
    r = _Reader(data, "TPMS_ATTEST")
    magic = r.u32()
    if magic != TPM_GENERATED_VALUE:
        raise _fail(
            "magic",
            f"The attestation does not start with TPM_GENERATED_VALUE 0x{TPM_GENERATED_VALUE:08X} "
            f"(found 0x{magic:08X}): the TPM did not produce it.",
        )
    kind = r.u16()
    if kind != TPM_ST_ATTEST_CERTIFY:
        raise _fail("type", f"The attestation is of type 0x{kind:04X}, not TPM_ST_ATTEST_CERTIFY (0x8017).")
    signer = r.tpm2b()
    extra = r.tpm2b()
    clock, reset_count, restart_count, safe = r.u64(), r.u32(), r.u32(), r.u8()
    firmware = r.u64()
    name = r.tpm2b()
    qualified = r.tpm2b()
    r.done()
    return TpmsAttest(
        magic, kind, signer, extra, clock, reset_count, restart_count, bool(safe), firmware, name, qualified, data
    )


def _parse_signature(data: bytes) -> tuple[int, int | None, bytes]:
    if not data:
        raise _fail("truncated", "The key attestation claim has no signature.")
    # PCP writes the AIK's raw signature; a TPMT_SIGNATURE (alg, hash, TPM2B)
    # is recognised by its exact self-described length.
    if len(data) >= 6:
        alg, hash_alg, size = struct.unpack_from(">HHH", data)
        if alg in (ALG_RSASSA, ALG_RSAPSS) and 6 + size == len(data):
            return alg, hash_alg, data[6:]
    return ALG_RSASSA, None, data


def _key_blob_public(blob: bytes) -> bytes:
    if len(blob) >= 20 and struct.unpack_from("<I", blob)[0] == KEY_BLOB_MAGIC:
        header_size, kind, _flags, public_size = struct.unpack_from("<IIII", blob, 4)
        if kind != 2:
            raise _fail("format", f"The key blob in the claim is for PCP type {kind}, not a TPM 2.0 key.")
        if header_size < 20 or header_size + public_size > len(blob):
            raise _fail("truncated", "The key blob in the claim is shorter than its header says.")
        return blob[header_size : header_size + public_size]
    return blob  # a bare TPM2B_PUBLIC


def parse_key_claim(blob: bytes) -> KeyClaim:
    """Parse a PCP key attestation claim; raises AttestationError (``reason``) if malformed."""
    if len(blob) < CLAIM_HEADER_SIZE:
        raise _fail("truncated", f"The key attestation claim is truncated: {len(blob)} bytes, less than its header.")
    magic, platform, header_size, n_attest, n_sig, n_key = struct.unpack_from("<6I", blob)
    if magic != CLAIM_MAGIC:
        raise _fail(
            "magic", f"The key attestation claim does not start with the PCP magic 'KADS' (found 0x{magic:08X})."
        )
    if platform != 2:
        raise _fail("format", f"The key attestation claim is for TPM platform {platform}, not TPM 2.0.")
    total = header_size + n_attest + n_sig + n_key
    if header_size < CLAIM_HEADER_SIZE or total > len(blob):
        raise _fail(
            "truncated",
            f"The key attestation claim is truncated: its header announces {total} bytes, it has {len(blob)}.",
        )
    if total != len(blob):
        raise _fail(
            "format", f"The key attestation claim has {len(blob) - total} bytes its header does not account for."
        )
    pos = header_size
    attest = _parse_attest(blob[pos : pos + n_attest])
    pos += n_attest
    alg, hash_alg, sig = _parse_signature(blob[pos : pos + n_sig])
    pos += n_sig
    public = _parse_public(_key_blob_public(blob[pos : pos + n_key]))
    return KeyClaim(attest, alg, hash_alg, sig, public)


def parse_tpm_public(data: bytes) -> TpmPublic:
    """An RSA key's TPM2B_PUBLIC (bare, or inside a PCP key blob 'PCPM'); raises AttestationError ``aik_format``."""
    try:
        return _parse_public(_key_blob_public(data))
    except AttestationError as exc:
        raise _fail(
            "aik_format",
            "The AIK must be given as its TPM2B_PUBLIC (the public area the relying party enrolled, or PCP's key "
            f"blob holding it), not a bare public key: {exc.message}",
        ) from None


_AIK_NEEDS = (("restricted", TPMA_RESTRICTED), ("sign", TPMA_SIGN), ("fixedTPM", TPMA_FIXED_TPM),
              ("fixedParent", TPMA_FIXED_PARENT))


def _check_aik(aik: TpmPublic) -> None:
    missing = [name for name, bit in _AIK_NEEDS if not aik.attributes.raw & bit]
    if missing:
        raise _fail(
            "aik_not_restricted",
            f"The key given as AIK lacks {', '.join(missing)}: only a restricted signing key bound to its TPM is "
            "kept by the TPM from signing outside data that starts with TPM_GENERATED_VALUE, so a claim it signed "
            "proves nothing.",
        )


def _signature_hashes(claim: KeyClaim, aik: TpmPublic) -> list[hashes.HashAlgorithm]:
    chosen = claim.signature_hash if claim.signature_hash is not None else aik.scheme_hash
    if chosen is not None:
        if chosen not in _HASHES:
            raise _fail("signature", f"The claim's signature hash 0x{chosen:04X} is unknown.")
        return [_HASHES[chosen][1]()]
    # A raw signature and an AIK without a scheme hash: PCP AIKs sign SHA-1
    # digests, newer ones SHA-256. A collision does not help a forger: the TPM
    # hashes TPMS_ATTEST itself and a restricted key never signs outside data
    # that starts with TPM_GENERATED_VALUE.
    return [hashes.SHA1(), hashes.SHA256()]  # noqa: S303 - see above


def verify_key_claim(
    claim: KeyClaim,
    *,
    public_key: Any,
    aik_public: bytes | TpmPublic | None = None,
    nonce: bytes | None = None,
    aik_qualified_name: bytes | None = None,
) -> None:
    """Check that the claim is about ``public_key`` and, given the AIK, that this AIK's TPM made it now.

    1. the attested name equals the name of the public area in the claim (the
       public area was not swapped), and that public area is ``public_key``;
    2. ``aik_public`` (TPM2B_PUBLIC) is restricted + sign + fixedTPM + fixedParent;
    3. the claim's qualifiedSigner is that AIK: its Name, or ``aik_qualified_name``
       when the relying party recorded the AIK's qualified name;
    4. the signature over TPMS_ATTEST verifies under the AIK;
    5. extraData equals ``nonce`` (when given): not a replay.
    Raises AttestationError with ``reason`` "name", "public_key", "aik_format",
    "aik_not_restricted", "signer", "signature" or "nonce".
    """
    if claim.attest.attested_name != claim.public.name:
        raise _fail(
            "name",
            "The attested name does not match the key's public area in the claim: the claim vouches for another key.",
        )
    if isinstance(public_key, bytes):
        public_key = serialization.load_der_public_key(public_key)
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise _fail("public_key", "The certificate's key is not an RSA key; the claim is about an RSA key.")
    numbers = public_key.public_numbers()
    if int.from_bytes(claim.public.modulus, "big") != numbers.n or claim.public.exponent != numbers.e:
        raise _fail("public_key", "The attested key is not the certificate's key (the RSA moduli differ).")
    if aik_public is None:
        return
    aik = aik_public if isinstance(aik_public, TpmPublic) else parse_tpm_public(aik_public)
    _check_aik(aik)
    signers = {aik.name} | ({aik_qualified_name} if aik_qualified_name else set())
    if claim.attest.qualified_signer not in signers:
        raise _fail(
            "signer",
            "The claim's qualifiedSigner is not the AIK given: another key signed it (a claim from another AIK).",
        )
    aik_key = rsa.RSAPublicNumbers(aik.exponent, int.from_bytes(aik.modulus, "big")).public_key()
    verified = False
    for algorithm in _signature_hashes(claim, aik):
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if claim.signature_alg == ALG_RSASSA
            else padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.AUTO)
        )
        try:
            aik_key.verify(claim.signature, claim.attest.raw, pad, algorithm)
            verified = True
            break
        except InvalidSignature:
            continue
    if not verified:
        raise _fail("signature", "The claim's signature does not verify under the AIK given: not signed by that TPM.")
    if nonce is not None and not hmac.compare_digest(claim.attest.extra_data, nonce):
        raise _fail(
            "nonce",
            "The claim's extraData is not the nonce asked for: it was made for another challenge (a replayed claim).",
        )


# --- judging what CngSigner.info read ----------------------------------------------------


class Evidence(Protocol):
    """What ``entraclaw.cng.AttestationEvidence`` carries (no import: the parser needs no signer)."""

    @property
    def hardware(self) -> bool: ...
    @property
    def public_key_der(self) -> bytes: ...
    @property
    def nonce(self) -> bytes: ...
    @property
    def claim(self) -> bytes | None: ...
    @property
    def ek_certificate(self) -> bytes | None: ...
    @property
    def platform_type(self) -> str | None: ...
    @property
    def ek_problem(self) -> str | None: ...
    @property
    def claim_problem(self) -> str | None: ...


class KeyFacts(Protocol):
    """What ``entraclaw.cng.CngKeyInfo`` carries that the summary needs."""

    @property
    def provider(self) -> str: ...
    @property
    def sign_only(self) -> bool | None: ...
    @property
    def evidence(self) -> Evidence: ...


@dataclass(frozen=True)
class KeyAttestation:
    """What could be shown about where a CNG key lives. ``problems`` says what could not."""

    hardware: bool
    claim: bytes | None = None
    parsed: KeyClaim | None = None
    attributes: TpmObjectAttributes | None = None
    signature_verified: bool = False
    nonce_verified: bool = False
    ek_certificate: x509.Certificate | None = None
    platform_type: str | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)
    claim_problem: str | None = None  # why there is no valid claim (first problem about it)


def assess(
    info: KeyFacts,
    *,
    aik_public: bytes | TpmPublic | None = None,
    nonce: bytes | None = None,
    aik_qualified_name: bytes | None = None,
) -> KeyAttestation:
    """Judge the evidence ``CngSigner.info(aik=..., nonce=...)`` read; never raises for a bad claim.

    ``aik_public`` is the AIK's TPM2B_PUBLIC as enrolled; ``nonce`` the
    challenge the claim must carry (default: the nonce ``info`` passed, if any).
    """
    ev = info.evidence
    if not ev.hardware:
        return KeyAttestation(hardware=False, claim_problem=ev.claim_problem or "the key is not in a TPM")
    problems: list[str] = []
    ek: x509.Certificate | None = None
    if ev.ek_certificate is not None:
        try:
            ek = x509.load_der_x509_certificate(ev.ek_certificate)
        except ValueError:
            problems.append("the EK certificate the provider returned is not DER X.509")
    elif ev.ek_problem:
        problems.append(ev.ek_problem)
    expected = nonce if nonce is not None else (ev.nonce or None)
    claim_problem = ev.claim_problem
    parsed: KeyClaim | None = None
    verified = False
    if ev.claim is not None:
        try:
            parsed = parse_key_claim(ev.claim)
            verify_key_claim(
                parsed,
                public_key=ev.public_key_der,
                aik_public=aik_public,
                nonce=expected,
                aik_qualified_name=aik_qualified_name,
            )
            if aik_public is None:
                claim_problem = "no AIK public area (TPM2B_PUBLIC) was given to verify the claim's signature"
            else:
                verified = True
        except AttestationError as exc:
            # Nothing in a claim that fails a check is shown: its attributes may be another key's.
            claim_problem = f"the claim is invalid ({exc.context.get('reason', 'format')}): {exc.message}"
            parsed = None
    if claim_problem:
        problems.append(claim_problem)
    return KeyAttestation(
        hardware=True,
        claim=ev.claim,
        parsed=parsed,
        attributes=parsed.public.attributes if parsed is not None else None,
        signature_verified=verified,
        nonce_verified=verified and expected is not None,
        ek_certificate=ek,
        platform_type=ev.platform_type,
        problems=tuple(problems),
        claim_problem=claim_problem,
    )


def _usage_phrase(info: KeyFacts, attrs: TpmObjectAttributes | None) -> str:
    # The TPM's own attributes, when the claim parsed, win over the provider's property.
    if attrs is not None:
        if attrs.sign_only:
            return ", sign-only"
        if info.sign_only and attrs.decrypt:
            return ", not sign-only (the TPM attributes allow decryption although the provider reports signing only)"
        return ""
    return ", sign-only (reported by the provider)" if info.sign_only else ""


def attestation_summary(
    info: KeyFacts, *, aik_public: bytes | TpmPublic | None = None, nonce: bytes | None = None
) -> str:
    """One line for `entraclaw doctor`: "TPM-backed, non-exportable, sign-only, attested" or what could not be shown.

    "sign-only" appears when the key may only sign: from the claim's TPM
    attributes (sign set, decrypt clear) when there is a claim, else from the
    provider's key usage property, marked as such.
    """
    att = assess(info, aik_public=aik_public, nonce=nonce)
    if not att.hardware:
        return f"not TPM-backed: the key is in {info.provider} (software), so it cannot be attested"
    attrs = att.attributes
    if attrs is not None and not attrs.non_exportable:
        missing = ", ".join(attrs.missing_for_non_exportable())
        verdict = "the claim's signature verifies" if att.signature_verified else f"not attested: {att.claim_problem}"
        return (
            f"TPM-backed, but the TPM attributes lack {missing}: the key was imported or can be duplicated; {verdict}"
        )
    usage = _usage_phrase(info, attrs)
    if att.signature_verified:
        return f"TPM-backed, non-exportable{usage}, attested"
    source = "TPM attributes, unverified" if attrs is not None else "reported by the provider"
    return f"TPM-backed, non-exportable ({source}){usage}, not attested: {att.claim_problem}"
