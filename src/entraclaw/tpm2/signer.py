"""The Linux TPM signer: RS256/PS256 with a key that never leaves the TPM.

:class:`Tpm2Signer` loads the key once (storage primary re-derived, TPM2_Load,
primary flushed) and keeps it loaded, so a warm signature is one TPM2_Sign.
When the TPM has dropped the key -- the resource manager evicted it, another
client flushed it, the TPM restarted (``TPM_RC_HANDLE``, ``TPM_RC_REFERENCE_H0``,
ESYS's unknown-handle error) -- it is loaded again and the signature retried
once. The digest is computed here (SHA-256); the TPM signs it with RSASSA
(RS256) or RSASSA-PSS (PS256).

PS256 needs a salt as long as the hash (32 bytes). TPMs following TCG spec
revisions before 1.16 (and FIPS-mode quirks of some vendors) use the maximum
salt instead. The TPM does not report which, so every PS256 signature is
verified with a 32-byte salt before it is returned; a maximum-salt signature
raises :class:`~entraclaw.errors.PssSaltUnsupportedError` and later PS256
requests are refused up front -- the rule :mod:`entraclaw.cng` applies on Windows.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from entraclaw.attestation import KeyAttestation
from entraclaw.auth.retry import TokenRetryPolicy
from entraclaw.auth.signer import Algorithm, Signer
from entraclaw.auth.thumbprint import compute_sha1_thumbprint
from entraclaw.errors import BadSignatureError, KeyMaterialError, PssSaltUnsupportedError, SigningError
from entraclaw.tpm2.device import TctiSource, tcti_config
from entraclaw.tpm2.keyfile import Tpm2KeyFile, read_key_file
from entraclaw.tpm2.rc import error_for_rc
from entraclaw.tpm2.session import TpmCallFailed, TpmConnection, srk_template

__all__ = ["Tpm2KeyHandle", "Tpm2KeyInfo", "Tpm2Signer", "classify_pss", "public_key_of"]

_RELOAD = ("stale_handle",)


def public_key_of(tss: Any, public: Any) -> rsa.RSAPublicKey:
    area = public.publicArea
    exponent = int(area.parameters.rsaDetail.exponent) or 65537
    modulus = int.from_bytes(bytes(area.unique.rsa), "big")
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def classify_pss(public_key: rsa.RSAPublicKey, signature: bytes, data: bytes) -> str:
    """``"hash"`` (32-byte salt: PS256), ``"max"`` (the maximum salt) or ``"bad"`` (neither verifies)."""
    max_salt = (public_key.key_size + 7) // 8 - 32 - 2
    for verdict, salt in (("hash", 32), ("max", max_salt)):
        try:
            public_key.verify(signature, data, padding.PSS(padding.MGF1(hashes.SHA256()), salt), hashes.SHA256())
            return verdict
        except InvalidSignature:
            continue
    return "bad"


@dataclass(frozen=True)
class Tpm2KeyInfo:
    """Non-secret facts about a Linux TPM key (the fields doctor reads from a CNG key's info too)."""

    path: Path
    tcti: str
    provider: str
    key_length: int
    hardware: bool
    exportable: bool
    sign_only: bool | None
    attributes: int
    pss_salt_size: str
    attestation: KeyAttestation


class Tpm2Signer(Signer):
    """Signs with the TPM key whose wrapped blobs are in ``path``; thread-safe (one TPM command at a time)."""

    def __init__(
        self,
        path: str | Path,
        *,
        tcti: TctiSource | None = None,
        retry_policy: TokenRetryPolicy | None = None,
    ) -> None:
        self.path = Path(path)
        self._file: Tpm2KeyFile = read_key_file(self.path)
        self._cert = self._file.certificate
        self._conn = TpmConnection(tcti if tcti is not None else tcti_config(), retry_policy)
        self.tss = self._conn.tss
        self._public, _offset = self.tss.TPM2B_PUBLIC.unmarshal(self._file.public)
        self._private, _offset = self.tss.TPM2B_PRIVATE.unmarshal(self._file.private)
        key = public_key_of(self.tss, self._public)
        cert_key = self._cert.public_key()
        if not isinstance(cert_key, rsa.RSAPublicKey) or cert_key.public_numbers() != key.public_numbers():
            raise KeyMaterialError(
                f"The certificate in the TPM key file {self.path} is not the certificate of the key in it.",
                remedy="Run `entraclaw rotate --force` with admin credentials to make a new TPM key and register it.",
                path=str(self.path),
            )
        # The loaded key's handle, in a box the exit finalizer shares: a TPM without a resource
        # manager (swtpm, /dev/tpm0) keeps a transient object after its process ends.
        self._box: list[Any] = [None]
        self._finalizer = weakref.finalize(self, _release, self._conn, self._box)
        self._closed = False
        self._pss: str | None = None  # None: not seen yet; "hash" or "max" once a PS256 signature was checked
        self.loads = 0  # times the key was loaded into the TPM (the first time and every reload)
        self._schemes = {
            "RS256": self._scheme(self.tss.TPM2_ALG.RSASSA),
            "PS256": self._scheme(self.tss.TPM2_ALG.RSAPSS),
        }
        self._validation = self.tss.TPMT_TK_HASHCHECK(tag=self.tss.TPM2_ST.HASHCHECK, hierarchy=self.tss.TPM2_RH.NULL)

    def _scheme(self, alg: Any) -> Any:
        scheme = self.tss.TPMT_SIG_SCHEME(scheme=alg)
        scheme.details.any.hashAlg = self.tss.TPM2_ALG.SHA256
        return scheme

    # --- what it is ---------------------------------------------------------------------------

    @property
    def certificate(self) -> x509.Certificate:
        return self._cert

    @property
    def tcti(self) -> str:
        return self._conn.description

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def key_description(self) -> str:
        return f"TPM 2.0 RSA-2048 ({self.tcti})"

    @property
    def _subject(self) -> str:
        return f"TPM key file {self.path}"

    def _error(self, failed: TpmCallFailed, *, reloads: int = 0) -> SigningError:
        return error_for_rc(
            failed.rc,
            failed.command,
            subject=f"{self._subject} (TPM {self.tcti})",
            attempts=failed.attempts,
            reloads=reloads,
            path=str(self.path),
            thumbprint=compute_sha1_thumbprint(self._file.certificate_der),
            tcti=self.tcti,
        )

    # --- loading -------------------------------------------------------------------------------

    def _load(self) -> Any:
        """Re-derive the storage primary, load the key under it, flush the primary (3 commands)."""
        conn = self._conn
        parent, _public = conn.create_primary("OWNER", srk_template(self.tss))
        try:
            handle = conn.call("TPM2_Load", lambda esapi: esapi.load(parent, self._private, self._public))
        finally:
            conn.flush(parent)
        self.loads += 1
        return handle

    @property
    def _key_handle(self) -> Any:
        return self._box[0]

    @_key_handle.setter
    def _key_handle(self, handle: Any) -> None:
        self._box[0] = handle

    def _with_key(self, command: str, fn: Any) -> Any:
        """Run ``fn(esapi, key_handle)``; load the key first if needed, and again once if the TPM dropped it."""
        if self._closed:
            raise SigningError(
                f"The TPM signer for {self._subject} was closed.",
                remedy="Open the key again (entraclaw.config.open_signer) instead of reusing a closed signer.",
                path=str(self.path),
            )
        with self._conn.lock:
            for reloads in (0, 1):
                try:
                    if self._key_handle is None:
                        self._key_handle = self._load()
                    return self._conn.call(command, _bound(fn, self._key_handle))
                except TpmCallFailed as failed:
                    if failed.category in _RELOAD and reloads == 0:
                        self._key_handle = None  # the TPM no longer has it; nothing to flush
                        continue
                    if failed.category == "tpm_unavailable" and reloads == 0 and failed.command == command:
                        # The connection broke (TPM restarted): a new connection has no loaded key.
                        self._key_handle = None
                        continue
                    raise self._error(failed, reloads=reloads) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def load(self) -> None:
        """Load the key now (setup and doctor do, so a key this TPM cannot use fails early)."""
        self._with_key("TPM2_Load", lambda esapi, handle: None)

    # --- signing -------------------------------------------------------------------------------

    def sign(self, data: bytes, algorithm: Algorithm = "RS256") -> bytes:
        scheme = self._schemes.get(algorithm)
        if scheme is None:
            raise KeyMaterialError(
                f"Algorithm {algorithm!r} is not supported by the TPM signer for {self._subject}.",
                remedy="Use 'RS256' or 'PS256'.",
                algorithm=algorithm,
            )
        if algorithm == "PS256" and self._pss == "max":
            raise self._pss_refused(before=True)
        digest = self.tss.TPM2B_DIGEST(hashlib.sha256(data).digest())
        signature = self._with_key(
            "TPM2_Sign", lambda esapi, handle: esapi.sign(handle, digest, scheme, self._validation)
        )
        if algorithm == "RS256":
            return bytes(signature.signature.rsassa.sig)
        raw = bytes(signature.signature.rsapss.sig)
        self._check_pss(raw, data)
        return raw

    def _check_pss(self, signature: bytes, data: bytes) -> None:
        # A verify costs ~0.05 ms next to a TPM command of milliseconds; a signature Entra would
        # reject must never reach a token request.
        key = self._cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        verdict = classify_pss(key, signature, data)
        if verdict == "hash":
            self._pss = "hash"
            return
        if verdict == "max":
            self._pss = "max"
            raise self._pss_refused(before=False)
        raise BadSignatureError(
            f"The TPM returned a PS256 signature for {self._subject} that does not verify under the key's "
            "certificate (neither with a 32-byte nor with the maximum salt).",
            remedy="Sign with RS256; if RS256 fails too, check the key with `entraclaw doctor`.",
            path=str(self.path),
            algorithm="PS256",
        )

    def _pss_refused(self, *, before: bool) -> PssSaltUnsupportedError:
        how = (
            "refused before signing: an earlier PS256 signature of this TPM used the maximum salt"
            if before
            else "its RSASSA-PSS signature used the maximum salt"
        )
        return PssSaltUnsupportedError(
            f"PS256 is not possible with the TPM key {self.path} ({self.tcti}): PS256 needs a 32-byte salt and this "
            f"TPM makes RSASSA-PSS signatures with the maximum salt ({how}).",
            remedy="Sign with RS256 (the default for client assertions) when the key is in this TPM.",
            path=str(self.path),
            algorithm="PS256",
        )

    @property
    def pss_salt_size(self) -> str:
        """``hash size``, ``maximum only`` or ``not yet seen`` (no PS256 signature made so far)."""
        return {"hash": "hash size", "max": "maximum only"}.get(self._pss or "", "not yet seen")

    # --- facts -----------------------------------------------------------------------------------

    def info(self, *, attest: bool = True, ak_public: bytes | None = None) -> Tpm2KeyInfo:
        """Where the key is and what the TPM says about it; ``attest`` has the TPM certify it with its AK."""
        from entraclaw.tpm2.attest import attest_key, unattested

        attributes = int(self._public.publicArea.objectAttributes)
        attestation = attest_key(self, ak_public=ak_public) if attest else unattested(attributes, "not requested")
        sign = bool(attributes & int(self.tss.TPMA_OBJECT.SIGN_ENCRYPT))
        decrypt = bool(attributes & int(self.tss.TPMA_OBJECT.DECRYPT))
        return Tpm2KeyInfo(
            path=self.path,
            tcti=self.tcti,
            provider=f"TPM 2.0 ({self.tcti})",
            key_length=int(self._public.publicArea.parameters.rsaDetail.keyBits),
            hardware=True,
            exportable=False,
            sign_only=sign and not decrypt,
            attributes=attributes,
            pss_salt_size=self.pss_salt_size,
            attestation=attestation,
        )

    # connection access for attest.py
    @property
    def connection(self) -> TpmConnection:
        return self._conn

    @property
    def public_area(self) -> Any:
        return self._public

    def close(self) -> None:
        with self._conn.lock:
            if self._closed:
                return
            self._closed = True
        self._finalizer()


def _bound(fn: Any, handle: Any) -> Any:
    return lambda esapi: fn(esapi, handle)


def _release(conn: TpmConnection, box: list[Any]) -> None:
    with conn.lock:
        handle, box[0] = box[0], None
        if handle is not None:
            conn.flush(handle)
        conn.close()


class Tpm2KeyHandle:
    """The reference a ``tpm2:<path>`` key resolves to: one cached :class:`Tpm2Signer` per handle."""

    __slots__ = ("_lock", "_signer", "path", "tcti")

    def __init__(self, path: str | Path, *, tcti: TctiSource | None = None) -> None:
        self.path = Path(path)
        self.tcti = tcti
        self._signer: Tpm2Signer | None = None
        self._lock = threading.Lock()

    def as_signer(self) -> Tpm2Signer:
        with self._lock:
            if self._signer is None or self._signer.closed:
                self._signer = Tpm2Signer(self.path, tcti=self.tcti)
            return self._signer

    def close(self) -> None:
        with self._lock:
            if self._signer is not None:
                self._signer.close()
                self._signer = None

    def __repr__(self) -> str:
        return f"Tpm2KeyHandle(path={str(self.path)!r})"
