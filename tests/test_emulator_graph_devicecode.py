"""The device authorization grant: MSAL's device flow against the emulator, and each polling answer Entra gives."""

from __future__ import annotations

import jwt
import msal

from emulator_helpers import DEVICE_GRANT, assert_graph_error, assert_sts_error, graph_call

pytest_plugins = ["emulator_helpers"]


def test_msal_device_flow_with_auto_approve(emu):
    emu.auto_approve = True
    app = msal.PublicClientApplication(
        emu.admin.client_id,
        authority=emu.authority,
        instance_discovery=False,
        validate_authority=False,
        http_client=emu.session(),
    )
    flow = app.initiate_device_flow(scopes=["https://graph.microsoft.com/.default"])
    assert "user_code" in flow, flow
    assert flow["verification_uri"] == f"{emu.base_url}/devicelogin" and flow["interval"] == 5
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    claims = jwt.decode(
        result["access_token"], emu.signing_public_key, algorithms=["RS256"], audience="https://graph.microsoft.com"
    )
    assert claims["idtyp"] == "user" and claims["upn"] == emu.admin.user_upn
    assert "AgentIdentityBlueprint.Create" in claims["scp"].split()
    assert "Directory.AccessAsUser.All" not in claims["scp"].split()
    assert app.get_accounts()[0]["username"] == emu.admin.user_upn
    me = graph_call(emu, "GET", "/me", result["access_token"])
    assert me.status_code == 200 and me.json()["id"] == emu.admin.user_id


def _start(s, emu, scope="User.Read", client_id=None):
    r = s.post(
        f"{emu.authority}/oauth2/v2.0/devicecode", data={"client_id": client_id or emu.admin.client_id, "scope": scope}
    )
    return r


def _poll(s, emu, device_code, client_id=None):
    data = {"grant_type": DEVICE_GRANT, "client_id": client_id or emu.admin.client_id, "device_code": device_code}
    return s.post(emu.token_endpoint, data=data)


def test_pending_slow_down_approve(emu):
    with emu.session() as s:
        flow = _start(s, emu).json()
        assert_sts_error(_poll(s, emu, flow["device_code"]), 70016, "authorization_pending")
        assert_sts_error(_poll(s, emu, flow["device_code"]), 70016, "slow_down")  # sooner than interval
        emu.advance_clock(6)
        assert_sts_error(_poll(s, emu, flow["device_code"]), 70016, "authorization_pending")
        ok = s.post(f"{emu.base_url}/devicelogin", data={"user_code": flow["user_code"]})
        assert ok.status_code == 200
        r = _poll(s, emu, flow["device_code"])
        assert r.status_code == 200, r.text
        assert r.json()["scope"].split() == ["User.Read"]
        # A device code is redeemed once.
        assert_sts_error(_poll(s, emu, flow["device_code"]), 70018, "bad_verification_code")


def test_declined_expired_unknown(emu):
    emu.admin  # noqa: B018 - seeds the admin and the public client
    with emu.session() as s:
        flow = _start(s, emu).json()
        assert (
            s.post(f"{emu.base_url}/devicelogin", data={"user_code": flow["user_code"], "action": "deny"}).status_code
            == 200
        )
        assert_sts_error(_poll(s, emu, flow["device_code"]), 65004, "authorization_declined")
        flow = _start(s, emu).json()
        emu.advance_clock(901)
        assert_sts_error(_poll(s, emu, flow["device_code"]), 70019, "expired_token")
        assert s.post(f"{emu.base_url}/devicelogin", data={"user_code": flow["user_code"]}).status_code == 404
        assert_sts_error(_poll(s, emu, "not-a-code"), 70018, "bad_verification_code")


def test_device_code_refusals(emu):
    with emu.session() as s:
        assert_sts_error(_start(s, emu, client_id=emu.admin.app_id), 7000218, "invalid_client")  # confidential app
        assert_sts_error(
            _start(s, emu, client_id="44444444-4444-4444-4444-444444444444"), 700016, "unauthorized_client"
        )
        assert_sts_error(_start(s, emu, scope="https://example.test/Read"), 70011, "invalid_scope")


def test_agent_user_token_cannot_write_agent_ids(fresh):
    """A T3 (the Agent User's delegated token) carries no admin role: Graph refuses Agent ID writes."""
    t1 = fresh.t1()
    t3 = fresh.post_token(fresh.hop3_form(t1, fresh.t2(t1))).json()["access_token"]
    body = {"displayName": "x", "sponsors@odata.bind": [f"{fresh.emu.graph_url}/users/{fresh.au.object_id}"]}
    r = graph_call(fresh.emu, "POST", "/applications/microsoft.graph.agentIdentityBlueprint", t3, json=body)
    assert_graph_error(r, 403, "Authorization_RequestDenied")
