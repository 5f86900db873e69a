"""Handle lifetime, key provisioning and DPAPI against the stand-in."""

from __future__ import annotations

import datetime as dt
import gc

import pytest
from cryptography.hazmat.primitives import hashes

from cng_helpers import HR, PLATFORM, SOFTWARE, Standin, standin_fixture, verify  # noqa: F401  (fixture)
from entraclaw import cng, errors

pytestmark = [pytest.mark.standin, pytest.mark.native]

DATA = b"lifecycle.signing-input"


# --- handles --------------------------------------------------------------------------


def test_close_frees_every_handle_and_is_idempotent(standin: Standin, keypair) -> None:
    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    signer.sign(DATA)
    assert standin.open_handles("store") == 1
    assert standin.open_handles("certificate") == 1
    assert standin.open_handles("key") == 1
    signer.close()
    signer.close()
    assert signer.closed
    assert standin.open_handles() == 0
    assert standin.invalid_frees() == 0
    assert standin.calls("NCryptFreeObject") == 1
    assert standin.calls("CertFreeCertificateContext") == 1
    assert standin.calls("CertCloseStore") == 1


def test_use_after_close_is_a_clear_error(standin: Standin, keypair) -> None:
    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    signer.close()
    calls = standin.total_calls()
    with pytest.raises(errors.SigningError, match="was closed") as info:
        signer.sign(DATA)
    assert info.value.thumbprint == keypair.sha1
    assert "as_signer()" in str(info.value)
    with pytest.raises(errors.SigningError, match="was closed"):
        signer.info()
    assert standin.total_calls() == calls  # nothing reached the (freed) handles


def test_garbage_collection_frees_handles_exactly_once(standin: Standin, keypair) -> None:
    installed = standin.add(keypair)
    for _ in range(5):
        signer = cng.CngSigner(installed.thumbprint)
        signer.sign(DATA)
        del signer
    handle = cng.CngKeyHandle(installed.thumbprint)
    handle.as_signer().sign(DATA)
    del handle
    gc.collect()
    assert standin.open_handles() == 0
    assert standin.invalid_frees() == 0
    assert standin.calls("CertCloseStore") == 6
    assert standin.calls("NCryptFreeObject") == 6


def test_key_owned_by_certificate_context_is_not_freed_by_us(standin: Standin, keypair) -> None:
    # pfCallerFreeProv == FALSE: the key dies with the certificate context;
    # freeing it as well would be a double free (counted by the stand-in).
    standin.set_caller_frees_key(False)
    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    verify(keypair, signer.sign(DATA), DATA)
    signer.close()
    assert standin.calls("NCryptFreeObject") == 0
    assert standin.open_handles() == 0
    assert standin.invalid_frees() == 0


def test_reacquire_with_context_owned_key(standin: Standin, keypair) -> None:
    standin.set_caller_frees_key(False)
    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    signer.sign(DATA)
    standin.fail("NCryptSignHash", HR["NTE_INVALID_HANDLE"], 1)
    verify(keypair, signer.sign(DATA), DATA)
    signer.close()
    assert standin.calls("NCryptFreeObject") == 0
    assert standin.open_handles() == 0
    assert standin.invalid_frees() == 0


# --- provisioning -------------------------------------------------------------------


def test_create_certificate_in_tpm(standin: Standin) -> None:
    made = cng.create_certificate("entraclaw-blueprint-app1")
    assert made.provider == PLATFORM
    assert made.hardware is True
    assert made.tpm_fallback_reason is None
    assert standin.key_exists(PLATFORM, made.container)
    signer = cng.CngSigner(made.thumbprint)
    info = signer.info()
    assert info.hardware is True
    assert info.exportable is False
    verify(made.certificate, signer.sign(DATA), DATA)
    signer.close()
    assert standin.open_handles() == 0


def test_tpm_unavailable_falls_back_to_non_exportable_software_key(standin: Standin) -> None:
    standin.set_provider_status(PLATFORM, HR["TBS_E_TPM_NOT_FOUND"])
    made = cng.create_certificate("entraclaw-blueprint-app2", days=30)
    assert made.provider == SOFTWARE
    assert made.hardware is False
    assert made.tpm_fallback_reason is not None
    assert "TBS_E_TPM_NOT_FOUND" in made.tpm_fallback_reason
    cert = made.certificate
    assert cert.subject.rfc4514_string() == "CN=entraclaw-blueprint-app2"
    assert cert.issuer == cert.subject
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == dt.timedelta(days=30)
    assert abs(cert.not_valid_before_utc - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=10)
    # The software KSP's own default would be exportable: the explicit 0 policy matters.
    signer = cng.CngSigner(made.thumbprint)
    info = signer.info()
    assert info.provider == SOFTWARE
    assert info.exportable is False
    assert info.key_length == 2048
    for alg in ("RS256", "PS256"):
        verify(cert, signer.sign(DATA, alg), DATA, alg)  # type: ignore[arg-type]
    signer.close()
    assert standin.open_handles() == 0


def test_tpm_finalize_failure_falls_back_without_leaking_a_tpm_key(standin: Standin) -> None:
    standin.fail("NCryptFinalizeKey", HR["TPM_20_E_OBJECT_MEMORY"], 1)
    made = cng.create_certificate("entraclaw-blueprint-app3")
    assert made.provider == SOFTWARE
    assert "TPM_20_E_OBJECT_MEMORY" in (made.tpm_fallback_reason or "")
    assert not standin.key_exists(PLATFORM, made.container)
    assert standin.key_exists(SOFTWARE, made.container)
    assert standin.open_handles() == 0


