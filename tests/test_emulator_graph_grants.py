"""Graph /oauth2PermissionGrants over real sockets: consent for all principals or one Agent User, as Hop 3 reads it."""

from __future__ import annotations

from emulator_helpers import (
    admin_token,
    app_token,
    assert_graph_error,
    assert_sts_error,
    graph_call,
    make_cert,
)

pytest_plugins = ["emulator_helpers"]


def test_principal_grant_is_per_user(fresh, grant_body):
    emu = fresh.emu
    token = admin_token(emu)
    emu.tenant.revoke_consent(fresh.ai.app_id)
    t1 = fresh.t1()
    assert_sts_error(fresh.post_token(fresh.hop3_form(t1, fresh.t2(t1))), 65001, "invalid_grant")
    r = graph_call(emu, "POST", "/oauth2PermissionGrants", token, json=grant_body(scope="User.Read"))
    assert r.status_code == 201, r.text
    grant = r.json()
    assert grant["consentType"] == "Principal" and grant["principalId"] == fresh.au.object_id
    assert grant["@odata.context"].endswith("$metadata#oauth2PermissionGrants/$entity")
    r = fresh.post_token(fresh.hop3_form(t1, fresh.t2(t1)))
    assert r.status_code == 200, r.text
    # Another Agent Identity's user is not covered by this user's grant.
    emu.tenant.revoke_consent(fresh.ai2.app_id)
    t1b = fresh.t1(fresh.ai2, fresh.bp2, fresh.other_cert)
    form = fresh.hop3_form(t1b, fresh.t2(t1b, fresh.ai2), fresh.ai2, user_id=fresh.au2.object_id)
    assert_sts_error(fresh.post_token(form), 65001, "invalid_grant")


def test_list_filter_patch_delete(fresh, grant_body):
    emu = fresh.emu
    token = admin_token(emu)
    made = graph_call(emu, "POST", "/oauth2PermissionGrants", token, json=grant_body()).json()
    r = graph_call(
        emu, "GET", "/oauth2PermissionGrants", token, params={"$filter": f"clientId eq '{fresh.ai.object_id}'"}
    )
    ids = {g["id"] for g in r.json()["value"]}
    assert made["id"] in ids and len(ids) == 2  # the seeded AllPrincipals grant and this one
    r = graph_call(
        emu, "GET", "/oauth2PermissionGrants", token, params={"$filter": "consentType eq 'Principal'", "$top": "1"}
    )
    assert [g["id"] for g in r.json()["value"]] == [made["id"]] and "@odata.nextLink" not in r.json()
    r = graph_call(emu, "PATCH", f"/oauth2PermissionGrants/{made['id']}", token, json={"scope": "User.Read"})
    assert r.status_code == 204
    assert graph_call(emu, "GET", f"/oauth2PermissionGrants/{made['id']}", token).json()["scope"] == "User.Read"
    assert graph_call(emu, "DELETE", f"/oauth2PermissionGrants/{made['id']}", token).status_code == 204
    assert_graph_error(
        graph_call(emu, "GET", f"/oauth2PermissionGrants/{made['id']}", token), 404, "Request_ResourceNotFound"
    )


def test_refusals(fresh, grant_body):
    emu = fresh.emu
    token = admin_token(emu)
    assert graph_call(emu, "POST", "/oauth2PermissionGrants", token, json=grant_body()).status_code == 201
    r = graph_call(emu, "POST", "/oauth2PermissionGrants", token, json=grant_body())
    assert_graph_error(r, 400, "Request_MultipleObjectsWithSameKeyValue")
    for bad in (
        grant_body(consentType="Everyone"),
        grant_body(principalId=None),
        grant_body(consentType="AllPrincipals"),
        grant_body(resourceId=fresh.ai.object_id),
        grant_body(scope="No.Such.Scope"),
        grant_body(clientId="44444444-4444-4444-4444-444444444444"),
    ):
        assert_graph_error(
            graph_call(emu, "POST", "/oauth2PermissionGrants", token, json=bad), 400, "Request_BadRequest"
        )
    cert = make_cert(17)
    reader = emu.tenant.add_application("reader", [cert.cert])
    emu.tenant.grant_app_roles(reader.app_id, roles=["DelegatedPermissionGrant.Read.All"])
    weak = app_token(emu, reader.app_id, cert)
    assert graph_call(emu, "GET", "/oauth2PermissionGrants", weak).status_code == 200
    r = graph_call(
        emu, "POST", "/oauth2PermissionGrants", weak, json=grant_body(consentType="AllPrincipals", principalId=None)
    )
    assert_graph_error(r, 403, "Authorization_RequestDenied")
    assert_graph_error(graph_call(emu, "GET", "/oauth2PermissionGrants"), 401, "InvalidAuthenticationToken")
