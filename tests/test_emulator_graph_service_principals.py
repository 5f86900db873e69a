"""Graph /servicePrincipals over real sockets: Blueprint principals, Agent Identities, app roles, propagation.

What Graph creates is what the token service authenticates: an Agent Identity made over Graph works
as Hop 1's fmi_path and as Hop 2's client; a Blueprint without a principal is refused (AADSTS7000229).
"""

from __future__ import annotations

from emulator_helpers import (
    IDENTITIES,
    PRINCIPALS,
    admin_token,
    app_token,
    assert_graph_error,
    assert_sts_error,
    graph_blueprint,
    graph_call,
    graph_identity,
    hop1,
    hop2,
    make_cert,
)
from entraclaw.emulator.tenant import permission_id

pytest_plugins = ["emulator_helpers"]


def test_blueprint_principal_and_identity_work_in_hops_1_and_2(emu):
    token = admin_token(emu)
    cert = make_cert(12)
    bp = graph_blueprint(emu, token, cert=cert)
    sp = bp["principal"]
    assert sp["@odata.type"] == "#microsoft.graph.agentIdentityBlueprintPrincipal"
    assert sp["@odata.context"].endswith(
        "$metadata#servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal/$entity"
    )
    assert sp["appId"] == bp["appId"] and sp["servicePrincipalNames"] == [bp["appId"]]
    r = graph_identity(emu, token, bp)
    assert r.status_code == 201, r.text
    ai = r.json()
    assert ai["@odata.type"] == "#microsoft.graph.agentIdentity"
    assert ai["servicePrincipalType"] == "ServiceIdentity"
    assert ai["agentIdentityBlueprintId"] == bp["appId"] and ai["createdByAppId"] == emu.admin.app_id
    t1 = hop1(emu, bp["appId"], cert, ai["appId"])
    assert t1.status_code == 200, t1.text
    t2 = hop2(emu, ai["appId"], t1.json()["access_token"])
    assert t2.status_code == 200, t2.text
    got = graph_call(emu, "GET", f"/servicePrincipals/{ai['id']}", token)
    assert got.status_code == 200 and got.json()["agentIdentityBlueprintId"] == bp["appId"]


def test_blueprint_without_principal_is_refused_by_the_token_service(emu):
    token = admin_token(emu)
    cert = make_cert(12)
    bp = graph_blueprint(emu, token, cert=cert, principal=False)
    r = hop1(emu, bp["appId"], cert, "00000000-0000-0000-0000-000000000001")
    body = assert_sts_error(r, 7000229, "invalid_client")
    assert "missing service principal" in body["error_description"]
    r = graph_identity(emu, token, bp)
    assert_graph_error(r, 400, "AgentIdentity_AgentBlueprintPrincipalDoesNotExist")


def test_principal_and_identity_refusals(emu):
    token = admin_token(emu)
    plain = graph_call(emu, "POST", "/applications", token, json={"displayName": "plain"}).json()
    r = graph_call(emu, "POST", PRINCIPALS, token, json={"appId": plain["appId"]})
    assert_graph_error(r, 400, "AgentBlueprintPrincipal_requireAgentBlueprint")
    r = graph_identity(emu, token, {"appId": plain["appId"]})
    assert_graph_error(r, 400, "AgentIdentity_IncompatibleParentType")
    bp = graph_blueprint(emu, token)
    r = graph_call(emu, "POST", PRINCIPALS, token, json={"appId": bp["appId"]})
    assert_graph_error(r, 400, "Request_MultipleObjectsWithSameKeyValue")
    r = graph_call(emu, "POST", PRINCIPALS, token, json={"appId": "44444444-4444-4444-4444-444444444444"})
    assert_graph_error(r, 404, "Request_ResourceNotFound")
    r = graph_call(emu, "POST", IDENTITIES, token, json={"displayName": "x", "agentIdentityBlueprintId": bp["appId"]})
    assert "sponsor" in assert_graph_error(r, 400, "Request_BadRequest")["message"]
    assert_graph_error(graph_call(emu, "GET", "/servicePrincipals/not-a-guid", token), 404, "Request_ResourceNotFound")
    assert_graph_error(graph_identity(emu, None, bp), 401, "InvalidAuthenticationToken")


def test_identity_creation_rules_for_blueprints_and_identities(emu):
    token = admin_token(emu)
    cert, other_cert = make_cert(12), make_cert(13)
    bp = graph_blueprint(emu, token, cert=cert)
    other = graph_blueprint(emu, token, cert=other_cert)
    for app in (bp, other):
        emu.tenant.grant_app_roles(app["appId"], roles=["AgentIdentity.CreateAsManager"])
    own = app_token(emu, bp["appId"], cert)
    assert graph_identity(emu, own, bp).status_code == 201  # a Blueprint creates its own
    r = graph_identity(emu, own, other)
    assert_graph_error(r, 403, "Error_AgentBlueprintCannotCreateAssociatedIdentity")
    # Without the role, a Blueprint that is not an owner is refused.
    weak_cert = make_cert(14)
    weak = emu.tenant.add_application("weak", [weak_cert.cert])
    assert_graph_error(
        graph_identity(emu, app_token(emu, weak.app_id, weak_cert), bp), 403, "Authorization_RequestDenied"
    )


