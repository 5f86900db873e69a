"""Graph's real permission ids and scope vocabulary, and the lag before consent and roles reach tokens.

Sources: upstream's literal appRoleId GUIDs (microsoft/entraclaw scripts/entra_provisioning.py:44,
scripts/create_entra_agent_ids.py:695, docs/reference/agent-foundry-create-entra-agent-ids.py:69) and
its consent scope list (CEA:587-591, evidence #19); 30-120 s before permission changes reach tokens
(HWL Learning #8, evidence #5). Ids per entry: src/entraclaw/emulator/data/graph_permissions.json.
"""

from __future__ import annotations

import datetime as _dt

import jwt
import pytest

from emulator_helpers import admin_token, app_token, graph_blueprint, graph_call, make_cert
from entraclaw.emulator import Emulator

pytest_plugins = ["emulator_helpers"]

UPSTREAM_ROLE_IDS = {
    "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9": "Application.ReadWrite.All",
    "06b708a9-e830-4db3-a914-8e69da51d44f": "AppRoleAssignment.ReadWrite.All",
    "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30": "Application.Read.All",
}
UPSTREAM_CONSENT = "Chat.Create ChatMessage.Send Files.ReadWrite Sites.ReadWrite.All"


def _roles(emu: Emulator, app_id: str, cert) -> list[str]:
    return list(jwt.decode(app_token(emu, app_id, cert), options={"verify_signature": False}).get("roles", []))


def test_graph_principal_publishes_the_real_ids(emu: Emulator) -> None:
    r = graph_call(
        emu, "GET", f"/servicePrincipals(appId='{'00000003-0000-0000-c000-000000000000'}')", admin_token(emu)
    )
    assert r.status_code == 200, r.text
    roles = {role["id"]: role["value"] for role in r.json()["appRoles"]}
    for role_id, name in UPSTREAM_ROLE_IDS.items():
        assert roles[role_id] == name
    scopes = {s["value"]: s["id"] for s in r.json()["oauth2PermissionScopes"]}
    assert scopes["User.Read"] == "e1fe6dd8-ba31-4d61-89e7-88639da4683d"
    assert scopes["ChatMessage.Send"] == "116b7235-7cc6-461e-b163-8e55691d839e"


def test_upstream_literal_role_guids_assign_the_roles(emu: Emulator) -> None:
    token = admin_token(emu)
    cert = make_cert(12)
    bp = graph_blueprint(emu, token, cert=cert)
    sp_id = bp["principal"]["id"]
    for role_id in UPSTREAM_ROLE_IDS:
        body = {"principalId": sp_id, "resourceId": emu.tenant.graph_sp.object_id, "appRoleId": role_id}
        r = graph_call(emu, "POST", f"/servicePrincipals/{sp_id}/appRoleAssignments", token, json=body)
        assert r.status_code == 201, r.text
        assert r.json()["appRoleId"] == role_id
    assert sorted(_roles(emu, bp["appId"], cert)) == sorted(UPSTREAM_ROLE_IDS.values())


def _grant_body(emu: Emulator, s, scope: str) -> dict[str, str]:
    now = _dt.datetime.fromtimestamp(emu.clock(), _dt.timezone.utc)
    return {
        "clientId": s.ai.object_id,
        "consentType": "Principal",
        "principalId": s.au.object_id,
        "resourceId": emu.tenant.graph_sp.object_id,
        "scope": scope,
        "startTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expiryTime": (now + _dt.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _t3_scopes(s) -> set[str]:
    t1 = s.t1()
    r = s.post_token(s.hop3_form(t1, s.t2(t1), msal_style=False))
    assert r.status_code == 200, r.text
    return set(jwt.decode(r.json()["access_token"], options={"verify_signature": False})["scp"].split())


def test_upstream_consent_scopes_are_granted_and_reach_t3(fresh) -> None:
    s = fresh
    r = graph_call(
        s.emu, "POST", "/oauth2PermissionGrants", admin_token(s.emu), json=_grant_body(s.emu, s, UPSTREAM_CONSENT)
    )
    assert r.status_code == 201, r.text
    assert set(UPSTREAM_CONSENT.split()) <= _t3_scopes(s)


def test_an_unknown_scope_name_is_refused(fresh) -> None:
    s = fresh
    body = _grant_body(s.emu, s, "Chat.Create Not.A.Graph.Scope")
    r = graph_call(s.emu, "POST", "/oauth2PermissionGrants", admin_token(s.emu), json=body)
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("delay", [60.0])
def test_consent_and_roles_reach_tokens_after_the_permission_delay(fresh, delay: float) -> None:
    s = fresh
    emu = s.emu
    emu.permission_delay = delay
    token = admin_token(emu)
    r = graph_call(emu, "POST", "/oauth2PermissionGrants", token, json=_grant_body(emu, s, "Mail.Send"))
    assert r.status_code == 201, r.text
    # The grant is there on Graph at once, but tokens carry the old consent until the delay passes.
    assert graph_call(emu, "GET", f"/oauth2PermissionGrants/{r.json()['id']}", token).status_code == 200
    assert "Mail.Send" not in _t3_scopes(s)
    r = graph_call(
        emu, "PATCH", f"/oauth2PermissionGrants/{r.json()['id']}", token, json={"scope": "Mail.Send Chat.Create"}
    )
    assert r.status_code == 204, r.text
    emu.advance_clock(delay - 1)
    assert {"Mail.Send", "Chat.Create"}.isdisjoint(_t3_scopes(s))
    emu.advance_clock(2)
    assert {"Mail.Send", "Chat.Create"} <= _t3_scopes(s)

    cert = make_cert(12)
    bp = graph_blueprint(emu, admin_token(emu), cert=cert)
    sp_id = bp["principal"]["id"]
    body = {
        "principalId": sp_id,
        "resourceId": emu.tenant.graph_sp.object_id,
        "appRoleId": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    }
    assert (
        graph_call(
            emu, "POST", f"/servicePrincipals/{sp_id}/appRoleAssignments", admin_token(emu), json=body
        ).status_code
        == 201
    )
    assert _roles(emu, bp["appId"], cert) == []
    emu.advance_clock(delay + 1)
    assert _roles(emu, bp["appId"], cert) == ["Application.Read.All"]


def test_serve_takes_a_permission_delay(tmp_path) -> None:
    from emulator_helpers import serve, stop_serve

    proc, info = serve("--state", str(tmp_path / "s.json"), "--permission-delay", "45")
    try:
        assert info["permission_delay"] == "45.0"
    finally:
        stop_serve(proc)