def test_tpm_only_fails_typed_when_tpm_is_missing(standin: Standin) -> None:
    standin.set_provider_status(PLATFORM, HR["TBS_E_TPM_NOT_FOUND"])
    with pytest.raises(errors.TpmUnavailableError) as info:
        cng.create_certificate("entraclaw-blueprint-app4", provider="tpm")
    assert info.value.api == "NCryptOpenStorageProvider"
    assert "CN=entraclaw-blueprint-app4" in str(info.value)
    assert standin.certificate_count("CurrentUser") == 0


def test_failure_after_key_creation_deletes_the_key(standin: Standin) -> None:
    standin.fail("CertAddCertificateContextToStore", HR["E_ACCESSDENIED"], 1)
    with pytest.raises(errors.AccessDeniedError) as info:
        cng.create_certificate("entraclaw-blueprint-app5", provider="software")
    assert info.value.api == "CertAddCertificateContextToStore"
    assert standin.calls("NCryptDeleteKey") == 1
    assert standin.certificate_count("CurrentUser") == 0
    assert standin.open_handles() == 0


def test_bad_subject_is_rejected(standin: Standin) -> None:
    with pytest.raises(errors.ConfigurationError):
        cng.create_certificate('evil",CN=other')
    assert standin.total_calls() == 0


def test_list_by_subject_prefix_and_delete_with_key(standin: Standin, keypair, other_keypair) -> None:
    a = cng.create_certificate("entraclaw-blueprint-one", provider="software")
    b = cng.create_certificate("entraclaw-blueprint-two", provider="software")
    standin.add(keypair)  # CN=entraclaw-test-a: outside the prefix below
    listed = cng.list_certificates("entraclaw-blueprint-")
    assert sorted(c.thumbprint for c in listed) == sorted([a.thumbprint, b.thumbprint])
    one = next(c for c in listed if c.thumbprint == a.thumbprint)
    assert one.subject == "entraclaw-blueprint-one"
    assert one.has_key_link
    assert one.provider == SOFTWARE
    assert one.container == a.container
    assert one.certificate == a.certificate
    assert len(cng.list_certificates("entraclaw-")) == 3
    assert cng.list_certificates("nothing-") == []

    assert cng.delete_certificate(a.thumbprint) is True
    assert not standin.key_exists(SOFTWARE, a.container)
    assert [c.thumbprint for c in cng.list_certificates("entraclaw-blueprint-")] == [b.thumbprint]
    with pytest.raises(errors.CertificateNotFoundError):
        cng.CngSigner(a.thumbprint)
    with pytest.raises(errors.CertificateNotFoundError) as info:
        cng.delete_certificate(a.thumbprint)
    assert info.value.thumbprint == a.thumbprint
    assert standin.open_handles() == 0


def test_delete_certificate_whose_key_is_already_gone(standin: Standin) -> None:
    made = cng.create_certificate("entraclaw-blueprint-gone", provider="software")
    standin.remove_key(SOFTWARE, made.container)
    assert cng.delete_certificate(made.thumbprint) is False
    assert cng.list_certificates("entraclaw-blueprint-gone") == []


def test_delete_certificate_keep_key(standin: Standin) -> None:
    made = cng.create_certificate("entraclaw-blueprint-keep", provider="software")
    assert cng.delete_certificate(made.thumbprint, delete_key=False) is False
    assert standin.key_exists(SOFTWARE, made.container)


# --- DPAPI ---------------------------------------------------------------------------

SECRET = b"refresh-token-0123456789-very-secret"


def test_dpapi_round_trip(standin: Standin) -> None:
    blob = cng.protect(SECRET, entropy=b"entraclaw:token-cache", description="entraclaw token cache")
    assert SECRET not in blob
    assert cng.unprotect(blob, entropy=b"entraclaw:token-cache") == SECRET
    assert cng.unprotect(cng.protect(b"")) == b""
    assert standin.open_handles("local") == 0  # every LocalAlloc'd output was LocalFree'd
    assert standin.invalid_frees() == 0


def test_dpapi_wrong_entropy(standin: Standin) -> None:
    blob = cng.protect(SECRET, entropy=b"right")
    with pytest.raises(errors.KeystoreError) as info:
        cng.unprotect(blob, entropy=b"wrong")
    err = info.value
    assert err.hresult == HR["ERROR_INVALID_DATA"]
    assert err.hresult_name == "ERROR_INVALID_DATA"
    assert err.api == "CryptUnprotectData"
    assert "other entropy" in str(err)
    for text in (str(err), repr(err)):
        assert SECRET.decode() not in text
        assert "right" not in text and "wrong" not in text
    with pytest.raises(errors.KeystoreError):
        cng.unprotect(blob)  # no entropy at all


@pytest.mark.parametrize("where", [0, 25, -1])
def test_dpapi_tampered_blob(standin: Standin, where: int) -> None:
    blob = bytearray(cng.protect(SECRET))
    blob[where] ^= 0x01
    with pytest.raises(errors.KeystoreError) as info:
        cng.unprotect(bytes(blob))
    assert info.value.hresult_name == "ERROR_INVALID_DATA"
    assert standin.open_handles("local") == 0


def test_dpapi_truncated_blob(standin: Standin) -> None:
    with pytest.raises(errors.KeystoreError):
        cng.unprotect(cng.protect(SECRET)[:10])
