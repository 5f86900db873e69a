"""Windows CNG signing: a private key that stays in the TPM (or the software KSP).

:class:`CngKeyHandle` is the sentinel the Windows credential store returns for
the Blueprint key: a SHA-1 certificate thumbprint and a store location, never
key bytes. ``as_signer()`` turns it into a :class:`CngSigner`, an
:class:`entraclaw.auth.Signer` that hashes the JWS signing input here and has
the compiled module ``entraclaw._cng`` sign the digest with ``NCryptSignHash``
(the GIL is released while the device works). Store, certificate and key
handles stay open between signatures, so a warm signature is one Win32 call.

Every failing Win32 status becomes an :mod:`entraclaw.errors` class chosen
from the one status table compiled into ``_cng`` (``status_table()``): the
table says which category a code belongs to; :data:`CATEGORY_ERRORS` says which
exception class a category raises. Errors carry ``hresult``, ``hresult_name``,
``api``, ``thumbprint`` and ``system_message``.

This module imports everywhere; on a build without ``_cng`` (the pure-Python
wheel on Linux/macOS) constructing a handle or signer raises
:class:`~entraclaw.errors.NativeModuleUnavailableError`.

Also here: provisioning (:func:`create_certificate`, :func:`list_certificates`,
:func:`delete_certificate`) and DPAPI (:func:`protect`, :func:`unprotect`) for
the Windows credential store.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from entraclaw import _native
from entraclaw._native import IMPORT_ERROR as _IMPORT_ERROR
from entraclaw._native import cng_module as _cng
from entraclaw.auth.signer import Algorithm, Signer
from entraclaw.auth.thumbprint import compute_cert_thumbprint, compute_sha1_thumbprint, validate_sha1_thumbprint
from entraclaw.errors import (
    AccessDeniedError,
    BadSignatureError,
    CertificateNotFoundError,
    ConfigurationError,
    KeyNotFoundError,
    KeySlotsExhaustedError,
    KeystoreError,
    PssSaltUnsupportedError,
    SigningError,
    TpmLockedOutError,
    TpmUnavailableError,
    TransientSigningError,
    UnsupportedKeyError,
    UnsupportedKeyStorageError,
    UserInteractionRequiredError,
)

__all__ = [
    "CATEGORY_ERRORS",
    "CngKeyHandle",
    "CngKeyInfo",
    "CngSigner",
    "ListedCertificate",
    "ProvisionedCertificate",
    "RetryPolicy",
    "StatusCode",
    "StoreLocation",
    "backend",
    "create_certificate",
    "delete_certificate",
    "error_for_status",
    "format_hresult",
    "list_certificates",
    "native_available",
    "protect",
    "status_table",
    "unprotect",
]

if TYPE_CHECKING:
    from entraclaw.machine import Account, KeyAccess

StoreLocation = Literal["CurrentUser", "LocalMachine"]
_NTE_BAD_KEYSET = 0x80090016
ProviderChoice = Literal["auto", "tpm", "software"]
_LOCATIONS: frozenset[str] = frozenset({"CurrentUser", "LocalMachine"})
_SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,127}")

#: Exception class for each status category of the native table.
CATEGORY_ERRORS: dict[str, type[SigningError]] = {
    "not_found": CertificateNotFoundError,
    "key_missing": KeyNotFoundError,
    "stale_handle": KeyNotFoundError,
    "slots_exhausted": KeySlotsExhaustedError,
    "locked_out": TpmLockedOutError,
    "tpm_unavailable": TpmUnavailableError,
    "user_interaction": UserInteractionRequiredError,
    "access_denied": AccessDeniedError,
    "auth_failed": AccessDeniedError,
    "tpm_vulnerable": TpmUnavailableError,
    "out_of_memory": SigningError,
    "pss_unsupported": PssSaltUnsupportedError,
    "unsupported": SigningError,
    "transient": TransientSigningError,
    "buffer_too_small": SigningError,
    "invalid_data": SigningError,
    "other": SigningError,
}

# Remedies that differ from the class default for one category.
_CATEGORY_REMEDIES: dict[str, str] = {
    "stale_handle": (
        "The key handle stayed invalid after it was re-opened; the key was probably removed or the "
        "TPM was reset. Run `entraclaw rotate --force` with admin credentials (scripts/deploy-windows.ps1 "
        "-Force wraps it) to create a new key and register it."
    ),
    "buffer_too_small": "The key storage provider kept rejecting the signature buffer; update the TPM driver/firmware.",
    "auth_failed": (
        "The TPM rejected the key's authorization. entraclaw does not retry: every failed attempt counts toward "
        "the TPM's dictionary-attack lockout. Check `Get-Tpm` (LockoutCount) and re-run "
        "scripts/deploy-windows.ps1 -Force (`entraclaw rotate --force`) to create a key without a PIN."
    ),
    "tpm_vulnerable": (
        "This Infineon TPM has the ROCA weakness (CVE-2017-15361) and Windows blocks RSA keys in it. Update the "
        "TPM firmware (Microsoft advisory ADV170012), clear the TPM, "
        "and run `entraclaw rotate --force` (scripts/deploy-windows.ps1 -Force)."
    ),
    "out_of_memory": (
        "The key storage provider ran out of memory. Close programs that use the TPM heavily or restart the "
        "machine, then retry."
    ),
    "unsupported": "The TPM cannot make this kind of key; use RSA-2048, which every TPM 2.0 supports.",
}

# Status values the Python side names itself.
_PSS_SALT_API = "NCryptGetProperty(PSS Salt Size)"
_ROCA = 0x8029041F
_SALT_NAMES = {0: "unknown", 1: "maximum only", 2: "hash size"}

# NCRYPT_KEY_USAGE_PROPERTY bits (ncrypt.h;
# https://learn.microsoft.com/en-us/windows/win32/seccng/key-storage-property-identifiers).
NCRYPT_ALLOW_DECRYPT_FLAG = 0x1
NCRYPT_ALLOW_SIGNING_FLAG = 0x2
NCRYPT_ALLOW_KEY_AGREEMENT_FLAG = 0x4
NCRYPT_ALLOW_KEY_IMPORT_FLAG = 0x8
NCRYPT_ALLOW_ALL_USAGES = 0x00FFFFFF
_USAGE_NAMES = (
    (NCRYPT_ALLOW_DECRYPT_FLAG, "decrypt"),
    (NCRYPT_ALLOW_SIGNING_FLAG, "sign"),
    (NCRYPT_ALLOW_KEY_AGREEMENT_FLAG, "key agreement"),
    (NCRYPT_ALLOW_KEY_IMPORT_FLAG, "key import"),
)


def native_available() -> bool:
    """True when the compiled ``entraclaw._cng`` module loaded."""
    return _cng is not None


def backend() -> str | None:
    """``"cng"`` (real Windows), ``"standin"`` (Linux test build) or None (no native module)."""
    return None if _cng is None else str(_cng.backend)


def _require_native(what: str) -> None:
    _native.require(_cng, _IMPORT_ERROR, f"{what} needs")


# --- the status table --------------------------------------------------------------


@dataclass(frozen=True)
class StatusCode:
    """One row of the native status table."""

    name: str
    hresult: int
    category: str
    action: str  # "none", "reacquire", "retry" or "resize"


_TABLE: tuple[StatusCode, ...] = tuple(
    StatusCode(name, code, category, action)
    for name, code, category, action in (_cng.status_table() if _cng is not None else [])
)
_BY_CODE: dict[int, StatusCode] = {row.hresult: row for row in _TABLE}


def status_table() -> tuple[StatusCode, ...]:
    """The status table compiled into ``_cng`` (empty without the native module)."""
    return _TABLE


def _row(hresult: int) -> StatusCode | None:
    return _BY_CODE.get(hresult & 0xFFFFFFFF)


def format_hresult(hresult: int) -> str:
    """``0x8009000D (NTE_NO_KEY)``, or just the hex for a code the table does not know."""
    code = hresult & 0xFFFFFFFF
    row = _row(code)
    return f"0x{code:08X} ({row.name})" if row else f"0x{code:08X}"


def _system_message(hresult: int) -> str | None:
    if _cng is None:
        return None
    return _cng.system_message(hresult & 0xFFFFFFFF)


def error_for_status(
    hresult: int,
    api: str,
    *,
    thumbprint: str | None,
    subject: str,
    attempts: int = 1,
    reacquires: int = 0,
) -> SigningError:
    """The typed error for a failed Win32 call; ``subject`` names the object in the message."""
    code = hresult & 0xFFFFFFFF
    row = _row(code)
    category = row.category if row else "other"
    cls = CATEGORY_ERRORS.get(category, SigningError)
    system_message = _system_message(code)
    message = f"{api} failed with {format_hresult(code)} for {subject}"
    if category == "pss_unsupported":
        refused = api == _PSS_SALT_API
        message = (
            f"PS256 is not possible with the TPM key of {subject}: the TPM makes RSASSA-PSS signatures only with "
            f"the maximum salt, PS256 needs a 32-byte salt ("
            + (
                "refused before signing: the provider's PSS Salt Size is not 'hash size'"
                if refused
                else f"{api} returned {format_hresult(code)}"
            )
            + ")"
        )
    if category == "transient":
        message += f" after {attempts} attempt{'s' if attempts != 1 else ''}"
    if reacquires:
        message += " (the key was re-opened once and failed again)"
    message += "."
    if system_message:
        message += f" Windows says: {system_message}"
    return cls(
        message,
        remedy=_CATEGORY_REMEDIES.get(category),
        hresult=code,
        hresult_name=row.name if row else None,
        api=api,
        thumbprint=thumbprint,
        system_message=system_message,
        attempts=attempts,
        category=category,
    )


# --- retry policy -------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retry for transient device states (TPM busy, self-test, TBS starting).

    ``attempts`` counts every try including the first; the default is one retry
    after 100 ms. Delays grow by ``multiplier`` up to ``max_delay`` (seconds).
    Lockout is never retried, whatever the policy says.
    """

    attempts: int = 2
    initial_delay: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or not 1 <= self.attempts <= 20:
            raise ConfigurationError(
                f"RetryPolicy attempts={self.attempts!r} is outside 1..20.",
                remedy="Use a small number of attempts (default 2: one retry).",
            )
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ConfigurationError(
                f"RetryPolicy delays must be >= 0 and multiplier >= 1 (got {self.initial_delay}, "
                f"{self.max_delay}, {self.multiplier}).",
                remedy="Pass non-negative delays in seconds and a multiplier of at least 1.",
            )

    def _native_args(self) -> tuple[int, float, float, float]:
        return (self.attempts, self.initial_delay * 1000.0, self.multiplier, self.max_delay * 1000.0)