def test_list_filter_and_graph_resource_principal(emu):
    token = admin_token(emu)
    bp = graph_blueprint(emu, token)
    made = [graph_identity(emu, token, bp, name=f"ai-{i}").json() for i in range(3)]
    # Graph has no $filter on agentIdentityBlueprintId (tests/test_emulator_graph_versions.py): page and pick.
    r = graph_call(emu, "GET", IDENTITIES, token, params={"$top": "2"})
    body = r.json()
    assert r.status_code == 200 and len(body["value"]) == 2 and "@odata.nextLink" in body
    rest = graph_call(emu, "GET", body["@odata.nextLink"], token).json()
    mine = [i["id"] for i in body["value"] + rest["value"] if i["agentIdentityBlueprintId"] == bp["appId"]]
    assert sorted(mine) == sorted(m["id"] for m in made)
    r = graph_call(
        emu, "GET", "/servicePrincipals", token, params={"$filter": "appId eq '00000003-0000-0000-c000-000000000000'"}
    )
    (graph,) = r.json()["value"]
    assert graph["displayName"] == "Microsoft Graph"
    values = {role["value"]: role["id"] for role in graph["appRoles"]}
    assert values["AgentIdUser.ReadWrite.IdentityParentedBy"] == permission_id(
        "AgentIdUser.ReadWrite.IdentityParentedBy", "role"
    )
    assert "User.Read" in {s["value"] for s in graph["oauth2PermissionScopes"]}


def test_app_role_assignment_reaches_the_token(emu):
    token = admin_token(emu)
    cert = make_cert(12)
    bp = graph_blueprint(emu, token, cert=cert)
    graph_sp = emu.tenant.graph_sp.object_id
    sp_id = bp["principal"]["id"]
    body = {
        "principalId": sp_id,
        "resourceId": graph_sp,
        "appRoleId": permission_id("AgentIdUser.ReadWrite.IdentityParentedBy", "role"),
    }
    r = graph_call(emu, "POST", f"/servicePrincipals/{sp_id}/appRoleAssignments", token, json=body)
    assert r.status_code == 201, r.text
    assignment = r.json()
    assert (assignment["principalType"], assignment["resourceDisplayName"]) == ("ServicePrincipal", "Microsoft Graph")
    assert_graph_error(
        graph_call(emu, "POST", f"/servicePrincipals/{sp_id}/appRoleAssignments", token, json=body),
        400,
        "Request_MultipleObjectsWithSameKeyValue",
    )
    import jwt

    claims = jwt.decode(app_token(emu, bp["appId"], cert), options={"verify_signature": False})
    assert claims["roles"] == ["AgentIdUser.ReadWrite.IdentityParentedBy"] and claims["oid"] == sp_id
    listed = graph_call(emu, "GET", f"/servicePrincipals/{sp_id}/appRoleAssignments", token).json()["value"]
    assert [a["id"] for a in listed] == [assignment["id"]]
    bad = dict(body, appRoleId="44444444-4444-4444-4444-444444444444")
    assert_graph_error(
        graph_call(emu, "POST", f"/servicePrincipals/{sp_id}/appRoleAssignments", token, json=bad),
        400,
        "Request_BadRequest",
    )
    r = graph_call(emu, "DELETE", f"/servicePrincipals/{sp_id}/appRoleAssignments/{assignment['id']}", token)
    assert r.status_code == 204
    assert "roles" not in jwt.decode(app_token(emu, bp["appId"], cert), options={"verify_signature": False})


def test_delete_identity_and_principal(emu):
    token = admin_token(emu)
    cert = make_cert(12)
    bp = graph_blueprint(emu, token, cert=cert)
    ai = graph_identity(emu, token, bp).json()
    assert graph_call(emu, "DELETE", f"/servicePrincipals/{ai['id']}", token).status_code == 204
    assert_sts_error(hop1(emu, bp["appId"], cert, ai["appId"]), 70000, "invalid_grant")
    assert graph_call(emu, "DELETE", f"/servicePrincipals/{bp['principal']['id']}", token).status_code == 204
    assert_sts_error(hop1(emu, bp["appId"], cert, ai["appId"]), 7000229, "invalid_client")


def test_new_principals_propagate_after_the_delay(emu):
    token = admin_token(emu)
    cert = make_cert(12)
    emu.propagation_delay = 30
    bp = graph_blueprint(emu, token, principal=False)
    # Graph refuses writes naming the propagating Blueprint (test_propagation_writes.py); the
    # certificate, principal and Agent Identity are seeded as if they had been written already.
    emu.tenant.set_key_credentials(bp["id"], [cert.cert])
    emu.tenant.add_service_principal(bp["appId"], over_graph=True)
    seeded = emu.tenant.add_agent_identity(bp["appId"], "agent", over_graph=True)
    ai = {"id": seeded.object_id, "appId": seeded.app_id}
    # Not yet replicated: the Blueprint is unknown to the token service, reads by id 404.
    assert_sts_error(hop1(emu, bp["appId"], cert, ai["appId"]), 700016, "unauthorized_client")
    assert_graph_error(graph_call(emu, "GET", f"/servicePrincipals/{ai['id']}", token), 404, "Request_ResourceNotFound")
    assert_graph_error(graph_call(emu, "GET", f"/applications/{bp['id']}", token), 404, "Request_ResourceNotFound")
    emu.advance_clock(31)
    t1 = hop1(emu, bp["appId"], cert, ai["appId"])
    assert t1.status_code == 200, t1.text
    assert hop2(emu, ai["appId"], t1.json()["access_token"]).status_code == 200
    assert graph_call(emu, "GET", f"/servicePrincipals/{ai['id']}", admin_token(emu)).status_code == 200
