"""Setup and rotate with the other key storages: CNG (the native stand-in: TPM, and the software-KSP
fallback with its warning) and the keystore (the in-memory backend standing in for the OS keystore;
the Secret Service run is ``scripts/with_secret_service.sh``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cng_helpers import HR, PLATFORM, Standin, standin_fixture  # noqa: F401  (fixture)
from entraclaw import cng
from entraclaw.keystore.memory import MemoryStore
from entraclaw.provisioning.doctor import run_doctor
from entraclaw.provisioning.keys import open_device_key
from entraclaw.provisioning.rotate import Rotate
from entraclaw.provisioning.setup import Setup
from entraclaw.provisioning.state import read_device_config
from provisioning_helpers import Tenant, emulator_tenant


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    yield from emulator_tenant()


@pytest.mark.standin
def test_setup_and_rotate_with_a_tpm_key(standin: Standin, tenant: Tenant, tmp_path: Path) -> None:
    home = tmp_path / "d"
    result = tenant.setup(home, key_storage="cng").run()
    assert result.completed and not result.warnings
    config = read_device_config(home / ".env", environ={})
    assert config["ENTRACLAW_KEY_PROVIDER"] == "tpm"
    assert config["ENTRACLAW_KEY_REF"] == f"cng:CurrentUser/{config['ENTRACLAW_BLUEPRINT_CERT_SHA1']}"
    report = run_doctor(state_dir=home, admin_graph=tenant.graph())
    assert report.exit_code == 0, report.text()
    provider = next(c for c in report.checks if c.name == "key provider")
    assert provider.detail.startswith("TPM") and "non-exportable" in provider.detail
    old = config["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    Rotate(tenant.graph(), state_dir=home, force=True, echo=lambda _l: None).run()
    new = read_device_config(home / ".env", environ={})["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    listed = {c.thumbprint for c in cng.list_certificates("entraclaw-blueprint-")}
    assert new in listed and old not in listed


@pytest.mark.standin
def test_tpm_unavailable_falls_back_to_software_ksp_with_a_warning(
    standin: Standin, tenant: Tenant, tmp_path: Path
) -> None:
    standin.set_provider_status(PLATFORM, HR["TBS_E_TPM_NOT_FOUND"])
    lines: list[str] = []
    home = tmp_path / "d"
    result = tenant.setup(home, key_storage="cng", echo=lines.append).run()
    assert result.completed
    assert any("TBS_E_TPM_NOT_FOUND" in w and "Software Key Storage Provider" in w for w in result.warnings)
    assert any(line.startswith("warning:") for line in lines)
    config = read_device_config(home / ".env", environ={})
    assert config["ENTRACLAW_KEY_PROVIDER"] == "software_ksp"
    report = run_doctor(state_dir=home, smoke=False)
    provider = next(c for c in report.checks if c.name == "key provider")
    assert provider.status == "warn" and "non-exportable" in provider.detail and "entraclaw rotate" in provider.remedy


def test_setup_and_rotate_with_the_keystore(tenant: Tenant, tmp_path: Path) -> None:
    store = MemoryStore()
    home = tmp_path / "d"
    options = tenant.options(home, key_storage="keystore")
    assert Setup(options, tenant.graph(), echo=lambda _l: None, keystore=store).run().completed
    config = read_device_config(home / ".env", environ={})
    entry = config["ENTRACLAW_KEY_REF"].removeprefix("keystore:")
    assert entry == f"blueprint-key-{config['ENTRACLAW_BLUEPRINT_APP_ID']}-{config['ENTRACLAW_BLUEPRINT_CERT_SHA1']}"
    assert store.get(entry) is not None
    assert not (home / "keys").exists()  # nothing secret on disk
    key = open_device_key(config["ENTRACLAW_KEY_REF"], keystore=store)
    assert key.sha1 == config["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    key.close()
    Rotate(tenant.graph(), state_dir=home, force=True, echo=lambda _l: None, keystore=store).run()
    after = read_device_config(home / ".env", environ={})
    assert store.get(entry) is None  # the old entry is deleted, the new one written under its own name
    assert store.get(after["ENTRACLAW_KEY_REF"].removeprefix("keystore:")) is not None


@pytest.mark.standin
def test_provisioner_signs_in_with_a_cng_key(standin: Standin, tenant: Tenant, tmp_path: Path) -> None:
    from entraclaw.emulator.tenant import KeyCredential
    from entraclaw.provisioning.auth import ClientCertificateAuth
    from entraclaw.provisioning.graph import GraphClient

    made = cng.create_certificate("entraclaw-provisioner-test")
    app = tenant.emu.tenant.application(tenant.admin.app_id)
    assert app is not None
    tenant.emu.tenant.set_key_credentials(
        app.object_id, [*app.key_credentials, KeyCredential.from_certificate(made.certificate)]
    )
    auth = ClientCertificateAuth(
        authority=tenant.endpoints.authority,
        client_id=tenant.admin.app_id,
        signer=cng.CngKeyHandle(made.thumbprint),
        session=tenant.endpoints.session(),
    )
    graph = GraphClient(tenant.endpoints.graph_url, auth, session=tenant.endpoints.session())
    assert graph.default_domain()
    assert standin.calls("NCryptSignHash") >= 1
    cng.delete_certificate(made.thumbprint)


@pytest.mark.standin
def test_doctor_clean_stale_removes_unregistered_cng_certificates(
    standin: Standin, tenant: Tenant, tmp_path: Path
) -> None:
    home = tmp_path / "d"
    tenant.setup(home, key_storage="cng").run()
    config = read_device_config(home / ".env", environ={})
    stray = cng.create_certificate(f"entraclaw-blueprint-{config['ENTRACLAW_BLUEPRINT_APP_ID']}")
    listed = run_doctor(state_dir=home, admin_graph=tenant.graph(), smoke=False)
    stale = next(c for c in listed.checks if c.name == "stale certificates")
    assert stale.status == "warn" and stray.thumbprint in stale.detail
    run_doctor(state_dir=home, admin_graph=tenant.graph(), smoke=False, clean_stale=True)
    remaining = {c.thumbprint for c in cng.list_certificates("entraclaw-blueprint-")}
    assert stray.thumbprint not in remaining
    assert config["ENTRACLAW_BLUEPRINT_CERT_SHA1"] in remaining


def test_no_usable_keystore_fails_before_any_graph_write(
    tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import entraclaw.keystore
    from entraclaw.errors import KeystoreError

    def no_keystore() -> None:
        # What KeyringStore raises on a machine whose keyring has only the fail/null backend
        # (keyring caches its backend per process, so the environment cannot switch it here).
        raise KeystoreError("No usable keyring backend (test).", remedy="Install a Secret Service.")

    monkeypatch.setattr(entraclaw.keystore, "default_keystore", no_keystore)
    setup = tenant.setup(tmp_path / "d", key_storage="keystore")
    with pytest.raises(KeystoreError):
        setup.run()
    assert setup.graph.writes_made == 0