# --- signer ----------------------------------------------------------------------------


_PADDINGS: dict[str, int] = (
    {"RS256": _cng.PADDING_PKCS1, "PS256": _cng.PADDING_PSS} if _cng is not None else {"RS256": 0, "PS256": 1}
)


def _check_location(location: str) -> StoreLocation:
    if location == "CurrentUser":
        return "CurrentUser"
    if location == "LocalMachine":
        return "LocalMachine"
    raise ConfigurationError(
        f"Certificate store location {location!r} is not 'CurrentUser' or 'LocalMachine'.",
        remedy="Use CurrentUser (where `entraclaw setup` puts the certificate) or LocalMachine.",
    )


def _utc(seconds: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc)


@dataclass(frozen=True)
class AttestationEvidence:
    """What the provider returned about where the key lives, unparsed.

    The signer reads; it does not judge. ``entraclaw.attestation.assess`` parses
    and checks the claim (and a relying party does the same on its side).
    ``ek_problem`` / ``claim_problem`` say why a part is missing.
    """

    hardware: bool
    public_key_der: bytes  # the certificate's SubjectPublicKeyInfo: what the claim must be about
    aik: str | None = None
    nonce: bytes = b""
    claim: bytes | None = None
    ek_certificate: bytes | None = None  # DER, as PCP_EKCERT returned it
    platform_type: str | None = None
    ek_problem: str | None = None
    claim_problem: str | None = None


