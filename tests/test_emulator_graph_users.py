"""Graph /users over real sockets: Agent Users made over Graph, and the whole chain they then run (Hops 1-3 and /me)."""

from __future__ import annotations

import pytest

from emulator_helpers import (
    admin_token,
    app_token,
    assert_graph_error,
    assert_sts_error,
    device_token,
    graph_blueprint,
    graph_call,
    graph_identity,
    hop1,
    hop2,
    hop3_form,
    make_cert,
    post_token,
)
from entraclaw.emulator import Emulator

pytest_plugins = ["emulator_helpers"]

AGENT_USERS = "/users/microsoft.graph.agentUser"


@pytest.fixture
def world():
    """A Graph-made Blueprint (+ principal, certificate) and Agent Identity; the admin's token."""
    with Emulator() as emu:
        token = admin_token(emu)
        cert = make_cert(15)
        bp = graph_blueprint(emu, token, cert=cert)
        ai = graph_identity(emu, token, bp, "ai").json()
        yield emu, token, cert, bp, ai


def _user_body(emu, ai, name="agent"):
    return {
        "accountEnabled": True,
        "displayName": name,
        "mailNickname": name,
        "userPrincipalName": f"{name}@{emu.tenant.default_domain}",
        "identityParentId": ai["id"],
    }


def _t1_t2(emu, bp, cert, ai):
    t1 = hop1(emu, bp["appId"], cert, ai["appId"]).json()["access_token"]
    return t1, hop2(emu, ai["appId"], t1).json()["access_token"]


def _hop3(emu, ai, t1, t2, user_id):
    return post_token(emu, hop3_form(ai["appId"], t1, t2, user_id))


def test_agent_user_made_over_graph_runs_hop3_and_me(world):
    emu, token, cert, bp, ai = world
    r = graph_call(emu, "POST", AGENT_USERS, token, json=_user_body(emu, ai))
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["@odata.type"] == "#microsoft.graph.agentUser"
    assert user["@odata.context"].endswith("$metadata#users/$entity")
    assert user["identityParentId"] == ai["id"] and user["mailNickname"] == "agent"
    t1, t2 = _t1_t2(emu, bp, cert, ai)
    # No consent yet: Hop 3 is refused as Entra does.
    assert_sts_error(_hop3(emu, ai, t1, t2, user["id"]), 65001, "invalid_grant")
    grant = {
        "clientId": ai["id"],
        "consentType": "Principal",
        "principalId": user["id"],
        "resourceId": emu.tenant.graph_sp.object_id,
        "scope": "User.Read",
        "startTime": "2026-01-01T00:00:00Z",
        "expiryTime": "2036-01-01T00:00:00Z",
    }
    assert graph_call(emu, "POST", "/oauth2PermissionGrants", token, json=grant).status_code == 201
    t3 = _hop3(emu, ai, t1, t2, user["id"])
    assert t3.status_code == 200, t3.text
    me = graph_call(emu, "GET", "/me", t3.json()["access_token"])
    assert me.status_code == 200 and me.json()["id"] == user["id"]
    assert graph_call(emu, "GET", f"/users/{user['userPrincipalName']}", token).json()["id"] == user["id"]


def test_create_through_users_with_odata_type(world):
    emu, token, _cert, _bp, ai = world
    body = {"@odata.type": "microsoft.graph.agentUser", **_user_body(emu, ai)}
    assert graph_call(emu, "POST", "/users", token, json=body).status_code == 201
    r = graph_call(emu, "POST", "/users", token, json=_user_body(emu, ai, "plain"))
    assert_graph_error(r, 400, "Request_BadRequest")


def test_create_refusals(world):
    emu, token, _cert, _bp, ai = world
    for missing in ("accountEnabled", "mailNickname", "userPrincipalName", "identityParentId"):
        body = _user_body(emu, ai)
        del body[missing]
        assert (
            missing
            in assert_graph_error(graph_call(emu, "POST", AGENT_USERS, token, json=body), 400, "Request_BadRequest")[
                "message"
            ]
        )
    body = dict(_user_body(emu, ai), userPrincipalName="agent@not-verified.example")
    err = assert_graph_error(graph_call(emu, "POST", AGENT_USERS, token, json=body), 400, "Request_BadRequest")
    assert "verified domain" in err["message"]
    body = dict(_user_body(emu, ai), identityParentId=emu.tenant.graph_sp.object_id)
    assert_graph_error(graph_call(emu, "POST", AGENT_USERS, token, json=body), 400, "Request_BadRequest")
    assert graph_call(emu, "POST", AGENT_USERS, token, json=_user_body(emu, ai)).status_code == 201
    # One Agent User per Agent Identity (documented 400), and UPNs are unique.
    err = assert_graph_error(
        graph_call(emu, "POST", AGENT_USERS, token, json=_user_body(emu, ai, "second")), 400, "Request_BadRequest"
    )
    assert "identity parent" in err["message"]
    assert_graph_error(
        graph_call(emu, "POST", AGENT_USERS, None, json=_user_body(emu, ai)), 401, "InvalidAuthenticationToken"
    )


def test_identity_parented_by_lets_the_blueprint_create_its_users(world):
    emu, _token, cert, bp, ai = world
    emu.tenant.grant_app_roles(bp["appId"], roles=["AgentIdUser.ReadWrite.IdentityParentedBy"])
    own = app_token(emu, bp["appId"], cert)
    assert graph_call(emu, "POST", AGENT_USERS, own, json=_user_body(emu, ai)).status_code == 201
    stranger_cert = make_cert(16)
    stranger = emu.tenant.add_blueprint("stranger", [stranger_cert.cert])
    emu.tenant.grant_app_roles(stranger.app_id, roles=["AgentIdUser.ReadWrite.IdentityParentedBy"])
    other_ai = emu.tenant.add_agent_identity(bp["appId"], "second")
    body = dict(_user_body(emu, ai, "other"), identityParentId=other_ai.object_id)
    r = graph_call(emu, "POST", AGENT_USERS, app_token(emu, stranger.app_id, stranger_cert), json=body)
    assert_graph_error(r, 403, "Authorization_RequestDenied")


def test_get_filter_delete(world):
    emu, token, _cert, _bp, ai = world
    user = graph_call(emu, "POST", AGENT_USERS, token, json=_user_body(emu, ai)).json()
    r = graph_call(
        emu, "GET", "/users", token, params={"$filter": f"userPrincipalName eq '{user['userPrincipalName']}'"}
    )
    assert [u["id"] for u in r.json()["value"]] == [user["id"]]
    r = graph_call(emu, "GET", AGENT_USERS, token, params={"$filter": f"identityParentId eq '{ai['id']}'"})
    assert [u["id"] for u in r.json()["value"]] == [user["id"]]
    assert graph_call(emu, "GET", f"/users/{user['id']}/microsoft.graph.agentUser", token).status_code == 200
    assert graph_call(emu, "DELETE", f"/users/{user['id']}", token).status_code == 204
    assert_graph_error(graph_call(emu, "GET", f"/users/{user['id']}", token), 404, "Request_ResourceNotFound")


def test_me_for_the_admin_and_for_app_tokens(world):
    emu, token, *_ = world
    me = graph_call(emu, "GET", "/me", device_token(emu, "User.Read openid profile"))
    assert me.status_code == 200 and me.json()["userPrincipalName"] == emu.admin.user_upn
    assert_graph_error(graph_call(emu, "GET", "/me", token), 400, "BadRequest")
