"""Every status in the native table, injected through the stand-in, becomes the right typed error."""

from __future__ import annotations

import pickle

import pytest

from cng_helpers import FAST, HR, Standin, digest_hex, standin_fixture, verify  # noqa: F401  (fixture)
from entraclaw import cng, errors

pytestmark = [pytest.mark.standin, pytest.mark.native]

DATA = b"header.payload-that-is-secret-ish-assertion-input"

EXPECTED_CLASS = {
    "not_found": errors.CertificateNotFoundError,
    "key_missing": errors.KeyNotFoundError,
    "stale_handle": errors.KeyNotFoundError,
    "slots_exhausted": errors.KeySlotsExhaustedError,
    "locked_out": errors.TpmLockedOutError,
    "tpm_unavailable": errors.TpmUnavailableError,
    "user_interaction": errors.UserInteractionRequiredError,
    "access_denied": errors.AccessDeniedError,
    "auth_failed": errors.AccessDeniedError,
    "tpm_vulnerable": errors.TpmUnavailableError,
    "out_of_memory": errors.SigningError,
    "pss_unsupported": errors.PssSaltUnsupportedError,
    "unsupported": errors.SigningError,
    "transient": errors.TransientSigningError,
    "buffer_too_small": errors.SigningError,
    "invalid_data": errors.SigningError,
    "other": errors.SigningError,
}


def _rows() -> list[cng.StatusCode | None]:
    return list(cng.status_table()) or [None]  # one placeholder so the capability check runs


def _warm_signer(standin: Standin, kp, policy: cng.RetryPolicy = FAST, installed=None) -> cng.CngSigner:
    installed = installed or standin.add(kp)
    signer = cng.CngSigner(installed.thumbprint, retry_policy=policy)
    signer.sign(DATA)
    standin.reset_counters()
    return signer


def test_table_matches_sdk_values_and_is_consistent(standin: Standin) -> None:
    rows = cng.status_table()
    names = [r.name for r in rows]
    codes = [r.hresult for r in rows]
    assert len(set(names)) == len(names)
    assert len(set(codes)) == len(codes)
    for name, value in HR.items():
        assert name in names, f"{name} missing from the native status table"
        assert rows[names.index(name)].hresult == value, name
    for row in rows:
        assert row.category in cng.CATEGORY_ERRORS
        assert row.action in {"none", "reacquire", "retry", "resize"}
    by_action = {r.name: r.action for r in rows}
    assert {n for n, a in by_action.items() if a == "reacquire"} == {
        "NTE_BAD_KEYSET",
        "NTE_INVALID_HANDLE",
        "TPM_20_E_HANDLE",
        "TPM_E_PCP_KEY_HANDLE_INVALIDATED",
        "TPM_E_PCP_INVALID_HANDLE",
        "TPM_E_KEY_NOT_LOADED",
    }
    assert {n for n, a in by_action.items() if a == "resize"} == {"NTE_BUFFER_TOO_SMALL", "TPM_E_PCP_BUFFER_TOO_SMALL"}
    assert by_action["TPM_20_E_LOCKOUT"] == by_action["TPM_E_DEFEND_LOCK_RUNNING"] == "none"
    assert cng.format_hresult(0x8009000D) == "0x8009000D (NTE_NO_KEY)"


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r.name if r else "no-native")
def test_every_row_injected_maps_to_its_error(standin: Standin, keypair, row: cng.StatusCode | None) -> None:
    assert row is not None
    signer = _warm_signer(standin, keypair)
    # A code the core recovers from (re-acquire, retry, resize) must keep
    # failing to surface; the others fail on the first call.
    times = 1 if row.action == "none" else -1
    standin.fail("NCryptSignHash", row.hresult, times)
    with pytest.raises(errors.SigningError) as info:
        signer.sign(DATA)
    err = info.value
    assert type(err) is EXPECTED_CLASS[row.category]
    assert err.hresult == row.hresult
    assert err.hresult_name == row.name
    assert err.api == "NCryptSignHash"
    assert err.thumbprint == keypair.sha1
    assert err.system_message is None  # the stand-in has no message tables
    assert err.remedy
    text = str(err)
    assert f"0x{row.hresult:08X} ({row.name})" in text
    assert keypair.sha1 in text
    assert err.remedy in text
    # The signing input and its digest never leak into messages or reprs.
    for leak in (DATA.decode(), digest_hex(DATA)):
        assert leak not in text
        assert leak not in repr(err)
    if row.category == "transient":
        assert err.attempts == 2
        assert "after 2 attempts" in text
    # Still usable once the fault is gone (unless the key was re-opened into nothing).
    standin.clear_faults()
    verify(keypair, signer.sign(DATA), DATA)
    signer.close()


