"""Limits on a Blueprint's certificates: Graph's object-size refusal and the tenant's app management policy.

Sources: Validation differences by supported account types (about 1000 items across an app object's
collections), microsoftgraph/microsoft-graph-docs#21469 (Directory_ResourceSizeExceeded past ~600
keyCredentials), tenantAppManagementPolicy / keyCredentialConfiguration (asymmetricKeyLifetime),
OfficeDev/microsoft-365-agents-toolkit#10998 (CredentialInvalidLifetimeAsPerAppPolicy).
"""

from __future__ import annotations

import base64
import datetime as _dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator_helpers import make_cert
from entraclaw.emulator.graph.app_limits import AppLimits
from entraclaw.emulator.tenant import permission_id
from entraclaw.errors import ConfigurationError, GraphRequestError
from entraclaw.provisioning.graph import GraphClient
from entraclaw.provisioning.keys import open_device_key
from entraclaw.provisioning.rotate import Rotate
from entraclaw.provisioning.state import read_device_config
from provisioning_helpers import Tenant, chain_from_config, emulator_tenant


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    yield from emulator_tenant()


def _limit(tenant: Tenant, **values: object) -> None:
    tenant.emu.graph_service.app_limits = AppLimits(**values)  # type: ignore[arg-type]


def _first_device(tenant: Tenant, tmp_path: Path) -> tuple[Path, str, str]:
    home = tmp_path / "device-0"
    assert tenant.setup(home).run().completed
    config = read_device_config(home / ".env", environ={})
    return home, config["ENTRACLAW_BLUEPRINT_OBJECT_ID"], config["ENTRACLAW_BLUEPRINT_APP_ID"]


def _fill(tenant: Tenant, object_id: str, extra: int) -> None:
    app = tenant.emu.tenant.application_by_object_id(object_id)
    assert app is not None
    certs = [make_cert(0, cn=f"retired{i}").cert for i in range(extra)]
    tenant.emu.tenant.set_key_credentials(object_id, [*app.key_credentials, *certs])


def _with_new_certificates(graph: GraphClient, oid: str, cn: str, count: int) -> list[dict[str, str]]:
    """The object's keyCredentials as they stand (by keyId) plus ``count`` new certificates: a PATCH body."""
    have = [{"type": "AsymmetricX509Cert", "usage": "Verify", "key": c.key_b64, "keyId": c.key_id}
            for c in graph.key_credentials(oid)]  # fmt: skip
    keys = [base64.b64encode(make_cert(0, cn=f"{cn}{i}").der).decode() for i in range(count)]
    new = [{"type": "AsymmetricX509Cert", "usage": "Verify", "key": key} for key in keys]
    return [*have, *new]


def test_graph_refuses_more_certificates_than_the_object_holds(tenant: Tenant, tmp_path: Path) -> None:
    _limit(tenant, max_key_credentials=2)
    _, oid, _ = _first_device(tenant, tmp_path)
    graph = tenant.graph()
    body = _with_new_certificates(graph, oid, "extra", 2)
    with pytest.raises(GraphRequestError) as info:
        graph.patch_key_credentials(oid, body)
    assert info.value.code == "Directory_ResourceSizeExceeded"  # type: ignore[attr-defined]
    assert "reduce the number of values" in str(info.value)
    assert len(graph.key_credentials(oid)) == 1  # nothing half-written


def test_setup_refuses_a_device_before_the_blueprint_reaches_the_limit(tenant: Tenant, tmp_path: Path) -> None:
    _, oid, app_id = _first_device(tenant, tmp_path)
    _fill(tenant, oid, 3)  # 4 certificates now
    home = tmp_path / "device-1"
    setup = tenant.setup(home, patch_key_credentials=True, max_key_credentials=4, agent_identity_name="second")
    with pytest.raises(ConfigurationError) as info:
        setup.run()
    text = str(info.value)
    assert "already holds 4 certificates" in text and app_id in text, text
    assert "entraclaw setup --blueprint-name" in (info.value.remedy or "")  # type: ignore[attr-defined]
    assert len(tenant.graph().key_credentials(oid)) == 4  # refused before any certificate write
    assert not tenant.graph().find_agent_identities("second")  # and before the device's Agent Identity