_NOT_READ = AttestationEvidence(hardware=False, public_key_der=b"", claim_problem="not read")


@dataclass(frozen=True)
class CngKeyInfo:
    """Non-secret facts about a CNG key and its certificate.

    ``exportable`` is False for every hardware key whatever the provider's
    export policy reads (PCP has been seen reporting export bits for keys the
    TPM can never export); ``export_policy`` keeps the raw value.
    ``pss_salt_size`` is the TPM's "PSS Salt Size" (None for software keys).
    ``key_usage`` is the provider's ``NCRYPT_KEY_USAGE_PROPERTY`` (``NCRYPT_ALLOW_*``
    bits; None when the provider does not report it): keys made by
    :func:`create_certificate` allow signing only.
    ``evidence`` is what the provider returned to attest the key (see
    ``entraclaw.attestation.assess``).
    """

    thumbprint: str
    store_location: StoreLocation
    provider: str
    container: str
    key_length: int
    hardware: bool
    exportable: bool
    not_before: _dt.datetime
    not_after: _dt.datetime
    subject: str
    export_policy: int = 0
    pss_salt_size: str | None = None
    evidence: AttestationEvidence = _NOT_READ
    key_usage: int | None = None

    @property
    def key_usages(self) -> tuple[str, ...] | None:
        """Names of the usages ``key_usage`` allows ("sign", "decrypt", ...), None if not reported."""
        if self.key_usage is None:
            return None
        return tuple(name for bit, name in _USAGE_NAMES if self.key_usage & bit)

    @property
    def sign_only(self) -> bool | None:
        """What the provider reports: the key may sign and do nothing else (None if not reported)."""
        if self.key_usage is None:
            return None
        return self.key_usage & NCRYPT_ALLOW_ALL_USAGES == NCRYPT_ALLOW_SIGNING_FLAG