def test_error_survives_pickling(standin: Standin, keypair) -> None:
    signer = _warm_signer(standin, keypair)
    standin.fail("NCryptSignHash", HR["TBS_E_TOO_MANY_RESOURCES"], 1)
    with pytest.raises(errors.KeySlotsExhaustedError) as info:
        signer.sign(DATA)
    clone = pickle.loads(pickle.dumps(info.value))
    assert type(clone) is errors.KeySlotsExhaustedError
    assert clone.hresult == HR["TBS_E_TOO_MANY_RESOURCES"]
    assert clone.thumbprint == keypair.sha1
    assert "Remove stale entraclaw certificates" in str(clone)
    signer.close()


def test_transient_once_succeeds_after_one_retry(standin: Standin, keypair) -> None:
    signer = _warm_signer(standin, keypair, cng.RetryPolicy())  # the default: one retry after 100 ms
    standin.fail("NCryptSignHash", HR["TPM_E_RETRY"], 1)
    verify(keypair, signer.sign(DATA), DATA)
    assert standin.calls("NCryptSignHash") == 2
    signer.close()


def test_transient_always_gives_up_with_attempt_count(standin: Standin, keypair) -> None:
    signer = _warm_signer(standin, keypair, cng.RetryPolicy(attempts=4, initial_delay=0.0))
    standin.fail("NCryptSignHash", HR["TPM_20_E_RETRY"], -1)
    with pytest.raises(errors.TransientSigningError, match="after 4 attempts") as info:
        signer.sign(DATA)
    assert info.value.attempts == 4
    assert standin.calls("NCryptSignHash") == 4
    signer.close()


def test_retry_policy_can_be_changed_on_a_live_signer(standin: Standin, keypair) -> None:
    signer = _warm_signer(standin, keypair)
    signer.retry_policy = cng.RetryPolicy(attempts=1)
    standin.fail("NCryptSignHash", HR["TPM_E_DOING_SELFTEST"], 1)
    with pytest.raises(errors.TransientSigningError, match="after 1 attempt\\."):
        signer.sign(DATA)
    assert standin.calls("NCryptSignHash") == 1
    signer.close()


@pytest.mark.parametrize("name", ["TPM_20_E_LOCKOUT", "TPM_E_DEFEND_LOCK_RUNNING"])
def test_lockout_is_never_retried(standin: Standin, keypair, name: str) -> None:
    signer = _warm_signer(standin, keypair, cng.RetryPolicy(attempts=5, initial_delay=0.0))
    standin.fail("NCryptSignHash", HR[name], -1)
    with pytest.raises(errors.TpmLockedOutError, match="Clear-TpmLockout"):
        signer.sign(DATA)
    assert standin.calls("NCryptSignHash") == 1
    signer.close()


@pytest.mark.parametrize(
    "name",
    ["NTE_BAD_KEYSET", "NTE_INVALID_HANDLE", "TPM_20_E_HANDLE", "TPM_E_PCP_INVALID_HANDLE", "TPM_E_KEY_NOT_LOADED"],
)
def test_stale_handle_once_reacquires_then_succeeds(standin: Standin, keypair, name: str) -> None:
    signer = _warm_signer(standin, keypair)
    standin.fail("NCryptSignHash", HR[name], 1)
    verify(keypair, signer.sign(DATA), DATA)
    assert standin.calls("CryptAcquireCertificatePrivateKey") == 1
    assert standin.calls("CertFindCertificateInStore") == 1
    assert standin.calls("NCryptFreeObject") == 1  # the stale key handle was released
    assert standin.calls("CertOpenStore") == 0  # the store handle stayed open
    # Back on the warm path afterwards.
    standin.reset_counters()
    signer.sign(DATA)
    assert standin.total_calls() == 1
    signer.close()
    assert standin.open_handles() == 0
    assert standin.invalid_frees() == 0


def test_stale_handle_twice_fails_after_one_reacquire(standin: Standin, keypair) -> None:
    signer = _warm_signer(standin, keypair)
    standin.fail("NCryptSignHash", HR["NTE_BAD_KEYSET"], 2)
    with pytest.raises(errors.KeyNotFoundError, match="re-opened once") as info:
        signer.sign(DATA)
    assert info.value.api == "NCryptSignHash"
    assert "deploy-windows.ps1" in str(info.value)
    assert standin.calls("CryptAcquireCertificatePrivateKey") == 1
    signer.close()


