"""Issue 14: `entraclaw setup --require-tpm` / ENTRACLAW_REQUIRE_TPM -- a software-KSP fallback becomes an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from cng_helpers import HR, PLATFORM, Standin, standin_fixture  # noqa: F401  (fixture)
from entraclaw import cng, errors
from entraclaw.cli import build_parser
from entraclaw.provisioning.keys import create_device_key

APP = "11111111-2222-3333-4444-555555555555"


def test_required_tpm_that_is_missing_is_an_error_naming_the_reason(standin: Standin, tmp_path: Path) -> None:
    standin.set_provider_status(PLATFORM, HR["TBS_E_TPM_NOT_FOUND"])
    with pytest.raises(errors.TpmRequiredError) as info:
        create_device_key(APP, "cng", state_dir=tmp_path, require_tpm=True)
    err = info.value
    assert "TBS_E_TPM_NOT_FOUND" in err.message and APP in err.message
    assert "No software key was made" in err.message
    assert err.context["hresult"] == HR["TBS_E_TPM_NOT_FOUND"]
    assert "--require-tpm" in err.remedy and "entraclaw setup" in err.remedy
    assert cng.list_certificates("") == []  # nothing in the store: no software key either
    assert standin.open_handles() == 0


def test_the_environment_variable_requires_it_too(standin: Standin, tmp_path: Path, monkeypatch) -> None:
    standin.set_provider_status(PLATFORM, HR["TBS_E_TPM_NOT_FOUND"])
    monkeypatch.setenv("ENTRACLAW_REQUIRE_TPM", "1")
    with pytest.raises(errors.TpmRequiredError):
        create_device_key(APP, "cng", state_dir=tmp_path)
    monkeypatch.setenv("ENTRACLAW_REQUIRE_TPM", "0")
    key = create_device_key(APP, "cng", state_dir=tmp_path)  # not required: the documented fallback, warned
    assert key.provider == "software_ksp" and key.warning and "TPM could not hold" in key.warning
    key.close()


def test_required_tpm_that_works_gives_a_tpm_key(standin: Standin, tmp_path: Path) -> None:
    key = create_device_key(APP, "cng", state_dir=tmp_path, require_tpm=True)
    assert key.provider == "tpm" and key.warning is None
    key.close()


def test_required_tpm_refuses_non_tpm_storage(tmp_path: Path) -> None:
    with pytest.raises(errors.TpmRequiredError, match="not a TPM") as info:
        create_device_key(APP, "file", state_dir=tmp_path, require_tpm=True)
    assert info.value.context["reason"] == "key storage file"
    assert list(tmp_path.rglob("*.pem")) == []


def test_setup_has_the_flag() -> None:
    args = build_parser().parse_args(["setup", "--require-tpm", "--tenant", "t", "--dry-run"])
    assert args.require_tpm is True
    assert build_parser().parse_args(["setup", "--tenant", "t"]).require_tpm is None
