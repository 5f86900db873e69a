"""Real CNG on Windows: software KSP always, TPM when present. Skipped elsewhere.

These create certificates in CurrentUser\\My with a unique subject and delete
them (and their keys) afterwards, whatever happens.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import uuid
from collections.abc import Iterator

import jwt
import pytest

from capabilities import require
from cng_helpers import verify
from entraclaw import cng, errors
from entraclaw.attestation import assess, attestation_summary, parse_key_claim
from entraclaw.auth import build_client_assertion

DATA = b"windows.signing-input"
ON_WINDOWS = sys.platform == "win32"


def _require_windows() -> None:
    require("windows", ON_WINDOWS and cng.backend() == "cng", "needs Windows with the compiled entraclaw._cng")


@pytest.fixture
def prefix() -> Iterator[str]:
    _require_windows()
    name = f"entraclaw-pytest-{uuid.uuid4().hex[:12]}-"
    yield name
    for cert in cng.list_certificates(name):
        cng.delete_certificate(cert.thumbprint)


def _delete_key_out_of_band(provider: str, container: str) -> None:
    # Test-only ctypes: plays the admin who removes the key with certutil.
    ncrypt = ctypes.WinDLL("ncrypt")  # type: ignore[attr-defined]
    prov = ctypes.c_size_t(0)
    key = ctypes.c_size_t(0)
    assert ncrypt.NCryptOpenStorageProvider(ctypes.byref(prov), ctypes.c_wchar_p(provider), 0) == 0
    try:
        assert ncrypt.NCryptOpenKey(prov, ctypes.byref(key), ctypes.c_wchar_p(container), 0, 0) == 0
        assert ncrypt.NCryptDeleteKey(key, 0) == 0
    finally:
        ncrypt.NCryptFreeObject(prov)


@pytest.mark.windows
def test_software_ksp_sign_verify_and_cleanup(prefix: str) -> None:
    made = cng.create_certificate(prefix + "sw", provider="software")
    assert made.provider == "Microsoft Software Key Storage Provider"
    signer = cng.CngSigner(made.thumbprint)
    info = signer.info()
    assert info.hardware is False
    assert info.exportable is False
    assert info.key_length == 2048
    assert info.key_usage == cng.NCRYPT_ALLOW_SIGNING_FLAG
    for alg in ("RS256", "PS256"):
        verify(made.certificate, signer.sign(DATA, alg), DATA, alg)  # type: ignore[arg-type]
    endpoint = "https://login.microsoftonline.com/t/oauth2/v2.0/token"
    token = build_client_assertion(
        private_key_pem=cng.CngKeyHandle(made.thumbprint),
        cert_thumbprint=made.x5t_s256,
        client_id="11111111-2222-3333-4444-555555555555",
        token_endpoint=endpoint,
    )
    jwt.decode(token, key=made.certificate.public_key(), algorithms=["RS256"], audience=endpoint)
    assert [c.thumbprint for c in cng.list_certificates(prefix)] == [made.thumbprint]
    signer.close()
    assert cng.delete_certificate(made.thumbprint) is True
    assert cng.list_certificates(prefix) == []
    with pytest.raises(errors.CertificateNotFoundError):
        cng.CngSigner(made.thumbprint)


@pytest.mark.windows
def test_deleted_key_is_nte_bad_keyset(prefix: str) -> None:
    made = cng.create_certificate(prefix + "gone", provider="software")
    signer = cng.CngSigner(made.thumbprint)
    signer.sign(DATA)
    _delete_key_out_of_band(made.provider, made.container)
    # An open handle may outlive the key on Windows; either outcome is fine here.
    with contextlib.suppress(errors.KeyNotFoundError):
        signer.sign(DATA)
    signer.close()
    with pytest.raises(errors.KeyNotFoundError) as info:
        cng.CngSigner(made.thumbprint)
    err = info.value
    assert err.hresult_name in {"NTE_BAD_KEYSET", "NTE_NO_KEY"}
    assert err.api == "CryptAcquireCertificatePrivateKey"
    assert err.system_message  # FormatMessage text from Windows
    assert made.thumbprint in str(err)


@pytest.mark.windows
def test_dpapi_on_windows() -> None:
    _require_windows()
    blob = cng.protect(b"secret", entropy=b"e", description="entraclaw test")
    assert cng.unprotect(blob, entropy=b"e") == b"secret"
    with pytest.raises(errors.KeystoreError) as info:
        cng.unprotect(blob, entropy=b"x")
    assert info.value.hresult is not None


def create_tpm_certificate_or_skip(prefix: str) -> cng.ProvisionedCertificate:
    """A TPM key, or a skip when (and only when) there is no usable TPM.

    Any other SigningError (lockout, a PCP status the table does not know, a
    bad signature) is the hardware misbehaving: the test must fail on it.
    """
    try:
        return cng.create_certificate(prefix + "tpm", provider="tpm")
    except errors.TpmUnavailableError as exc:
        require("windows_tpm", False, f"no usable TPM: {exc}")
        raise


@pytest.mark.windows_tpm
def test_tpm_key_signs_and_is_hardware(prefix: str) -> None:
    made = create_tpm_certificate_or_skip(prefix)
    assert made.hardware is True
    signer = cng.CngSigner(made.thumbprint)
    info = signer.info()
    # The property that matters is the implementation type; `exportable` is
    # derived from it (PCP may report export bits for keys it cannot export).
    assert info.hardware is True
    assert info.provider == "Microsoft Platform Crypto Provider"
    assert info.exportable is False
    verify(made.certificate, signer.sign(DATA, "RS256"), DATA, "RS256")
    if info.pss_salt_size == "hash size":
        verify(made.certificate, signer.sign(DATA, "PS256"), DATA, "PS256")
    else:
        with pytest.raises(errors.PssSaltUnsupportedError):
            signer.sign(DATA, "PS256")
    signer.close()
    assert cng.delete_certificate(made.thumbprint) is True


@pytest.mark.windows_tpm
def test_tpm_reports_pss_salt_size(prefix: str) -> None:
    made = create_tpm_certificate_or_skip(prefix)
    signer = cng.CngSigner(made.thumbprint)
    info = signer.info()
    # Windows 10 1809+ PCP answers "PSS Salt Size"; "unknown" here means the
    # property was not readable, which on a current Windows is a failure.
    assert info.pss_salt_size in {"hash size", "maximum only"}, info.pss_salt_size
    signer.close()


@pytest.mark.windows_tpm
def test_tpm_attestation_is_readable(prefix: str) -> None:
    made = create_tpm_certificate_or_skip(prefix)
    signer = cng.CngSigner(made.thumbprint)
    aik = os.environ.get("ENTRACLAW_TEST_AIK")  # an AIK container in PCP, when the runner has one
    # The AIK's TPM2B_PUBLIC as the relying party enrolled it (hex), when known.
    aik_public_hex = os.environ.get("ENTRACLAW_TEST_AIK_TPM2B_PUBLIC")
    aik_public = bytes.fromhex(aik_public_hex) if aik_public_hex else None
    nonce = os.urandom(32)
    info = signer.info(aik=aik, nonce=nonce)
    att = assess(info, aik_public=aik_public)
    assert att.hardware is True
    assert att.platform_type is not None and "TPM-Version:2.0" in att.platform_type
    summary = attestation_summary(info, aik_public=aik_public)
    assert summary.startswith("TPM-backed, non-exportable")
    if aik:
        # The claim must parse and be about this key (fixedTPM etc. from the TPM itself).
        assert att.attributes is not None, att.problems
        assert att.attributes.non_exportable
        assert att.attributes.sign
        assert att.attributes.sign_only  # the usage set at creation reached the TPM object
        claim = parse_key_claim(info.evidence.claim or b"")
        # NCRYPTBUFFER_CLAIM_KEYATTESTATION_NONCE (49): if this fails, PCP ignores the nonce for this claim type
        # and a relying party must use its own challenge path (docs/attestation.md).
        assert claim.attest.extra_data == nonce, "PCP did not put the nonce into extraData"
        if aik_public is not None:
            assert att.signature_verified and att.nonce_verified, att.problems
    signer.close()


@pytest.mark.windows_tpm
def test_tpm_key_is_created_sign_only(prefix: str) -> None:
    made = create_tpm_certificate_or_skip(prefix)
    signer = cng.CngSigner(made.thumbprint)
    info = signer.info()
    # PCP must accept NCRYPT_KEY_USAGE_PROPERTY before finalize and report it
    # back; None (not reported) or any other bit is a failure, not a skip.
    assert info.key_usage == cng.NCRYPT_ALLOW_SIGNING_FLAG, info.key_usage
    assert info.sign_only is True
    assert info.key_usages == ("sign",)
    verify(made.certificate, signer.sign(DATA, "RS256"), DATA, "RS256")
    assert "sign-only" in attestation_summary(info)
    signer.close()
    assert cng.delete_certificate(made.thumbprint) is True


@pytest.mark.windows_tpm
def test_auto_prefers_tpm(prefix: str) -> None:
    made = cng.create_certificate(prefix + "auto")
    if not made.hardware:
        # Only a missing/unready TPM is a reason to skip; any other fallback is the hardware misbehaving.
        rows = {row.hresult: row.category for row in cng.status_table()}
        category = rows.get(made.tpm_fallback_hresult or 0, "other")
        require("windows_tpm", category != "tpm_unavailable", f"no usable TPM: {made.tpm_fallback_reason}")
        pytest.fail(f"auto fell back to software although a TPM is there: {made.tpm_fallback_reason}")
    assert made.tpm_fallback_reason is None


@pytest.mark.windows
def test_machine_key_for_network_service_only(prefix: str) -> None:
    """`setup --machine`'s native part on real Windows (the runners are elevated, as setup --machine
    must be): a machine key in LocalMachine\\My, its DACL replaced by one grant to NETWORK SERVICE,
    read back through NCRYPT_SECURITY_DESCR_PROPERTY; this account can then no longer open it."""
    from entraclaw.machine import lookup_account
    from entraclaw.platform import winacl

    made = cng.create_certificate(prefix + "machine", provider="software", location="LocalMachine")
    me = winacl.current_account()
    signer = cng.CngSigner(made.thumbprint, "LocalMachine")
    try:
        verify(made.certificate, signer.sign(DATA), DATA)
        granted = signer.restrict_access("NetworkService")
        assert granted.sid == "S-1-5-20" == lookup_account("NT AUTHORITY\\NETWORK SERVICE").sid
        access = signer.key_access()
        assert access.only("S-1-5-20"), access
        with pytest.raises(errors.SigningError):
            cng.CngSigner(made.thumbprint, "LocalMachine")  # this (admin) account is not granted any more
    finally:
        # The owner keeps WRITE_DAC: give the key back to this account so it can be deleted.
        with contextlib.suppress(errors.EntraclawError):
            signer.restrict_access(me.name or me.sid)
        signer.close()
        cng.delete_certificate(made.thumbprint, "LocalMachine")
