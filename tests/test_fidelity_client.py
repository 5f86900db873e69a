"""Issue 13, client side: what real Entra / Graph need from setup and rotate, and the emulator refusing the rest.

Each test names the page or real-tenant observation it follows (docs/fidelity.md carries the same rows).
"""

from __future__ import annotations

import jwt
import pytest

from emulator_helpers import (
    GRAPH_APP,
    admin_token,
    assert_graph_error,
    graph_blueprint,
    graph_call,
    key_item,
    make_cert,
    make_proof,
)
from entraclaw.auth.certgen import generate_rsa_key, self_signed_certificate
from entraclaw.auth.signer import PemSigner
from entraclaw.provisioning.graph import AgentIdentityInfo
from entraclaw.provisioning.proofs import build_proof

pytest_plugins = ["emulator_helpers"]

AZURE_AD_GRAPH = "00000002-0000-0000-c000-000000000000"


# --- 1. addKey / removeKey proof audience ----------------------------------------------------------
# https://learn.microsoft.com/graph/api/application-addkey and agentidentityblueprint-addkey:
# aud 00000002-0000-0000-c000-000000000000; Graph answers 00000003-... with 401
# Authentication_MissingOrMalformed (github.com/microsoftgraph/microsoft-graph-docs/issues/22076).


def test_proof_audience_is_the_one_graph_documents() -> None:
    key = generate_rsa_key()
    token = build_proof(PemSigner(key, self_signed_certificate(key, "aud")), "oid", now=1_700_000_000)
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == AZURE_AD_GRAPH


@pytest.fixture
def keyed(emu):
    token = admin_token(emu)
    old = make_cert(8)
    return emu, token, graph_blueprint(emu, token, name="Blueprint", cert=old), old


@pytest.mark.parametrize("action", ["addKey", "removeKey"])
def test_emulator_refuses_a_proof_for_graphs_own_app_id(keyed, action) -> None:
    emu, token, bp, old = keyed
    proof = make_proof(old, bp["id"], now=emu.clock(), aud=GRAPH_APP)
    body = (
        {"keyCredential": key_item(make_cert(9)), "passwordCredential": None, "proof": proof}
        if action == "addKey"
        else {"keyId": emu.tenant.application(bp["appId"]).key_credentials[0].key_id, "proof": proof}
    )
    r = graph_call(emu, "POST", f"/applications/{bp['id']}/{action}", token, json=body)
    err = assert_graph_error(r, 401, "Authentication_MissingOrMalformed")
    assert AZURE_AD_GRAPH in err["message"]
    assert len(emu.tenant.application(bp["appId"]).key_credentials) == 1  # nothing changed


# --- 2. consent grants carry startTime and expiryTime ----------------------------------------------
# Real tenant: 400 "Missing property: startTime" (upstream hard-won-learnings #10); expiryTime is
# documented beside it on https://learn.microsoft.com/graph/api/resources/oauth2permissiongrant.
# grant_body: the shared fixture of emulator_helpers.


@pytest.mark.parametrize("missing", ["startTime", "expiryTime"])
def test_emulator_refuses_a_grant_without_start_or_expiry_time(fresh, grant_body, missing) -> None:
    body = grant_body(**{missing: None})
    r = graph_call(fresh.emu, "POST", "/oauth2PermissionGrants", admin_token(fresh.emu), json=body)
    err = assert_graph_error(r, 400, "Request_BadRequest")
    assert err["message"] == f"Missing property: {missing}"


def test_emulator_refuses_a_grant_time_that_is_not_a_date(fresh, grant_body) -> None:
    r = graph_call(
        fresh.emu, "POST", "/oauth2PermissionGrants", admin_token(fresh.emu), json=grant_body(startTime="soon")
    )
    assert_graph_error(r, 400, "Request_BadRequest")
    ok = graph_call(fresh.emu, "POST", "/oauth2PermissionGrants", admin_token(fresh.emu), json=grant_body())
    assert ok.status_code == 201, ok.text


def test_client_grant_carries_start_and_expiry_time(fresh) -> None:
    from provisioning_helpers import make_tenant

    graph = make_tenant(fresh.emu).graph()
    seen: list[dict] = []
    original = graph.request

    def spy(method, path, **kw):
        if method == "POST" and path == "oauth2PermissionGrants":
            seen.append(dict(kw["json_body"]))
        return original(method, path, **kw)

    graph.request = spy  # type: ignore[method-assign]
    graph.create_permission_grant(
        client_id=fresh.ai.object_id,
        resource_id=fresh.emu.tenant.graph_sp.object_id,
        scopes=["User.Read"],
        principal_id=fresh.au.object_id,
    )
    assert seen and seen[0]["startTime"] < seen[0]["expiryTime"]


# --- 3. Agent User lookups name what they need; Agent Identity appId falls back to id --------------
# https://learn.microsoft.com/graph/api/agentuser-list and agentuser-get: only a default subset of
# properties unless $select names others (user-get: the default set).


def test_emulator_agent_user_reads_return_the_default_subset(fresh) -> None:
    emu, token = fresh.emu, admin_token(fresh.emu)
    upn = fresh.au.upn
    listed = graph_call(
        emu, "GET", "/users/microsoft.graph.agentUser", token, params={"$filter": f"userPrincipalName eq '{upn}'"}
    ).json()["value"][0]
    got = graph_call(emu, "GET", f"/users/{fresh.au.object_id}", token).json()
    for body in (listed, got):
        assert "identityParentId" not in body and "mailNickname" not in body
        assert body["userPrincipalName"] == upn and body["id"] == fresh.au.object_id
    chosen = graph_call(
        emu,
        "GET",
        "/users/microsoft.graph.agentUser",
        token,
        params={"$filter": f"userPrincipalName eq '{upn}'", "$select": "id,identityParentId"},
    ).json()["value"][0]
    assert set(chosen) - {"@odata.type"} == {"id", "identityParentId"}
    assert chosen["identityParentId"] == fresh.ai.object_id


def test_client_agent_user_lookup_sees_its_identity_parent(fresh) -> None:
    from provisioning_helpers import make_tenant

    graph = make_tenant(fresh.emu).graph()
    found = graph.find_agent_user(fresh.au.upn)
    assert found is not None and found.identity_parent_id == fresh.ai.object_id
    assert found.display_name and found.upn == fresh.au.upn


def test_agent_identity_app_id_falls_back_to_its_object_id() -> None:
    oid = "11111111-2222-3333-4444-555555555555"
    assert AgentIdentityInfo.from_json({"id": oid, "displayName": "x"}).app_id == oid
    assert AgentIdentityInfo.from_json({"id": oid, "appId": ""}).app_id == oid
