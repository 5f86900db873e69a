"""Graph as upstream called it on real tenants: ``/beta``, ``@odata.type`` creates, ``$filter`` limits.

Sources: Agent ID APIs called on ``/beta`` (evidence #12: AIB:360, EAU:68); ``POST /servicePrincipals``
with ``"@odata.type": "#microsoft.graph.agentIdentity"`` (agentidentity-post; evidence #18,
CEA:293-302); ``$filter`` on ``agentIdentityBlueprintId`` not supported (evidence #21, CEA:218-219).
"""

from __future__ import annotations

import pytest

from emulator_helpers import (
    admin_token,
    assert_graph_error,
    graph_blueprint,
    graph_call,
    hop1,
    hop2,
    make_cert,
    sponsor_bind,
)

pytest_plugins = ["emulator_helpers"]


def test_beta_serves_the_agent_id_api(emu):
    token = admin_token(emu)
    beta = emu.base_url + "/beta"
    r = graph_call(
        emu,
        "POST",
        f"{beta}/applications/microsoft.graph.agentIdentityBlueprint",
        token,
        json={"displayName": "on beta", "sponsors@odata.bind": sponsor_bind(emu)},
    )
    assert r.status_code == 201, r.text
    assert r.json()["@odata.context"].startswith(f"{beta}/$metadata#applications")
    assert r.headers["Location"] == f"{beta}/applications/{r.json()['id']}"
    got = graph_call(emu, "GET", f"{beta}/applications/{r.json()['id']}", token)
    assert got.status_code == 200 and got.json()["displayName"] == "on beta"
    # Same directory on both versions.
    assert graph_call(emu, "GET", f"/applications/{r.json()['id']}", token).status_code == 200
    # Unknown versions are not Graph.
    assert graph_call(emu, "GET", f"{emu.base_url}/v2.0/applications", token).status_code == 404


def test_beta_errors_have_graphs_shape(emu):
    r = graph_call(emu, "GET", f"{emu.base_url}/beta/applications")
    assert_graph_error(r, 401, "InvalidAuthenticationToken")


@pytest.mark.parametrize("odata_type", ["#microsoft.graph.agentIdentity", "Microsoft.Graph.AgentIdentity"])
def test_post_service_principals_with_agent_identity_type_creates_one(emu, odata_type):
    token = admin_token(emu)
    cert = make_cert(12)
    bp = graph_blueprint(emu, token, cert=cert)
    body = {
        "@odata.type": odata_type,
        "displayName": "typed identity",
        "agentIdentityBlueprintId": bp["appId"],
        "sponsors@odata.bind": sponsor_bind(emu),
    }
    r = graph_call(emu, "POST", "/servicePrincipals", token, json=body)
    assert r.status_code == 201, r.text
    ai = r.json()
    assert ai["@odata.type"] == "#microsoft.graph.agentIdentity" and ai["appId"] == ai["id"]
    t1 = hop1(emu, bp["appId"], cert, ai["appId"])
    assert t1.status_code == 200, t1.text
    assert hop2(emu, ai["appId"], t1.json()["access_token"]).status_code == 200


def test_post_service_principals_with_another_type_is_refused(emu):
    token = admin_token(emu)
    r = graph_call(emu, "POST", "/servicePrincipals", token, json={"@odata.type": "#microsoft.graph.user"})
    assert_graph_error(r, 400, "Request_BadRequest")


@pytest.mark.parametrize("path", ["/servicePrincipals", "/servicePrincipals/microsoft.graph.agentIdentity"])
def test_filter_on_agent_identity_blueprint_id_is_unsupported(emu, path):
    token = admin_token(emu)
    bp = graph_blueprint(emu, token)
    r = graph_call(emu, "GET", path, token, params={"$filter": f"agentIdentityBlueprintId eq '{bp['appId']}'"})
    err = assert_graph_error(r, 400, "Request_UnsupportedQuery")
    assert "agentIdentityBlueprintId" in err["message"]