def test_graphs_size_refusal_names_the_limit_and_the_way_out(tenant: Tenant, tmp_path: Path) -> None:
    # The emulator's object is smaller than setup's guard: Graph refuses, setup explains.
    _, oid, _ = _first_device(tenant, tmp_path)
    _fill(tenant, oid, 1)
    _limit(tenant, max_key_credentials=2)
    setup = tenant.setup(tmp_path / "device-1", patch_key_credentials=True, agent_identity_name="second")
    with pytest.raises(ConfigurationError) as info:
        setup.run()
    assert "Directory_ResourceSizeExceeded" in str(info.value)
    assert "entraclaw setup --blueprint-name" in (info.value.remedy or "")  # type: ignore[attr-defined]


def test_the_policy_is_readable_and_refuses_a_longer_certificate_with_graphs_error(tenant: Tenant) -> None:
    _limit(tenant, max_certificate_lifetime_days=30)
    graph = tenant.graph()
    policy = graph.request("GET", "policies/defaultAppManagementPolicy", what="read policy")
    restriction = policy["applicationRestrictions"]["keyCredentials"][0]
    assert policy["isEnabled"] and restriction["restrictionType"] == "asymmetricKeyLifetime"
    assert restriction["maxLifetime"] == "P30D"
    sponsor_id = graph.find_user(tenant.admin.user_upn).object_id  # type: ignore[union-attr]
    bp = graph.create_blueprint("policy", sponsor_ids=(sponsor_id,))
    long_lived = {
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
        "key": base64.b64encode(make_cert(0, cn="long").der).decode(),
    }
    with pytest.raises(GraphRequestError) as info:
        graph.patch_key_credentials(bp.object_id, [long_lived])
    assert info.value.code == "CredentialInvalidLifetimeAsPerAppPolicy"  # type: ignore[attr-defined]
    assert "max value allowed as per assigned policy" in str(info.value)
    short = make_cert(0, cn="short", days=20)
    graph.patch_key_credentials(
        bp.object_id,
        [{"type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(short.der).decode()}],
    )


def _lifetime_days(home: Path) -> float:
    config = read_device_config(home / ".env", environ={})
    key = open_device_key(config["ENTRACLAW_KEY_REF"])
    try:
        cert = key.certificate
        return (cert.not_valid_after_utc - cert.not_valid_before_utc) / _dt.timedelta(days=1)
    finally:
        key.close()


def test_setup_and_rotate_issue_certificates_the_policy_allows(tenant: Tenant, tmp_path: Path) -> None:
    _limit(tenant, max_certificate_lifetime_days=90)
    home = tmp_path / "d"
    lines: list[str] = []
    result = tenant.setup(home, echo=lines.append).run()
    assert result.completed
    assert _lifetime_days(home) <= 90
    Rotate(tenant.graph(), state_dir=home, force=True, echo=lambda _l: None).run()
    assert _lifetime_days(home) <= 90
    assert chain_from_config(home).me_upn


def test_a_policy_setup_cannot_read_is_named_when_it_refuses(tenant: Tenant, tmp_path: Path) -> None:
    _limit(tenant, max_certificate_lifetime_days=90)
    # A provisioner without Policy.Read.All: setup keeps its default lifetime and Graph refuses it.
    graph = tenant.graph()
    admin_sp = graph.find_service_principal(tenant.admin.app_id)
    assert admin_sp is not None
    rows = graph.request("GET", f"servicePrincipals/{admin_sp.object_id}/appRoleAssignments", what="list")["value"]
    policy_read = [r for r in rows if r["appRoleId"] == permission_id("Policy.Read.All", "role")]
    assert len(policy_read) == 1
    graph.request(
        "DELETE", f"servicePrincipals/{admin_sp.object_id}/appRoleAssignments/{policy_read[0]['id']}", what="revoke"
    )
    with pytest.raises(ConfigurationError) as info:
        tenant.setup(tmp_path / "d").run()
    assert "App management policy" in str(info.value) and "Policy.Read.All" in (info.value.remedy or "")  # type: ignore[attr-defined]


def test_a_patch_carrying_a_fleets_certificates_is_not_refused_for_its_size(tenant: Tenant, tmp_path: Path) -> None:
    # Graph takes write requests up to 4 MB (https://learn.microsoft.com/graph/use-the-api); the emulator
    # refused any body over 64 KiB, so a Blueprint could never reach the certificate limit over Graph.
    _, oid, _ = _first_device(tenant, tmp_path)
    graph = tenant.graph()
    graph.patch_key_credentials(oid, _with_new_certificates(graph, oid, "dev", 70))
    assert len(graph.key_credentials(oid)) == 71


def test_rotate_as_the_blueprint_names_the_policy_that_refuses_its_certificate(tenant: Tenant, tmp_path: Path) -> None:
    """The Blueprint rolling its own key cannot read the policy (no Policy.Read.All for it) and issues the
    default lifetime; Graph's CredentialInvalidLifetimeAsPerAppPolicy becomes the typed error naming the
    policy and the admin rotation that reads it, not a raw Graph error."""
    from provisioning_helpers import run_cli

    _limit(tenant, max_certificate_lifetime_days=90)
    home = tmp_path / "d"
    assert tenant.setup(home).run().completed
    before = read_device_config(home / ".env", environ={})["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    out = run_cli("rotate", "--state-dir", str(home), "--as-blueprint", "--force", "--propagation-timeout", "5")
    assert out.returncode != 0
    assert "App management policy" in out.stderr and "rotate --force --device-code" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    # Nothing lost: the old key still signs in.
    assert read_device_config(home / ".env", environ={})["ENTRACLAW_BLUEPRINT_CERT_SHA1"] == before
    assert chain_from_config(home).me_upn


def test_doctor_prunes_the_expired_certificates_of_retired_devices_and_keeps_the_valid_ones(
    tenant: Tenant, tmp_path: Path
) -> None:
    """`entraclaw doctor --prune-expired` (admin sign-in): the limit's way out names a command that exists."""
    from entraclaw.provisioning.doctor import run_doctor

    home, object_id, _app_id = _first_device(tenant, tmp_path)
    second = tmp_path / "device-1"
    assert tenant.setup(second, patch_key_credentials=True).run().completed
    app = tenant.emu.tenant.application_by_object_id(object_id)
    assert app is not None
    expired = [
        make_cert(i, cn="retired", days=30, not_before=_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=60)).cert
        for i in range(3)
    ]
    tenant.emu.tenant.set_key_credentials(object_id, [*app.key_credentials, *expired])
    graph = tenant.graph()
    assert len(graph.key_credentials(object_id)) == 5
    looked = run_doctor(state_dir=home, admin_graph=graph, smoke=False)
    check = next(c for c in looked.checks if c.name == "expired certificates")
    assert check.status == "warn" and "3 of 5" in check.detail and "--prune-expired" in check.remedy
    assert len(graph.key_credentials(object_id)) == 5  # looking removes nothing
    pruned = run_doctor(state_dir=home, admin_graph=graph, smoke=False, prune_expired=True)
    check = next(c for c in pruned.checks if c.name == "expired certificates")
    assert check.status == "ok" and check.detail.startswith("removed 3"), check
    left = {c.sha1 for c in graph.key_credentials(object_id)}
    mine = read_device_config(home / ".env", environ={})["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    other = read_device_config(second / ".env", environ={})["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    assert left == {mine, other}
    assert chain_from_config(second).me_upn  # the other device still signs in
    again = run_doctor(state_dir=home, admin_graph=graph, smoke=False, prune_expired=True)
    assert next(c for c in again.checks if c.name == "expired certificates").detail == "none of the 2 on the Blueprint"
