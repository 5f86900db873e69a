"""entraclaw setup / rotate against the emulator's Graph Agent ID API, in process.

Every Graph call goes over HTTPS to the emulator, signed in as its provisioner
app; Hops 1-3 and /me run against the same tenant.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from entraclaw.auth.certgen import generate_rsa_key, self_signed_certificate
from entraclaw.auth.signer import PemSigner
from entraclaw.errors import ConfigurationError, GraphRequestError
from entraclaw.provisioning.keys import open_device_key
from entraclaw.provisioning.proofs import build_proof
from entraclaw.provisioning.rotate import Rotate
from entraclaw.provisioning.state import read_device_config
from provisioning_helpers import Tenant, chain_from_config, directory_counts, emulator_tenant


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    yield from emulator_tenant()

GUID = r"[0-9a-f-]{36}"


def test_fresh_setup_then_rerun_makes_zero_writes(tenant: Tenant, tmp_path: Path) -> None:
    home = tmp_path / "device"
    result = tenant.setup(home).run()
    assert result.completed
    assert result.graph_writes >= 5  # blueprint, principal, certificate, identity, user, grant
    config = read_device_config(home / ".env", environ={})
    for name in (
        "ENTRACLAW_BLUEPRINT_APP_ID",
        "ENTRACLAW_BLUEPRINT_OBJECT_ID",
        "ENTRACLAW_AGENT_IDENTITY_ID",
        "ENTRACLAW_AGENT_USER_ID",
        "ENTRACLAW_KEY_REF",
        "ENTRACLAW_BLUEPRINT_CERT_SHA1",
        "ENTRACLAW_BLUEPRINT_CERT_X5T_S256",
    ):
        assert config.get(name), name
    assert config["ENTRACLAW_KEY_PROVIDER"] == "pem"
    assert config["ENTRACLAW_AGENT_USER_UPN"].startswith("entraclaw-agent@")
    assert chain_from_config(home).me_id == config["ENTRACLAW_AGENT_USER_ID"]

    again = tenant.setup(home).run()
    assert again.completed
    assert again.graph_writes == 0, again.plan
    assert {s.action for s in again.plan} <= {"exists", "run"}
    assert directory_counts(tenant.emu) == {
        "blueprints": 1, "principals": 1, "agent_identities": 1, "agent_users": 1, "grants": 1,
    }


def test_dry_run_prints_the_plan_and_writes_nothing(tenant: Tenant, tmp_path: Path) -> None:
    lines: list[str] = []
    result = tenant.setup(tmp_path / "d", echo=lines.append).run(dry_run=True)
    assert result.graph_writes == 0
    assert not result.completed
    assert [s.step for s in result.plan] == [
        "blueprint", "blueprint_principal", "key", "certificate", "agent_identity", "agent_user", "consent",
        "config", "smoke",
    ]
    assert lines[0].startswith("[blueprint] would create")
    assert not (tmp_path / "d" / ".env").exists()
    assert directory_counts(tenant.emu)["blueprints"] == 0


def test_second_device_needs_a_choice_then_keeps_the_first_working(tenant: Tenant, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    tenant.setup(first).run()
    with pytest.raises(ConfigurationError) as info:
        tenant.setup(second).run()
    assert "--patch-key-credentials" in info.value.remedy
    assert "other devices" in info.value.message
    result = tenant.setup(second, patch_key_credentials=True).run()
    assert result.completed
    # Both devices authenticate: the PATCH kept the first device's certificate.
    assert chain_from_config(first).me_id == chain_from_config(second).me_id
    oid = read_device_config(first / ".env", environ={})["ENTRACLAW_BLUEPRINT_OBJECT_ID"]
    assert len(tenant.graph().key_credentials(oid)) == 2


def test_setup_with_a_registered_key_on_this_device_uses_addkey(tenant: Tenant, tmp_path: Path) -> None:
    home = tmp_path / "d"
    tenant.setup(home).run()
    config = read_device_config(home / ".env", environ={})
    # Lose the config but keep the key file: the next setup proves with that key (addKey).
    (home / ".env").unlink()
    (home / "setup-journal.json").unlink()
    graph = tenant.graph()
    result = tenant.setup(home).run()
    assert result.completed
    steps = {s.step: s.action for s in result.plan}
    assert steps["certificate"] in ("exists", "register (addKey)")
    assert graph.writes_made == 0
    assert read_device_config(home / ".env", environ={})["ENTRACLAW_BLUEPRINT_APP_ID"] == config[
        "ENTRACLAW_BLUEPRINT_APP_ID"
    ]


def test_rotate_switches_keys_and_removes_the_old(tenant: Tenant, tmp_path: Path) -> None:
    home = tmp_path / "d"
    tenant.setup(home).run()
    before = read_device_config(home / ".env", environ={})
    skipped = Rotate(tenant.graph(), state_dir=home, echo=lambda _l: None).run()
    assert not skipped.rotated and skipped.days_left is not None and skipped.days_left > 300
    result = Rotate(tenant.graph(), state_dir=home, force=True, echo=lambda _l: None).run()
    assert result.rotated
    after = read_device_config(home / ".env", environ={})
    assert after["ENTRACLAW_BLUEPRINT_CERT_SHA1"] != before["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    assert after["ENTRACLAW_KEY_REF"] != before["ENTRACLAW_KEY_REF"]
    assert not Path(before["ENTRACLAW_KEY_REF"].removeprefix("file:")).exists()
    creds = tenant.graph().key_credentials(after["ENTRACLAW_BLUEPRINT_OBJECT_ID"])
    assert [c.sha1 for c in creds] == [after["ENTRACLAW_BLUEPRINT_CERT_SHA1"]]
    assert chain_from_config(home).me_id == after["ENTRACLAW_AGENT_USER_ID"]
    assert not (home / "rotate-journal.json").exists()
    # addKey, removeKey: the two writes a rotation needs.
    assert result.graph_writes == 2


def test_addkey_with_an_unregistered_key_is_refused_end_to_end(tenant: Tenant, tmp_path: Path) -> None:
    home = tmp_path / "d"
    tenant.setup(home).run()
    config = read_device_config(home / ".env", environ={})
    oid = config["ENTRACLAW_BLUEPRINT_OBJECT_ID"]
    stranger_key = generate_rsa_key()
    stranger = PemSigner(stranger_key, self_signed_certificate(stranger_key, "stranger"))
    new_key = generate_rsa_key()
    new_cert = self_signed_certificate(new_key, "new")
    body = {
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
        "key": base64.b64encode(new_cert.public_bytes(serialization.Encoding.DER)).decode(),
    }
    graph = tenant.graph()
    with pytest.raises(GraphRequestError) as info:
        graph.add_key(oid, body, build_proof(stranger, oid))
    assert info.value.http_status in (401, 403)  # type: ignore[attr-defined]
    assert "Bearer" not in str(info.value) and "eyJ" not in str(info.value)
    # The device's own key is accepted, and the proof must name the object id (not the app id).
    device = open_device_key(config["ENTRACLAW_KEY_REF"])
    with pytest.raises(GraphRequestError):
        graph.add_key(oid, body, build_proof(device.signer, config["ENTRACLAW_BLUEPRINT_APP_ID"]))
    graph.add_key(oid, body, build_proof(device.signer, oid))
    device.close()
    assert len(graph.key_credentials(oid)) == 2


def test_setup_waits_out_propagation_with_progress_lines(tenant: Tenant, tmp_path: Path) -> None:
    tenant.emu.propagation_delay = 1.5
    lines: list[str] = []
    result = tenant.setup(tmp_path / "d", echo=lines.append).run()
    assert result.completed
    assert any("waiting for" in line and "propagate" in line for line in lines), lines


def test_rollback_removes_what_an_unfinished_run_created(tenant: Tenant, tmp_path: Path) -> None:
    home = tmp_path / "d"
    setup = tenant.setup(home, agent_user_upn="taken@example.invalid")
    with pytest.raises(ConfigurationError):
        setup.run()  # the UPN's domain is not a verified domain of the tenant
    assert directory_counts(tenant.emu)["blueprints"] == 1
    plan = tenant.setup(home).rollback(dry_run=True)
    assert any(s.action == "delete blueprint" for s in plan)
    assert directory_counts(tenant.emu)["blueprints"] == 1
    tenant.setup(home).rollback()
    counts = directory_counts(tenant.emu)
    assert counts["blueprints"] == 0 and counts["agent_identities"] == 0
    assert not (home / "setup-journal.json").exists()
    assert not list((home / "keys").glob("*.pem"))


def test_rollback_refuses_a_completed_setup_without_force(tenant: Tenant, tmp_path: Path) -> None:
    home = tmp_path / "d"
    tenant.setup(home).run()
    with pytest.raises(ConfigurationError) as info:
        tenant.setup(home).rollback()
    assert "--force" in info.value.remedy


def test_rotate_drops_cached_tokens_of_the_old_key(tenant: Tenant, tmp_path: Path) -> None:
    from entraclaw.auth.credential import AgentUserCredential
    from entraclaw.auth.persisted_cache import PersistedTokenStore

    home = tmp_path / "d"
    tenant.setup(home).run()
    config = read_device_config(home / ".env", environ={})
    cache_path = tmp_path / "tokens.bin"
    store = PersistedTokenStore(cache_path, allow_plaintext=True)
    key = open_device_key(config["ENTRACLAW_KEY_REF"])
    credential = AgentUserCredential(
        tenant=tenant.endpoints.authority,
        blueprint_app_id=config["ENTRACLAW_BLUEPRINT_APP_ID"],
        agent_identity_app_id=config["ENTRACLAW_AGENT_IDENTITY_ID"],
        agent_user_id=config["ENTRACLAW_AGENT_USER_ID"],
        signer=key.signer,
        session=tenant.endpoints.session(),
        cache=store,
    )
    credential.get_token("https://graph.microsoft.com/.default")
    key.close()
    with store.lock():
        assert len(store.load()) == 3  # T1, T2, T3
    lines: list[str] = []
    Rotate(tenant.graph(), state_dir=home, force=True, echo=lines.append, token_cache=cache_path).run()
    with store.lock():
        assert store.load() == {}
    assert any("3 cached token(s)" in line for line in lines), lines


def test_no_secret_in_output_journal_config_or_reprs(tenant: Tenant, tmp_path: Path) -> None:
    import re

    jwt_like = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.")
    home = tmp_path / "d"
    lines: list[str] = []
    graph = tenant.graph()
    from entraclaw.provisioning.setup import Setup

    setup = Setup(tenant.options(home), graph, echo=lines.append)
    result = setup.run()
    Rotate(tenant.graph(), state_dir=home, force=True, echo=lines.append).run()
    token = graph.auth.token()
    texts = [
        "\n".join(lines),
        (home / ".env").read_text(),
        (home / "setup-journal.json").read_text(),
        repr(graph.auth),
        repr(setup.key),
        repr(result),
    ]
    for text in texts:
        assert "PRIVATE KEY" not in text
        assert not jwt_like.search(text)
        assert token not in text


def test_rotate_as_the_blueprint_itself(tenant: Tenant, tmp_path: Path) -> None:
    """addKey/removeKey with the Blueprint's own app token: "an application does not need any specific
    permission to roll its own keys" (application-addkey)."""
    from provisioning_helpers import run_cli

    home = tmp_path / "d"
    tenant.setup(home).run()
    before = read_device_config(home / ".env", environ={})
    for _ in range(2):
        out = run_cli("rotate", "--state-dir", str(home), "--as-blueprint", "--force")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "warning" not in out.stdout
    after = read_device_config(home / ".env", environ={})
    assert after["ENTRACLAW_BLUEPRINT_CERT_SHA1"] != before["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    assert chain_from_config(home).me_id == after["ENTRACLAW_AGENT_USER_ID"]
    # The old certificates were found by their derived keyIds: only the current one is left.
    creds = tenant.graph().key_credentials(after["ENTRACLAW_BLUEPRINT_OBJECT_ID"])
    assert [c.sha1 for c in creds] == [after["ENTRACLAW_BLUEPRINT_CERT_SHA1"]]


def test_a_refused_create_leaves_nothing_pending(tenant: Tenant, tmp_path: Path) -> None:
    home = tmp_path / "d"
    bad = tenant.setup(home, sponsor_ids=("00000000-0000-0000-0000-00000000beef",))
    with pytest.raises(GraphRequestError) as info:
        bad.run()
    assert info.value.http_status == 400  # type: ignore[attr-defined]
    assert "pending" not in bad.journal.load()
    lines: list[str] = []
    assert tenant.setup(home, echo=lines.append).run().completed
    assert not any("waiting for" in line for line in lines), lines


def test_rotate_runs_by_itself_within_the_expiry_window_and_dry_run_writes_nothing(
    tenant: Tenant, tmp_path: Path
) -> None:
    home = tmp_path / "d"
    tenant.setup(home).run()
    before = read_device_config(home / ".env", environ={})
    lines: list[str] = []
    dry = Rotate(tenant.graph(), state_dir=home, days_before_expiry=400, echo=lines.append).run(dry_run=True)
    assert not dry.rotated and dry.graph_writes == 0 and not (home / "rotate-journal.json").exists()
    assert any(line.startswith("[add_key] would run") for line in lines)
    # A 365-day certificate is inside a 400-day window: no --force needed.
    result = Rotate(tenant.graph(), state_dir=home, days_before_expiry=400, echo=lambda _l: None).run()
    assert result.rotated
    assert read_device_config(home / ".env", environ={})["ENTRACLAW_BLUEPRINT_CERT_SHA1"] != before[
        "ENTRACLAW_BLUEPRINT_CERT_SHA1"
    ]