def _evidence(raw: dict[str, Any], cert: x509.Certificate, aik: str | None, nonce: bytes) -> AttestationEvidence:
    def failed(part: tuple[int, str]) -> str:
        code, api = part
        return f"{api} returned {format_hresult(int(code))}"

    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if not raw["hardware"]:
        return AttestationEvidence(hardware=False, public_key_der=spki, claim_problem="the key is not in a TPM")
    ek = raw["ek_certificate"]
    claim = raw["claim"]
    claim_problem = None
    if claim is None:
        claim_problem = (
            f"no claim from AIK {aik!r} ({failed(raw['claim_status'])})"
            if aik
            else "no AIK was given to certify the key (pass aik=<AIK container>)"
        )
    return AttestationEvidence(
        hardware=True,
        public_key_der=spki,
        aik=aik,
        nonce=nonce,
        claim=claim if isinstance(claim, bytes) else None,
        ek_certificate=ek if isinstance(ek, bytes) else None,
        platform_type=raw["platform_type"] if isinstance(raw["platform_type"], str) else None,
        ek_problem=None if ek is not None else f"no EK certificate readable ({failed(raw['ek_status'])})",
        claim_problem=claim_problem,
    )


class CngSigner(Signer):
    """Signs with a CNG key found by certificate thumbprint; the key never enters this process.

    Thread-safe: concurrent :meth:`sign` calls run in parallel on the same
    handle for software keys; for TPM keys the native core serializes them (the
    TPM runs one command at a time). :meth:`close` frees the handles; signing
    after it raises :class:`~entraclaw.errors.SigningError`.

    PS256 with a TPM key is refused up front unless the TPM reports a PSS salt
    of hash size, and every PS256 signature from a TPM key is verified against
    the certificate before it is returned.
    """

    def __init__(
        self,
        thumbprint: str,
        store_location: str = "CurrentUser",
        *,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        _require_native("CngSigner")
        self._thumbprint = validate_sha1_thumbprint(thumbprint, source="CNG certificate thumbprint")
        self._location = _check_location(store_location)
        self._policy = retry_policy or RetryPolicy()
        try:
            self._key = _cng.CertKey(self._thumbprint, self._location, *self._policy._native_args())
            info = self._key.certificate()
        except _cng.CngStatusError as exc:
            raise self._translate(exc) from exc
        self._cert = x509.load_der_x509_certificate(info["der"])
        self._not_before = _utc(info["not_before"])
        self._not_after = _utc(info["not_after"])
        self._subject = info["subject"]
        self._description: str | None = None

    @property
    def _where(self) -> str:
        return f"certificate {self._thumbprint} in {self._location}\\My"

    def _translate(self, exc: BaseException) -> SigningError:
        hresult, api, attempts, reacquires = exc.args
        error = error_for_status(
            hresult, api, thumbprint=self._thumbprint, subject=self._where, attempts=attempts, reacquires=reacquires
        )
        if self._location == "LocalMachine" and (hresult & 0xFFFFFFFF) == _NTE_BAD_KEYSET:
            # A machine key whose DACL does not grant this account reads as "Keyset does not exist"
            # (.NET users report it so: dotnet/runtime PR 119124); `setup --machine` grants one account.
            error.remedy = (
                "The machine key exists for another account or not at all. Run entraclaw as the account it was "
                "set up for (`entraclaw doctor` as that account shows who may use it), or re-run "
                "`entraclaw setup --machine --account <this account>` from an elevated prompt."
            )
        return error

    def key_access(self) -> KeyAccess:
        """Who may use this key: its owner and DACL, with account names where they resolve."""
        from entraclaw.machine import KeyAccess

        try:
            raw = self._key.read_access()
        except _cng.CngStatusError as exc:
            raise self._translate(exc) from exc
        except _cng.KeyClosedError as exc:
            raise self._closed_error() from exc
        return KeyAccess.from_native(dict(raw))

    def restrict_access(self, account: str) -> Account:
        """Replace the key's DACL by one grant to ``account`` (see :mod:`entraclaw.machine`)."""
        from entraclaw.machine import Account, canonical_account, lookup_account

        lookup_account(account)  # an unknown name is a ConfigurationError before anything changes
        try:
            raw = self._key.restrict_access(canonical_account(account))
        except _cng.CngStatusError as exc:
            raise self._translate(exc) from exc
        except _cng.KeyClosedError as exc:
            raise self._closed_error() from exc
        return Account.from_native(dict(raw))

    def _closed_error(self) -> SigningError:
        return SigningError(
            f"The CNG signer for {self._where} was closed; it cannot sign any more.",
            remedy="Get a fresh signer from CngKeyHandle.as_signer() instead of keeping a closed one.",
            thumbprint=self._thumbprint,
        )

    @property
    def thumbprint(self) -> str:
        return self._thumbprint

    @property
    def store_location(self) -> StoreLocation:
        return self._location

    @property
    def certificate(self) -> x509.Certificate:
        return self._cert

    @property
    def closed(self) -> bool:
        return bool(self._key.closed)

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._policy

    @retry_policy.setter
    def retry_policy(self, policy: RetryPolicy) -> None:
        self._key.set_retry_policy(*policy._native_args())
        self._policy = policy

    def sign(self, data: bytes, algorithm: Algorithm = "RS256") -> bytes:
        padding = _PADDINGS.get(algorithm)
        if padding is None:
            raise UnsupportedKeyError(
                f"Algorithm {algorithm!r} is not supported by the CNG signer for {self._where}.",
                remedy="Use 'RS256' or 'PS256'.",
                algorithm=algorithm,
            )
        digest = hashlib.sha256(data).digest()
        try:
            signature = self._key.sign_digest(digest, padding)
        except _cng.CngStatusError as exc:
            raise self._translate(exc) from exc
        except _cng.KeyClosedError as exc:
            raise self._closed_error() from exc
        if algorithm == "PS256" and self._key.hardware:
            self._check_pss(signature, data)
        return signature

    def _check_pss(self, signature: bytes, data: bytes) -> None:
        # A max-salt-only TPM may hand back zeros or a max-salt signature; a
        # verify costs ~0.1 ms next to a TPM operation of tens of ms, and a bad
        # signature must never reach a token request.
        key = self._cert.public_key()
        pss = asym_padding.PSS(mgf=asym_padding.MGF1(hashes.SHA256()), salt_length=32)
        try:
            if not isinstance(key, rsa.RSAPublicKey):
                raise InvalidSignature
            key.verify(signature, data, pss, hashes.SHA256())
        except InvalidSignature:
            raise BadSignatureError(
                f"The TPM key of {self._where} returned a PS256 signature that does not verify under the "
                "certificate's public key (salt length not 32, or a zero-filled signature).",
                thumbprint=self._thumbprint,
                algorithm="PS256",
            ) from None

    def info(self, *, aik: str | None = None, nonce: bytes = b"") -> CngKeyInfo:
        """Provider, key length, hardware flag, exportability, validity dates and attestation evidence.

        ``aik`` names an attestation identity key in the Platform Crypto
        Provider (user or machine key set) to certify a TPM key with; ``nonce``
        (at most 64 bytes, from the relying party) is passed to
        NCryptCreateClaim as NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE so the
        claim's extraData carries it. ``entraclaw.attestation.assess`` checks
        the result.
        """
        if not isinstance(nonce, bytes) or len(nonce) > 64:
            raise ConfigurationError(
                f"The attestation nonce for certificate {self._thumbprint} must be at most 64 bytes.",
                remedy="Use the relying party's challenge as given (32 bytes is usual).",
            )
        try:
            props = self._key.properties()
            raw = self._key.attestation(aik or "", nonce)
        except _cng.CngStatusError as exc:
            raise self._translate(exc) from exc
        except _cng.KeyClosedError as exc:
            raise self._closed_error() from exc
        evidence = _evidence(dict(raw), self._cert, aik, nonce)
        return CngKeyInfo(
            thumbprint=self._thumbprint,
            store_location=self._location,
            provider=props["provider"],
            container=props["container"],
            key_length=props["key_length"],
            hardware=props["hardware"],
            exportable=props["exportable"],
            not_before=self._not_before,
            not_after=self._not_after,
            subject=self._subject,
            export_policy=props["export_policy"],
            pss_salt_size=_SALT_NAMES.get(props["pss_salt_size"], str(props["pss_salt_size"]))
            if props["hardware"]
            else None,
            evidence=evidence,
            key_usage=props["key_usage"],
        )

    @property
    def key_description(self) -> str:
        if self._description is None:
            try:
                info = self.info()
            except SigningError:
                return f"CNG {self._thumbprint}"
            kind = "TPM" if info.hardware else "software"
            self._description = f"CNG {kind} RSA-{info.key_length} ({info.provider})"
        return self._description

    def close(self) -> None:
        self._key.close()


class CngKeyHandle:
    """The Windows sentinel for a non-exportable key: certificate thumbprint + store location.

    Holds no key material. :meth:`as_signer` returns one cached
    :class:`CngSigner` (so its handles stay warm across assertions) and makes a
    new one only after the previous one was closed.
    """

    __slots__ = ("_lock", "_signer", "retry_policy", "store_location", "thumbprint")

    def __init__(
        self,
        thumbprint: str,
        store_location: str = "CurrentUser",
        *,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        _require_native("CngKeyHandle")
        self.thumbprint = validate_sha1_thumbprint(thumbprint, source="CNG certificate thumbprint")
        self.store_location: StoreLocation = _check_location(store_location)
        self.retry_policy = retry_policy
        self._signer: CngSigner | None = None
        self._lock = threading.Lock()

    def as_signer(self) -> CngSigner:
        with self._lock:
            if self._signer is None or self._signer.closed:
                self._signer = CngSigner(self.thumbprint, self.store_location, retry_policy=self.retry_policy)
            return self._signer

    def close(self) -> None:
        with self._lock:
            if self._signer is not None:
                self._signer.close()
                self._signer = None

    def __repr__(self) -> str:
        return f"CngKeyHandle(thumbprint={self.thumbprint!r}, store_location={self.store_location!r})"


# --- provisioning -------------------------------------------------------------------


@dataclass(frozen=True)
class ProvisionedCertificate:
    """A key made by :func:`create_certificate` and its self-signed certificate in CurrentUser\\My."""

    thumbprint: str  # SHA-1 hex, how Windows indexes it
    x5t_s256: str  # what Entra and the assertion header use
    certificate: x509.Certificate
    provider: str
    hardware: bool
    container: str
    tpm_fallback_reason: str | None  # why the TPM was not used, when provider="auto" fell back
    tpm_fallback_hresult: int | None = None  # the status behind tpm_fallback_reason
    # Keys are made sign-only (NCRYPT_ALLOW_SIGNING_FLAG); a provider that refuses
    # the Key Usage property keeps its default usage and the reason is here.
    sign_only: bool = True
    key_usage_problem: str | None = None


@dataclass(frozen=True)
class ListedCertificate:
    thumbprint: str
    subject: str
    not_before: _dt.datetime
    not_after: _dt.datetime
    certificate: x509.Certificate
    has_key_link: bool
    provider: str
    container: str


def _check_subject(common_name: str) -> str:
    if not isinstance(common_name, str) or not _SUBJECT.fullmatch(common_name):
        raise ConfigurationError(
            f"Certificate subject CN {common_name!r} must be 1-128 letters, digits, spaces, '.', '_' or '-'.",
            remedy="Use a plain name such as 'entraclaw-blueprint-<app id>'.",
        )
    return common_name


def _fallback_reason(hresult: int, api: str, key_bits: int) -> str:
    code = hresult & 0xFFFFFFFF
    row = _row(code)
    what = f"{api} failed with {format_hresult(code)}"
    if code == _ROCA:
        return (
            f"the TPM is an Infineon TPM with the ROCA weakness (CVE-2017-15361), so Windows blocks RSA key "
            f"creation in it ({what}); update its firmware (Microsoft advisory ADV170012) to use the TPM"
        )
    if key_bits > 2048 and (row is None or row.category in ("other", "unsupported")):
        return (
            f"the TPM cannot make RSA-{key_bits} keys ({what}); most TPMs make only RSA-2048, "
            "so use key_bits=2048 to keep the key in the TPM"
        )
    return what


def create_certificate(
    common_name: str,
    *,
    provider: ProviderChoice = "auto",
    days: int = 365,
    key_bits: int = 2048,
    retry_policy: RetryPolicy | None = None,
    location: str = "CurrentUser",
) -> ProvisionedCertificate:
    """Create a non-exportable RSA key and a self-signed certificate for it in ``location``\\My.

    ``location="LocalMachine"``: a machine key and LocalMachine\\My (needs an
    administrator), for agents run by a service (:mod:`entraclaw.machine`).

    ``provider="auto"`` tries the TPM (Microsoft Platform Crypto Provider) and
    falls back to the Microsoft Software Key Storage Provider; the reason for a
    fallback is in ``tpm_fallback_reason`` so setup can warn about it. A
    transient TPM status is retried under ``retry_policy`` and never falls
    back; lockout and failed authorization raise their typed errors. The key
    may only sign; a provider that refuses that keeps its default usage, and
    ``key_usage_problem`` says so (``sign_only`` False).
    """
    _require_native("create_certificate")
    _check_subject(common_name)
    if provider not in ("auto", "tpm", "software"):
        raise ConfigurationError(
            f"Key provider {provider!r} is not 'auto', 'tpm' or 'software'.",
            remedy="Use 'auto' (TPM, software fallback) unless you need one of them specifically.",
        )
    if not 1 <= days <= 3650 or key_bits not in (2048, 3072, 4096):
        raise ConfigurationError(
            f"Certificate for CN={common_name}: days={days} must be 1..3650 and key_bits={key_bits} 2048/3072/4096.",
            remedy="Use the defaults (365 days, RSA-2048).",
        )
    where = _check_location(location)
    container = f"entraclaw-{uuid.uuid4()}"
    start = int(time.time()) - 300  # tolerate clock skew between this machine and Entra
    policy = retry_policy or RetryPolicy()
    try:
        result = _cng.provision_certificate(
            common_name, container, provider, key_bits, start, start + days * 86400, *policy._native_args(), where
        )
    except _cng.CngStatusError as exc:
        hresult, api, attempts, _reacquires = exc.args[:4]
        subject = f"new certificate CN={common_name} (key container {container})"
        if len(exc.args) >= 6:
            # The rollback could not delete the new key (NCryptDeleteKey failed): say where it is.
            subject += (
                f"; the new key container {container} was left behind: {exc.args[5]} failed with "
                f"{format_hresult(exc.args[4])}"
            )
        raise error_for_status(hresult, api, thumbprint=None, subject=subject, attempts=attempts) from exc
    der = result["der"]
    usage_problem = None
    if result["usage_hresult"]:
        usage_problem = (
            f"the key allows more than signing: {result['usage_api']} failed with "
            f"{format_hresult(result['usage_hresult'])}, so {result['provider']} kept its default key usage"
        )
    fallback = None
    if result["tpm_hresult"]:
        fallback = _fallback_reason(result["tpm_hresult"], result["tpm_api"], key_bits)
    return ProvisionedCertificate(
        thumbprint=compute_sha1_thumbprint(der),
        x5t_s256=compute_cert_thumbprint(der),
        certificate=x509.load_der_x509_certificate(der),
        provider=result["provider"],
        hardware=result["hardware"],
        container=container,
        tpm_fallback_reason=fallback,
        tpm_fallback_hresult=(result["tpm_hresult"] & 0xFFFFFFFF) or None,
        sign_only=usage_problem is None,
        key_usage_problem=usage_problem,
    )


def list_certificates(prefix: str = "entraclaw-", location: str = "CurrentUser") -> list[ListedCertificate]:
    """Certificates in ``location``\\My whose subject name starts with ``prefix``."""
    _require_native("list_certificates")
    where = _check_location(location)
    try:
        rows = _cng.list_certificates(prefix, where)
    except _cng.CngStatusError as exc:
        hresult, api, _attempts, _reacquires = exc.args
        raise error_for_status(hresult, api, thumbprint=None, subject=f"store {where}\\My") from exc
    return [
        ListedCertificate(
            thumbprint=compute_sha1_thumbprint(row["der"]),
            subject=row["subject"],
            not_before=_utc(row["not_before"]),
            not_after=_utc(row["not_after"]),
            certificate=x509.load_der_x509_certificate(row["der"]),
            has_key_link=row["has_key_link"],
            provider=row["provider"],
            container=row["container"],
        )
        for row in rows
    ]


def delete_certificate(thumbprint: str, location: str = "CurrentUser", *, delete_key: bool = True) -> bool:
    """Delete a certificate and (by default) its key. Returns whether a key was deleted.

    The key stays when another certificate in the store links the same key
    container (a renewal on the same key): only this certificate goes, and the
    result is False.
    """
    _require_native("delete_certificate")
    thumb = validate_sha1_thumbprint(thumbprint, source="certificate thumbprint to delete")
    where = _check_location(location)
    try:
        outcome = _cng.delete_certificate(thumb, where, delete_key)
    except _cng.CngStatusError as exc:
        hresult, api, _attempts, _reacquires = exc.args
        raise error_for_status(hresult, api, thumbprint=thumb, subject=f"certificate {thumb} in {where}\\My") from exc
    if outcome["capi_provider"]:
        raise UnsupportedKeyStorageError(
            f"Not deleting certificate {thumb} in {where}\\My: its private key is not a CNG key but belongs to the "
            f"legacy CryptoAPI provider {outcome['capi_provider']!r}, which entraclaw cannot delete; removing only "
            "the certificate would leave the key behind. Nothing was deleted.",
            thumbprint=thumb,
            provider=outcome["capi_provider"],
        )
    return bool(outcome["key_deleted"])


# --- DPAPI ------------------------------------------------------------------------------


def _dpapi_error(exc: BaseException, operation: str, size: int) -> KeystoreError:
    hresult, api, _attempts, _reacquires = exc.args
    code = hresult & 0xFFFFFFFF
    row = _row(code)
    remedy = (
        "The blob was made by another user, with other entropy, or was changed; store the secret again."
        if row is not None and row.category == "invalid_data"
        else "Check that the user profile is loaded (DPAPI needs it) and retry."
    )
    # Only sizes: the data and the entropy are secrets.
    return KeystoreError(
        f"DPAPI {operation} of {size} bytes failed: {api} returned {format_hresult(code)}.",
        remedy=remedy,
        hresult=code,
        hresult_name=row.name if row else None,
        api=api,
        os_error=code,
        system_message=_system_message(code),
    )


def protect(data: bytes, *, entropy: bytes = b"", description: str = "") -> bytes:
    """CryptProtectData for the current user, UI forbidden; ``entropy`` must be given again to unprotect."""
    _require_native("DPAPI protect")
    try:
        return _cng.protect(bytes(data), bytes(entropy), description)
    except _cng.CngStatusError as exc:
        raise _dpapi_error(exc, "protect", len(data)) from None


def unprotect(blob: bytes, *, entropy: bytes = b"") -> bytes:
    """CryptUnprotectData for the current user; wrong entropy or a changed blob raises KeystoreError."""
    _require_native("DPAPI unprotect")
    try:
        return _cng.unprotect(bytes(blob), bytes(entropy))
    except _cng.CngStatusError as exc:
        raise _dpapi_error(exc, "unprotect", len(blob)) from None