@pytest.mark.parametrize("name", ["NTE_BUFFER_TOO_SMALL", "TPM_E_PCP_BUFFER_TOO_SMALL"])
def test_buffer_too_small_resizes(standin: Standin, keypair, name: str) -> None:
    signer = _warm_signer(standin, keypair)
    standin.fail("NCryptSignHash", HR[name], 1)
    verify(keypair, signer.sign(DATA, "PS256"), DATA, "PS256")
    assert standin.calls("NCryptSignHash") == 3  # failed sign, size query, sign
    signer.close()


def test_certificate_not_found(standin: Standin, keypair, other_keypair) -> None:
    standin.add(keypair)
    with pytest.raises(errors.CertificateNotFoundError) as info:
        cng.CngSigner(other_keypair.sha1)
    err = info.value
    assert err.api == "CertFindCertificateInStore"
    assert err.hresult == HR["CRYPT_E_NOT_FOUND"]
    assert err.thumbprint == other_keypair.sha1
    assert f"certificate {other_keypair.sha1} in CurrentUser\\My" in str(err)
    assert "certutil" in str(err)
    assert standin.open_handles() == 0  # the store opened for the search was closed


def test_key_deleted_out_of_band(standin: Standin, keypair) -> None:
    installed = standin.add(keypair)
    signer = _warm_signer(standin, keypair, installed=installed)
    assert standin.remove_key(installed.provider, installed.container)
    with pytest.raises(errors.KeyNotFoundError) as info:
        signer.sign(DATA)
    err = info.value
    assert err.api == "CryptAcquireCertificatePrivateKey"
    assert err.hresult_name == "NTE_BAD_KEYSET"
    assert "deploy-windows.ps1" in str(err)
    signer.close()
    assert standin.open_handles() == 0
    assert standin.invalid_frees() == 0


def test_certificate_without_key_link(standin: Standin, keypair) -> None:
    installed = standin.add(keypair, with_key=False)
    with pytest.raises(errors.KeyNotFoundError) as info:
        cng.CngSigner(installed.thumbprint)
    assert info.value.hresult_name == "CRYPT_E_NO_KEY_PROPERTY"
    assert standin.open_handles() == 0


def test_open_retries_transient_acquire(standin: Standin, keypair) -> None:
    installed = standin.add(keypair)
    standin.fail("CryptAcquireCertificatePrivateKey", HR["TBS_E_SERVICE_START_PENDING"], 1)
    signer = cng.CngSigner(installed.thumbprint, retry_policy=FAST)
    verify(keypair, signer.sign(DATA), DATA)
    assert standin.calls("CryptAcquireCertificatePrivateKey") == 2
    signer.close()


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("TBS_E_TPM_NOT_FOUND", errors.TpmUnavailableError),
        ("NTE_SILENT_CONTEXT", errors.UserInteractionRequiredError),
        ("NTE_PERM", errors.AccessDeniedError),
    ],
)
def test_open_failures_are_typed(standin: Standin, keypair, name: str, cls: type) -> None:
    installed = standin.add(keypair)
    standin.fail("CryptAcquireCertificatePrivateKey", HR[name], 1)
    with pytest.raises(cls) as info:
        cng.CngSigner(installed.thumbprint)
    assert info.value.api == "CryptAcquireCertificatePrivateKey"
    assert standin.open_handles() == 0


def test_store_open_failure(standin: Standin, keypair) -> None:
    standin.fail("CertOpenStore", HR["E_ACCESSDENIED"], 1)
    with pytest.raises(errors.AccessDeniedError) as info:
        cng.CngSigner(keypair.sha1, "LocalMachine")
    assert info.value.api == "CertOpenStore"
    assert "LocalMachine" in str(info.value)


def test_unknown_status_is_generic_signing_error(standin: Standin, keypair) -> None:
    signer = _warm_signer(standin, keypair)
    standin.fail("NCryptSignHash", 0x80091234, 1)
    with pytest.raises(errors.SigningError) as info:
        signer.sign(DATA)
    assert type(info.value) is errors.SigningError
    assert "0x80091234" in str(info.value)
    assert info.value.hresult_name is None
    signer.close()


def test_malformed_thumbprint_is_rejected_before_any_call(standin: Standin) -> None:
    with pytest.raises(errors.InvalidThumbprintError):
        cng.CngSigner("not-a-thumbprint")
    with pytest.raises(errors.ConfigurationError):
        cng.CngSigner("A" * 40, "SomewhereElse")
    assert standin.total_calls() == 0


def test_bad_retry_policy() -> None:
    with pytest.raises(errors.ConfigurationError):
        cng.RetryPolicy(attempts=0)
    with pytest.raises(errors.ConfigurationError):
        cng.RetryPolicy(multiplier=0.5)
