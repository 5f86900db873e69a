"""``setup --machine --account``: a LocalMachine key that one service account alone may use.

Against the native stand-in (machine key set, key DACLs and the access check Windows applies
when a key is opened) and the emulator over HTTPS. What only Windows can show (real
LocalMachine\\My writes needing elevation, a real gMSA, KeyIso's stored DACL) is in
``tests/test_windows_native.py``'s ``windows`` tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cng_helpers import Standin, standin_fixture  # noqa: F401  (fixture)
from entraclaw import cng
from entraclaw.errors import ConfigurationError, KeyNotFoundError
from entraclaw.provisioning.doctor import run_doctor
from entraclaw.provisioning.machine_steps import MACHINE_STEPS
from entraclaw.provisioning.setup import Setup
from entraclaw.provisioning.state import read_device_config
from provisioning_helpers import Tenant, directory_counts, emulator_tenant

pytestmark = pytest.mark.standin

NETWORK_SERVICE = "S-1-5-20"
GMSA_SID = "S-1-5-21-1004336348-1177238915-682003330-4105"


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    yield from emulator_tenant()


def _machine_setup(tenant: Tenant, home: Path, account: str = "NetworkService") -> Setup:
    return tenant.setup(home, key_storage="cng", machine_account=account)


def _as(standin: Standin, sid: str | None, name: str | None = None, domain: str | None = None) -> None:
    standin.set_current_sid(sid, name, domain)


def test_machine_setup_grants_the_key_to_the_service_account_only(
    standin: Standin, tenant: Tenant, tmp_path: Path
) -> None:
    home = tmp_path / "svc"
    setup = _machine_setup(tenant, home)
    result = setup.run()
    assert result.completed
    steps = {p.step: p for p in result.plan}
    assert steps["key_access"].action == "grant" and "NETWORK SERVICE" in steps["key_access"].detail
    config = read_device_config(home / ".env", environ={})
    sha1 = config["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    assert config["ENTRACLAW_KEY_REF"] == f"cng:LocalMachine/{sha1}"
    assert [c.thumbprint for c in cng.list_certificates("entraclaw-blueprint-", "LocalMachine")] == [sha1]
    assert cng.list_certificates("entraclaw-blueprint-", "CurrentUser") == []

    # The installer can no longer open the key; the error says why and what to run.
    with pytest.raises(KeyNotFoundError) as denied:
        cng.CngSigner(sha1, "LocalMachine")
    assert "setup --machine --account" in str(denied.value) and sha1 in str(denied.value)

    # The service account can: it signs, doctor names it as the only user, and runs Hop 1-3.
    _as(standin, NETWORK_SERVICE, "NETWORK SERVICE", "NT AUTHORITY")
    signer = cng.CngSigner(sha1, "LocalMachine")
    access = signer.key_access()
    assert access.only(NETWORK_SERVICE) and access.owner_sid == standin.default_user_sid()
    assert [e.name for e in access.users] == ["NT AUTHORITY\\NETWORK SERVICE"]
    signer.close()
    report = run_doctor(state_dir=home, admin_graph=tenant.graph())
    check = next(c for c in report.checks if c.name == "key access")
    assert check.status == "ok" and "only NT AUTHORITY\\NETWORK SERVICE (S-1-5-20)" in check.detail
    assert report.exit_code == 0, report.text()


def test_a_gmsa_by_name_and_reruns(standin: Standin, tenant: Tenant, tmp_path: Path) -> None:
    standin.add_account(GMSA_SID, "agent-gmsa$", "CONTOSO")
    home = tmp_path / "svc"
    assert _machine_setup(tenant, home, "contoso\\AGENT-GMSA$").run().completed
    # The installer again: the key is the gMSA's now. Setup stops at the key step, names the
    # key and the account, and makes no second key.
    with pytest.raises(ConfigurationError) as stopped:
        _machine_setup(tenant, home, "CONTOSO\\agent-gmsa$").run()
    sha1 = read_device_config(home / ".env", environ={})["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    assert sha1 in stopped.value.message and "entraclaw doctor" in stopped.value.remedy
    # The gMSA itself re-runs it: everything exists, nothing is written.
    _as(standin, GMSA_SID, "agent-gmsa$", "CONTOSO")
    again = _machine_setup(tenant, home, "CONTOSO\\agent-gmsa$").run()
    steps = {p.step: p.action for p in again.plan}
    assert steps["key_access"] == "exists" and again.graph_writes == 0
    assert len(cng.list_certificates("entraclaw-blueprint-", "LocalMachine")) == 1


@pytest.mark.parametrize("point", ["key:created", "smoke", *MACHINE_STEPS])
def test_machine_setup_interrupted_at_each_step_converges(
    standin: Standin, tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    """In-process interruption (the stand-in's key store lives in this process, so a kill -9 would
    take it along): the run stops at the step; the next run ends with one key, granted to the account."""
    import entraclaw.provisioning.setup as setup_module

    class Interrupted(BaseException):
        pass

    real = setup_module.checkpoint

    def stop_at(name: str) -> None:
        real(name)
        if name == point:
            raise Interrupted(name)

    home = tmp_path / "svc"
    monkeypatch.setattr(setup_module, "checkpoint", stop_at)
    with pytest.raises(Interrupted):
        _machine_setup(tenant, home).run()
    monkeypatch.setattr(setup_module, "checkpoint", real)
    if point == MACHINE_STEPS[-1]:
        # The grant was the last step: the installer's re-run stops at the key, nothing to converge.
        with pytest.raises(ConfigurationError):
            _machine_setup(tenant, home).run()
    else:
        assert _machine_setup(tenant, home).run().completed
    _as(standin, NETWORK_SERVICE, "NETWORK SERVICE", "NT AUTHORITY")
    listed = cng.list_certificates("entraclaw-blueprint-", "LocalMachine")
    assert len(listed) == 1
    signer = cng.CngSigner(listed[0].thumbprint, "LocalMachine")
    assert signer.key_access().only(NETWORK_SERVICE)
    signer.close()
    config = read_device_config(home / ".env", environ={})
    assert config["ENTRACLAW_BLUEPRINT_CERT_SHA1"] == listed[0].thumbprint
    creds = tenant.graph().key_credentials(config["ENTRACLAW_BLUEPRINT_OBJECT_ID"])
    assert [c.sha1 for c in creds] == [listed[0].thumbprint]


def test_bad_machine_input_fails_before_any_write(standin: Standin, tenant: Tenant, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as unknown:
        _machine_setup(tenant, tmp_path / "a", "CONTOSO\\nobody").run()
    assert "CONTOSO\\nobody" in unknown.value.message and "--machine --account" in unknown.value.remedy
    with pytest.raises(ConfigurationError) as wrong_storage:
        tenant.setup(tmp_path / "b", key_storage="file", machine_account="NetworkService").run()
    assert "--machine" in wrong_storage.value.message
    assert directory_counts(tenant.emu)["blueprints"] == 0
    from entraclaw.provisioning.machine_steps import check_machine_install

    with pytest.raises(ConfigurationError) as no_dir:
        check_machine_install("NetworkService", "cng", None)
    assert "--state-dir" in no_dir.value.remedy


def test_state_directory_is_given_to_the_account(standin: Standin, tmp_path: Path) -> None:
    """What setup does on Windows after the key grant (the stand-in's DACL model on real paths)."""
    from entraclaw.machine import grant_state_dir
    from entraclaw.platform import winacl

    home = tmp_path / "svc"
    (home / "keys").mkdir(parents=True)
    (home / ".env").write_text("ENTRACLAW_TENANT_ID=x\n")
    assert grant_state_dir(home, "NetworkService") == 3
    for path in (home, home / "keys", home / ".env"):
        dacl = winacl.read_dacl(path)
        assert dacl.is_owner_only(NETWORK_SERVICE), (path, dacl)
        assert dacl.owner_sid == standin.default_user_sid()  # the installer stays the owner


def test_cli_machine_needs_its_account_and_a_cng_key(tenant: Tenant, tmp_path: Path) -> None:
    from provisioning_helpers import run_cli

    alone = run_cli("setup", *tenant.cli_args(tmp_path / "a"), "--machine")
    assert alone.returncode != 0 and "--machine and --account go together" in alone.stderr
    assert "Traceback" not in alone.stderr
    file_key = run_cli("setup", *tenant.cli_args(tmp_path / "b"), "--machine", "--account", "NetworkService",
                       "--key-storage", "file")
    assert file_key.returncode != 0 and "Windows machine key" in file_key.stderr, file_key.stderr
    assert directory_counts(tenant.emu)["blueprints"] == 0


def test_rotation_by_the_service_keeps_the_key_its_own(standin: Standin, tenant: Tenant, tmp_path: Path) -> None:
    from entraclaw.provisioning.rotate import Rotate

    home = tmp_path / "svc"
    assert _machine_setup(tenant, home).run().completed
    old = read_device_config(home / ".env", environ={})["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    _as(standin, NETWORK_SERVICE, "NETWORK SERVICE", "NT AUTHORITY")  # the daily job runs as the account
    result = Rotate(tenant.graph(), state_dir=home, force=True, echo=lambda _l: None).run()
    assert result.rotated
    config = read_device_config(home / ".env", environ={})
    new = config["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    assert config["ENTRACLAW_KEY_REF"] == f"cng:LocalMachine/{new}" and new != old
    assert [c.thumbprint for c in cng.list_certificates("entraclaw-blueprint-", "LocalMachine")] == [new]
    signer = cng.CngSigner(new, "LocalMachine")
    assert signer.key_access().only(NETWORK_SERVICE)
    signer.close()


def test_a_state_file_windows_refuses_is_named(standin: Standin, tmp_path: Path) -> None:
    """One account lookup for the whole directory; the path Windows refused is the one the error names."""
    from entraclaw.errors import FilePermissionError
    from entraclaw.machine import grant_state_dir

    home = tmp_path / "svc"
    home.mkdir()
    (home / ".env").write_text("ENTRACLAW_TENANT_ID=x\n")
    standin.reset_counters()
    standin.fail("SetNamedSecurityInfoW", 0x80070005, 1, 1)  # the second path: E_ACCESSDENIED
    with pytest.raises(FilePermissionError) as refused:
        grant_state_dir(home, "NetworkService")
    assert refused.value.context["path"] == str(home / ".env") and "NetworkService" in refused.value.message
    assert standin.calls("LookupAccountNameW") == 2  # sizes, then data: once for every path
