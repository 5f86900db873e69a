"""Issue 8: the signer against a stand-in that behaves like a TPM behind the Platform Crypto Provider.

Each test names the issue item it covers. The stand-in models: per-key
hardware flag, the "PSS Salt Size" property and a max-salt-only TPM, keys with
a UI policy, cached certificate stores, overlapping signatures per key,
NCryptDeleteKey freeing its handle even on failure, legacy (CAPI) key links,
and key-creation faults.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cng_helpers import FAST, HR, PLATFORM, SOFTWARE, Standin, standin_fixture, verify  # noqa: F401  (fixture)
from entraclaw import cng, errors

pytestmark = [pytest.mark.standin, pytest.mark.native]

DATA = b"tpm.signing-input"
ROOT = Path(__file__).resolve().parent.parent

# Values from the Windows SDK winerror.h (the native table static_asserts them
# where the SDK header defines them).
NEW = {
    "TPM_E_PCP_UNSUPPORTED_PSS_SALT": (0x40290423, "pss_unsupported", "none"),
    "TPM_E_PCP_KEY_HANDLE_INVALIDATED": (0x80290422, "stale_handle", "reacquire"),
    "TPM_E_LOCKED_OUT": (0x8029041B, "locked_out", "none"),
    "TPM_E_PCP_AUTHENTICATION_IGNORED": (0x80290409, "locked_out", "none"),
    "TPM_E_PCP_DEVICE_NOT_READY": (0x80290401, "tpm_unavailable", "none"),
    "TPM_E_PCP_AUTHENTICATION_FAILED": (0x80290408, "auth_failed", "none"),
    "TPM_20_E_AUTH_FAIL": (0x8028008E, "auth_failed", "none"),
    "TPM_20_E_BAD_AUTH": (0x802800A2, "auth_failed", "none"),
    "TPM_E_PCP_IFX_RSA_KEY_CREATION_BLOCKED": (0x8029041F, "tpm_vulnerable", "none"),
    "TPM_20_E_NV_RATE": (0x80280920, "transient", "retry"),
    "TPM_20_E_CANCELED": (0x80280909, "transient", "retry"),
    "TBS_E_COMMAND_CANCELED": (0x8028400D, "transient", "retry"),
    "TPM_20_E_KEY_SIZE": (0x80280087, "unsupported", "none"),
}
SALT_UNKNOWN, SALT_MAXIMUM, SALT_HASHSIZE = 0, 1, 2
AT_KEYEXCHANGE, AT_SIGNATURE, PROV_RSA_FULL = 1, 2, 1


def _rows() -> dict[str, cng.StatusCode]:
    return {row.name: row for row in cng.status_table()}


def _hardware(standin: Standin, kp, **options: int):
    installed = standin.add(kp, provider=PLATFORM)
    for name, value in options.items():
        standin.set_key_option(installed.provider, installed.container, name, value)
    return installed


# --- item 1: PS256 on a TPM ----------------------------------------------------------


@pytest.mark.parametrize("salt", [SALT_MAXIMUM, SALT_UNKNOWN])
def test_ps256_refused_up_front_unless_salt_is_hash_size(standin: Standin, keypair, salt: int) -> None:
    installed = _hardware(standin, keypair, pss_salt=salt)
    signer = cng.CngSigner(installed.thumbprint)
    verify(keypair, signer.sign(DATA, "RS256"), DATA)
    standin.reset_counters()
    with pytest.raises(errors.PssSaltUnsupportedError) as info:
        signer.sign(DATA, "PS256")
    assert standin.calls("NCryptSignHash") == 0  # refused before the TPM saw anything
    text = str(info.value)
    assert "RS256" in text
    assert keypair.sha1 in text
    assert info.value.thumbprint == keypair.sha1
    signer.close()


def test_max_salt_tpm_status_is_typed(standin: Standin, keypair) -> None:
    # A TPM whose property claims hash-size salt but still refuses (firmware mismatch).
    installed = _hardware(standin, keypair)
    signer = cng.CngSigner(installed.thumbprint)
    standin.fail("NCryptSignHash", 0x40290423, 1)
    with pytest.raises(errors.PssSaltUnsupportedError) as info:
        signer.sign(DATA, "PS256")
    assert info.value.hresult == 0x40290423
    assert info.value.hresult_name == "TPM_E_PCP_UNSUPPORTED_PSS_SALT"
    signer.close()


def test_all_zero_pss_signature_from_hardware_is_an_error_not_a_token(standin: Standin, keypair) -> None:
    installed = _hardware(standin, keypair)
    signer = cng.CngSigner(installed.thumbprint)
    verify(keypair, signer.sign(DATA, "PS256"), DATA, "PS256")
    standin.set_null_signature(True)  # the device hands back zeros
    with pytest.raises(errors.BadSignatureError) as info:
        signer.sign(DATA, "PS256")
    assert "RS256" in str(info.value)
    assert info.value.thumbprint == keypair.sha1
    signer.close()


# --- follow-up: "PSS Salt Size" from the provider when the key does not answer ------------


@pytest.mark.parametrize(
    ("provider_salt", "accepted", "reported"),
    [
        (SALT_HASHSIZE, True, "hash size"),
        (SALT_MAXIMUM, False, "maximum only"),
        (SALT_UNKNOWN, False, "unknown"),
        (None, False, "unknown"),  # neither key nor provider answers
    ],
)
def test_pss_salt_size_from_the_provider_decides_ps256(
    standin: Standin, keypair, provider_salt: int | None, accepted: bool, reported: str
) -> None:
    # The TPM behind this key could make hash-size salts; only the provider's
    # answer says so, because the key handle does not answer the property.
    installed = _hardware(standin, keypair, pss_salt_on_key=0)
    if provider_salt is not None:
        standin.set_provider_pss_salt(provider_salt)
    signer = cng.CngSigner(installed.thumbprint)
    standin.reset_counters()
    if accepted:
        verify(keypair, signer.sign(DATA, "PS256"), DATA, "PS256")
        assert standin.calls("NCryptSignHash") >= 1
    else:
        with pytest.raises(errors.PssSaltUnsupportedError):
            signer.sign(DATA, "PS256")
        assert standin.calls("NCryptSignHash") == 0  # refused before the TPM saw anything
    assert signer.info().pss_salt_size == reported
    signer.close()
    assert standin.open_handles("provider") == 0  # the fallback frees the provider handle it opened


def test_pss_salt_size_on_the_key_wins_over_the_provider(standin: Standin, keypair) -> None:
    installed = _hardware(standin, keypair, pss_salt=SALT_HASHSIZE)
    standin.set_provider_pss_salt(SALT_MAXIMUM)
    signer = cng.CngSigner(installed.thumbprint)
    verify(keypair, signer.sign(DATA, "PS256"), DATA, "PS256")
    assert signer.info().pss_salt_size == "hash size"
    signer.close()


# --- item 2 and 3: the status table -------------------------------------------------


def test_pcp_codes_are_in_the_table_and_classified() -> None:
    rows = _rows()
    assert rows, "no native table"
    for name, (value, category, action) in NEW.items():
        assert name in rows, f"{name} missing"
        row = rows[name]
        assert (row.hresult, row.category, row.action) == (value, category, action), name
    assert cng.format_hresult(0x40290423) == "0x40290423 (TPM_E_PCP_UNSUPPORTED_PSS_SALT)"


def test_misclassified_rows_fixed() -> None:
    rows = _rows()
    assert (rows["NTE_BAD_HASH_STATE"].category, rows["NTE_BAD_HASH_STATE"].action) == ("other", "none")
    assert (rows["NTE_DEVICE_NOT_READY"].category, rows["NTE_DEVICE_NOT_READY"].action) == ("tpm_unavailable", "none")
    assert rows["NTE_NO_MEMORY"].category == "out_of_memory"
    retried = {name for name, row in rows.items() if row.action == "retry"}
    assert retried == {
        "TPM_E_RETRY",
        "TPM_20_E_RETRY",
        "TPM_20_E_YIELDED",
        "TPM_20_E_TESTING",
        "TPM_E_DOING_SELFTEST",
        "TBS_E_SERVICE_START_PENDING",
        "STATUS_UNSUCCESSFUL",
        "TPM_20_E_NV_RATE",
        "TPM_20_E_CANCELED",
        "TBS_E_COMMAND_CANCELED",
    }


@pytest.mark.parametrize(
    ("name", "cls", "calls"),
    [
        ("NTE_BAD_HASH_STATE", errors.SigningError, 1),
        ("NTE_DEVICE_NOT_READY", errors.TpmUnavailableError, 1),
        ("TPM_E_PCP_DEVICE_NOT_READY", errors.TpmUnavailableError, 1),
        ("TPM_E_LOCKED_OUT", errors.TpmLockedOutError, 1),
        ("TPM_E_PCP_AUTHENTICATION_FAILED", errors.AccessDeniedError, 1),
        ("TPM_20_E_AUTH_FAIL", errors.AccessDeniedError, 1),
        ("TPM_20_E_BAD_AUTH", errors.AccessDeniedError, 1),
        ("TPM_20_E_CANCELED", errors.TransientSigningError, 5),
    ],
)
def test_new_and_moved_codes_retry_only_where_it_helps(standin: Standin, keypair, name, cls, calls) -> None:
    signer = cng.CngSigner(standin.add(keypair).thumbprint, retry_policy=cng.RetryPolicy(attempts=5, initial_delay=0))
    signer.sign(DATA)
    standin.reset_counters()
    code = HR.get(name) or NEW[name][0]
    standin.fail("NCryptSignHash", code, -1)
    with pytest.raises(cls) as info:
        signer.sign(DATA)
    assert type(info.value) is cls
    assert standin.calls("NCryptSignHash") == calls
    if name.endswith(("AUTH_FAIL", "BAD_AUTH", "AUTHENTICATION_FAILED")):
        assert "lockout" in str(info.value)  # the remedy says why it is not retried
    signer.close()


def test_no_memory_remedy_does_not_send_users_to_clean_certificates(standin: Standin, keypair) -> None:
    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    standin.fail("NCryptSignHash", HR["NTE_NO_MEMORY"], 1)
    with pytest.raises(errors.SigningError) as info:
        signer.sign(DATA)
    assert not isinstance(info.value, errors.KeySlotsExhaustedError)
    assert "certificate" not in info.value.remedy.lower()
    assert "memory" in info.value.remedy.lower()
    signer.close()


def test_key_handle_invalidated_reacquires(standin: Standin, keypair) -> None:
    installed = _hardware(standin, keypair)
    signer = cng.CngSigner(installed.thumbprint)
    signer.sign(DATA)
    standin.reset_counters()
    standin.fail("NCryptSignHash", 0x80290422, 1)
    verify(keypair, signer.sign(DATA), DATA)
    assert standin.calls("CryptAcquireCertificatePrivateKey") == 1
    signer.close()
    assert standin.invalid_frees() == 0


# --- item 4: silent everywhere ------------------------------------------------------


def test_every_ncrypt_call_is_silent(standin: Standin) -> None:
    made = cng.create_certificate("entraclaw-blueprint-silent", provider="tpm")
    signer = cng.CngSigner(made.thumbprint)
    for alg in ("RS256", "PS256"):
        verify(made.certificate, signer.sign(DATA, alg), DATA, alg)  # type: ignore[arg-type]
    signer.info()
    signer.close()
    assert cng.delete_certificate(made.thumbprint) is True
    assert standin.calls("NCryptSignHash") >= 2
    unsilent = {
        fn: standin.calls_without_silent(fn)
        for fn in (
            "NCryptSignHash",
            "NCryptOpenKey",
            "NCryptSetProperty",
            "NCryptGetProperty",
            "NCryptFinalizeKey",
            "NCryptDeleteKey",
            "CryptAcquireCertificatePrivateKey",
        )
    }
    assert unsilent == dict.fromkeys(unsilent, 0)


def test_ui_policy_key_fails_fast_instead_of_showing_a_dialog(standin: Standin, keypair) -> None:
    installed = _hardware(standin, keypair, ui_policy=1)
    signer = cng.CngSigner(installed.thumbprint)
    with pytest.raises(errors.UserInteractionRequiredError) as info:
        signer.sign(DATA)
    assert info.value.hresult_name == "NTE_SILENT_CONTEXT"
    assert standin.ui_prompts() == 0
    signer.close()


# --- item 5: cached store -----------------------------------------------------------


def test_reimported_certificate_is_seen_by_reacquire(standin: Standin, keypair) -> None:
    first = standin.add(keypair)
    signer = cng.CngSigner(first.thumbprint)
    signer.sign(DATA)
    # Another process deletes the key and re-imports the certificate with a new key container.
    assert standin.remove_key(first.provider, first.container)
    second = standin.add(keypair)
    assert second.container != first.container
    verify(keypair, signer.sign(DATA), DATA)  # stale -> re-acquire -> finds the re-imported link
    standin.reset_counters()
    signer.sign(DATA)
    assert standin.total_calls() == 1  # warm again
    signer.close()
    assert standin.open_handles() == 0


# --- item 6: hardware keys are serial ----------------------------------------------


def _hammer(signer: cng.CngSigner, threads: int = 4, each: int = 3) -> list[BaseException]:
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(each):
                signer.sign(DATA)
        except BaseException as exc:  # reported by the test
            failures.append(exc)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return failures


def test_hardware_key_signatures_never_overlap(standin: Standin, keypair) -> None:
    signer = cng.CngSigner(_hardware(standin, keypair).thumbprint)
    standin.set_sign_latency_us(20000)
    assert _hammer(signer) == []
    assert standin.max_sign_overlap(True) == 1
    signer.close()


def test_software_key_signatures_still_run_in_parallel(standin: Standin, keypair) -> None:
    signer = cng.CngSigner(standin.add(keypair).thumbprint)
    standin.set_sign_latency_us(50000)
    assert _hammer(signer) == []
    assert standin.max_sign_overlap(False) > 1
    signer.close()


# --- item 7: key creation in auto mode ----------------------------------------------


def test_transient_during_creation_is_retried_not_a_fallback(standin: Standin) -> None:
    standin.fail("NCryptFinalizeKey", HR["TPM_20_E_RETRY"], 1)
    made = cng.create_certificate("entraclaw-blueprint-busy", retry_policy=FAST)
    assert made.hardware is True
    assert made.tpm_fallback_reason is None
    assert standin.calls("NCryptFinalizeKey") == 2
    assert standin.open_handles() == 0


def test_transient_that_outlasts_the_policy_fails_typed(standin: Standin) -> None:
    standin.fail("NCryptFinalizeKey", HR["TPM_E_DOING_SELFTEST"], -1)
    with pytest.raises(errors.TransientSigningError) as info:
        cng.create_certificate("entraclaw-blueprint-busy2", retry_policy=cng.RetryPolicy(attempts=3, initial_delay=0))
    assert info.value.attempts == 3
    assert standin.certificate_count("CurrentUser") == 0
    assert standin.calls("NCryptFinalizeKey") == 3  # never tried the software KSP


@pytest.mark.parametrize("name", ["TPM_20_E_LOCKOUT", "TPM_E_LOCKED_OUT"])
def test_lockout_during_creation_fails_without_fallback(standin: Standin, name: str) -> None:
    standin.fail("NCryptFinalizeKey", HR.get(name) or NEW[name][0], -1)
    with pytest.raises(errors.TpmLockedOutError):
        cng.create_certificate("entraclaw-blueprint-locked", retry_policy=FAST)
    assert standin.calls("NCryptFinalizeKey") == 1
    assert standin.certificate_count("CurrentUser") == 0
    assert standin.open_handles() == 0


@pytest.mark.parametrize("bits", [3072, 4096])
def test_size_the_tpm_cannot_make_falls_back_with_a_plain_reason(standin: Standin, bits: int) -> None:
    made = cng.create_certificate("entraclaw-blueprint-big", key_bits=bits)
    assert made.hardware is False
    reason = made.tpm_fallback_reason or ""
    assert f"RSA-{bits}" in reason
    assert "2048" in reason  # says what the TPM can do


def test_roca_blocked_tpm_falls_back_and_says_so(standin: Standin) -> None:
    standin.fail("NCryptFinalizeKey", 0x8029041F, 1)
    made = cng.create_certificate("entraclaw-blueprint-roca")
    assert made.hardware is False
    reason = made.tpm_fallback_reason or ""
    assert "Infineon" in reason
    assert "ROCA" in reason
    assert "TPM_E_PCP_IFX_RSA_KEY_CREATION_BLOCKED" in reason
    assert made.tpm_fallback_hresult == 0x8029041F


# --- item 8: export policy ------------------------------------------------------------


def test_hardware_key_is_non_exportable_whatever_the_property_reads(standin: Standin, keypair) -> None:
    installed = _hardware(standin, keypair, export_policy=3)  # PCP quirk: reads "allow export"
    signer = cng.CngSigner(installed.thumbprint)
    info = signer.info()
    assert info.hardware is True
    assert info.exportable is False
    assert info.export_policy == 3  # the raw value stays visible
    signer.close()


# --- follow-up: keys are created sign-only -------------------------------------------

NCRYPT_ALLOW_DECRYPT_FLAG, NCRYPT_ALLOW_SIGNING_FLAG, NCRYPT_ALLOW_ALL_USAGES = 0x1, 0x2, 0x00FFFFFF


@pytest.mark.parametrize("provider", ["tpm", "software"])
def test_created_key_is_sign_only(standin: Standin, provider: str) -> None:
    made = cng.create_certificate(f"entraclaw-blueprint-usage-{provider}", provider=provider)  # type: ignore[arg-type]
    assert made.hardware is (provider == "tpm")
    signer = cng.CngSigner(made.thumbprint)
    info = signer.info()
    assert info.key_usage == NCRYPT_ALLOW_SIGNING_FLAG
    assert info.sign_only is True
    assert (made.sign_only, made.key_usage_problem) == (True, None)
    verify(made.certificate, signer.sign(DATA), DATA)  # signing is what it is allowed
    signer.close()
    assert standin.calls_without_silent("NCryptSetProperty") == 0


@pytest.mark.parametrize("status", ["NTE_NOT_SUPPORTED", "NTE_INVALID_PARAMETER"])
def test_provider_that_refuses_the_usage_property_still_makes_a_tpm_key(standin: Standin, status: str) -> None:
    # NCryptSetProperty order in key creation: Length, Export Policy, Key Usage.
    # A TPM key that can also decrypt beats a software key: no fallback, but it is said.
    standin.fail("NCryptSetProperty", HR[status], 1, skip=2)
    made = cng.create_certificate("entraclaw-blueprint-usage-refused")
    assert made.hardware is True
    assert made.tpm_fallback_reason is None
    assert made.sign_only is False
    assert "Key Usage" in (made.key_usage_problem or "")
    assert status in (made.key_usage_problem or "")
    signer = cng.CngSigner(made.thumbprint)
    info = signer.info()
    assert info.key_usage == NCRYPT_ALLOW_ALL_USAGES
    assert info.sign_only is False
    signer.close()
    assert standin.open_handles() == 0


def test_other_usage_property_failure_leaves_nothing_behind(standin: Standin) -> None:
    standin.fail("NCryptSetProperty", HR["NTE_PERM"], 1, skip=2)
    with pytest.raises(errors.AccessDeniedError) as info:
        cng.create_certificate("entraclaw-blueprint-usage-denied", provider="tpm")
    assert info.value.api == "NCryptSetProperty"
    assert standin.calls("NCryptFinalizeKey") == 0
    assert standin.certificate_count("CurrentUser") == 0
    assert standin.open_handles() == 0


def test_key_with_the_providers_default_usage_is_not_sign_only(standin: Standin, keypair) -> None:
    signer = cng.CngSigner(_hardware(standin, keypair).thumbprint)
    info = signer.info()
    assert info.key_usage == NCRYPT_ALLOW_ALL_USAGES
    assert info.sign_only is False
    signer.close()


def test_unreadable_key_usage_is_unknown_not_sign_only(standin: Standin, keypair) -> None:
    installed = _hardware(standin, keypair)
    standin.set_key_option(installed.provider, installed.container, "key_usage_readable", 0)
    signer = cng.CngSigner(installed.thumbprint)
    info = signer.info()
    assert info.key_usage is None
    assert info.sign_only is None
    signer.close()


# --- item 9: NCryptDeleteKey and legacy keys ---------------------------------------------


def test_failed_key_delete_is_not_freed_twice(standin: Standin) -> None:
    made = cng.create_certificate("entraclaw-blueprint-del", provider="software")
    standin.reset_counters()
    standin.fail("NCryptDeleteKey", HR["NTE_PERM"], 1)
    with pytest.raises(errors.AccessDeniedError) as info:
        cng.delete_certificate(made.thumbprint)
    assert info.value.api == "NCryptDeleteKey"
    assert standin.invalid_frees() == 0
    assert standin.certificate_count("CurrentUser") == 1  # key first: the certificate stays findable
    assert standin.open_handles() == 0


def test_failed_cleanup_delete_during_provisioning_is_not_freed_twice(standin: Standin) -> None:
    standin.fail("CertAddCertificateContextToStore", HR["E_ACCESSDENIED"], 1)
    standin.fail("NCryptDeleteKey", HR["NTE_PERM"], 1)
    with pytest.raises(errors.AccessDeniedError):
        cng.create_certificate("entraclaw-blueprint-del2", provider="software")
    assert standin.invalid_frees() == 0
    assert standin.open_handles() == 0


def test_delete_passes_the_links_key_spec(standin: Standin, keypair) -> None:
    installed = standin.add(keypair)
    standin.set_key_option(installed.provider, installed.container, "legacy_spec", AT_KEYEXCHANGE)
    standin.set_link("CurrentUser", bytes.fromhex(keypair.sha1), 0, AT_KEYEXCHANGE)
    assert cng.delete_certificate(keypair.sha1) is True
    assert not standin.key_exists(installed.provider, installed.container)
    assert standin.certificate_count("CurrentUser") == 0


def test_delete_refuses_a_certificate_with_a_capi_key(standin: Standin, keypair) -> None:
    standin.add(keypair)
    csp = "Microsoft Enhanced Cryptographic Provider v1.0"
    standin.set_link("CurrentUser", bytes.fromhex(keypair.sha1), PROV_RSA_FULL, AT_SIGNATURE, csp)
    standin.reset_counters()
    with pytest.raises(errors.UnsupportedKeyStorageError) as info:
        cng.delete_certificate(keypair.sha1)
    text = str(info.value)
    assert "not a CNG key" in text
    assert csp in text
    assert keypair.sha1 in text
    assert standin.calls("NCryptOpenStorageProvider") == 0
    assert standin.certificate_count("CurrentUser") == 1  # nothing deleted, nothing leaked
    # delete_key=False still removes just the certificate when asked to.
    assert cng.delete_certificate(keypair.sha1, delete_key=False) is False
    assert standin.certificate_count("CurrentUser") == 0


# --- item 10: only TpmUnavailableError may skip the windows_tpm tests ------------------


def test_windows_tpm_tests_skip_only_on_tpm_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import test_cng_windows as win

    def raise_(exc: Exception):
        def create(*_a: object, **_k: object) -> None:
            raise exc

        return create

    monkeypatch.setattr(cng, "create_certificate", raise_(errors.SigningError("boom")))
    with pytest.raises(errors.SigningError):
        win.create_tpm_certificate_or_skip("entraclaw-pytest-x-")
    monkeypatch.setattr(cng, "create_certificate", raise_(errors.TpmLockedOutError("locked")))
    with pytest.raises(errors.TpmLockedOutError):
        win.create_tpm_certificate_or_skip("entraclaw-pytest-x-")
    monkeypatch.setattr(cng, "create_certificate", raise_(errors.TpmUnavailableError("no tpm")))
    with pytest.raises(pytest.skip.Exception):
        win.create_tpm_certificate_or_skip("entraclaw-pytest-x-")


# --- item 11: cibuildwheel on windows-11-arm ------------------------------------------


def test_win_arm64_test_install_uses_binary_wheels_only() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    overrides = [o for o in config.get("overrides", []) if "win_arm64" in o.get("select", "")]
    assert overrides, "no override for *-win_arm64"
    env = overrides[0].get("test-environment", {})
    assert env.get("PIP_ONLY_BINARY") == "cryptography"
    # The override replaces the Windows table's test-environment, so it must keep its variables.
    assert env.get("ENTRACLAW_REQUIRE") == config["windows"]["test-environment"]["ENTRACLAW_REQUIRE"]


def test_cibuildwheel_resolves_the_arm64_test_environment() -> None:
    # What cibuildwheel (pinned 4.3.5 in the dev extra) itself makes of pyproject.toml.
    options = pytest.importorskip("cibuildwheel.options")
    reader = options.OptionsReader(ROOT / "pyproject.toml", platform="windows", env={})
    resolved = {}
    for ident in ("cp312-win_arm64", "cp312-win_amd64"):
        with reader.identifier(ident):
            resolved[ident] = reader.get("test-environment", option_format=options.EnvironmentFormat())
    assert 'PIP_ONLY_BINARY="cryptography"' in resolved["cp312-win_arm64"]
    assert 'ENTRACLAW_REQUIRE="windows"' in resolved["cp312-win_arm64"]
    assert "PIP_ONLY_BINARY" not in resolved["cp312-win_amd64"]
