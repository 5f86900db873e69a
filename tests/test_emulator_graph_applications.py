"""Graph /applications over real sockets: Blueprint CRUD, $filter, paging, addKey/removeKey proofs."""

from __future__ import annotations

import pytest

from emulator_helpers import (
    BLUEPRINTS,
    GRAPH_APP,
    admin_cert,
    admin_token,
    app_token,
    assert_graph_error,
    assert_sts_error,
    client_credentials,
    device_token,
    graph_blueprint,
    graph_call,
    key_item,
    make_assertion,
    make_cert,
    make_proof,
    sponsor_bind,
)
from entraclaw.emulator import Emulator

pytest_plugins = ["emulator_helpers"]


def _create(emu, token, name="Blueprint", path=BLUEPRINTS, **extra):
    body = {"displayName": name, "sponsors@odata.bind": sponsor_bind(emu), **extra}
    return graph_call(emu, "POST", path, token, json=body)


def test_create_blueprint_typed_endpoint(emu):
    token = admin_token(emu)
    r = _create(emu, token)
    assert r.status_code == 201, r.text
    bp = r.json()
    assert bp["@odata.context"].endswith("$metadata#applications/microsoft.graph.agentIdentityBlueprint/$entity")
    assert bp["@odata.type"] == "#microsoft.graph.agentIdentityBlueprint"
    assert bp["displayName"] == "Blueprint" and bp["signInAudience"] == "AzureADMyOrg"
    assert bp["keyCredentials"] == [] and bp["appId"] != bp["id"]
    app = emu.tenant.application(bp["appId"])
    assert app.kind == "blueprint"
    # The creator is recorded as owner (its service principal), the sponsor as sponsor.
    assert emu.tenant.client_sp_id(emu.admin.app_id) in app.owners
    assert app.sponsors == (emu.admin.user_id,)
    got = graph_call(emu, "GET", f"/applications/{bp['id']}", token)
    assert got.status_code == 200 and got.json()["appId"] == bp["appId"]
    by_app_id = graph_call(emu, "GET", f"/applications(appId='{bp['appId']}')", token)
    assert by_app_id.status_code == 200 and by_app_id.json()["id"] == bp["id"]
    cast = graph_call(emu, "GET", f"/applications/{bp['id']}/microsoft.graph.agentIdentityBlueprint", token)
    assert cast.status_code == 200


@pytest.mark.parametrize(
    "odata_type", ["Microsoft.Graph.AgentIdentityBlueprint", "#microsoft.graph.agentIdentityBlueprint"]
)
def test_create_blueprint_through_applications_with_odata_type(emu, odata_type):
    r = _create(emu, admin_token(emu), path="/applications", **{"@odata.type": odata_type})
    assert r.status_code == 201, r.text
    assert emu.tenant.application(r.json()["appId"]).kind == "blueprint"


def test_create_needs_sponsors_and_display_name(emu):
    token = admin_token(emu)
    r = graph_call(emu, "POST", BLUEPRINTS, token, json={"displayName": "no sponsor"})
    assert "sponsor" in assert_graph_error(r, 400, "Request_BadRequest")["message"]
    r = graph_call(emu, "POST", BLUEPRINTS, token, json={"sponsors@odata.bind": sponsor_bind(emu)})
    assert_graph_error(r, 400, "Request_BadRequest")
    r = _create(emu, token, publicClient={"redirectUris": []})
    assert_graph_error(r, 400, "AgentBlueprint_IncompatibleProperty")
    r = graph_call(emu, "POST", BLUEPRINTS, token, data="{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_create_refused_without_token_or_permission(emu):
    assert_graph_error(_create(emu, None), 401, "InvalidAuthenticationToken")
    cert = make_cert(6)
    weak = emu.tenant.add_application("reader", [cert.cert])
    emu.tenant.grant_app_roles(weak.app_id, roles=["Application.Read.All"])
    err = assert_graph_error(_create(emu, app_token(emu, weak.app_id, cert)), 403, "Authorization_RequestDenied")
    assert "AgentIdentityBlueprint.Create" in err["message"]


def test_directory_access_as_user_all_is_refused_by_agent_id_apis(emu):
    token = device_token(
        emu, f"https://graph.microsoft.com/Directory.AccessAsUser.All {GRAPH_APP}/AgentIdentityBlueprint.Create"
    )
    err = assert_graph_error(_create(emu, token), 403, "Authorization_RequestDenied")
    assert "Directory.AccessAsUser.All" in err["message"]
    # The same admin without it may create.
    assert _create(emu, device_token(emu, "AgentIdentityBlueprint.Create")).status_code == 201


def test_delegated_admin_creates_and_owns(emu):
    token = device_token(emu, "https://graph.microsoft.com/.default openid profile")
    r = _create(emu, token)
    assert r.status_code == 201, r.text
    assert emu.admin.user_id in emu.tenant.application(r.json()["appId"]).owners


def test_filter_and_paging(emu):
    token = admin_token(emu)
    made = [_create(emu, token, name=f"bp-{i}").json() for i in range(3)]
    r = graph_call(emu, "GET", "/applications", token, params={"$filter": f"appId eq '{made[1]['appId']}'"})
    assert r.status_code == 200
    assert [a["id"] for a in r.json()["value"]] == [made[1]["id"]]
    r = graph_call(emu, "GET", "/applications", token, params={"$filter": "displayName eq 'BP-2'"})
    assert [a["appId"] for a in r.json()["value"]] == [made[2]["appId"]]
    seen, url = [], "/applications/microsoft.graph.agentIdentityBlueprint?$top=2"
    pages = 0
    while url:
        body = graph_call(emu, "GET", url, token).json()
        seen += [a["id"] for a in body["value"]]
        url = body.get("@odata.nextLink")
        pages += 1
    assert pages == 2 and sorted(seen) == sorted(m["id"] for m in made)
    r = graph_call(emu, "GET", "/applications", token, params={"$filter": "signInAudience eq 'x'"})
    assert_graph_error(r, 400, "Request_UnsupportedQuery")
    r = graph_call(emu, "GET", "/applications", token, params={"$filter": "appId ne 'x'"})
    assert_graph_error(r, 400, "BadRequest")
    assert_graph_error(graph_call(emu, "GET", "/applications", token, params={"$top": "0"}), 400, "Request_BadRequest")


def test_patch_and_delete(emu):
    token = admin_token(emu)
    bp = _create(emu, token).json()
    cert = make_cert(7)
    r = graph_call(emu, "PATCH", f"/applications/{bp['id']}", token, json={"keyCredentials": [key_item(cert)]})
    assert r.status_code == 204 and r.content == b""
    assert [c.x5t_s256 for c in emu.tenant.application(bp["appId"]).key_credentials] == [cert.x5t_s256]
    r = graph_call(emu, "DELETE", f"/applications/{bp['id']}", token)
    assert r.status_code == 204
    assert_graph_error(graph_call(emu, "GET", f"/applications/{bp['id']}", token), 404, "Request_ResourceNotFound")
    assert_graph_error(graph_call(emu, "DELETE", f"/applications/{bp['id']}", token), 404, "Request_ResourceNotFound")


# --- addKey / removeKey ------------------------------------------------------------------------


@pytest.fixture
def keyed(emu):
    """A Graph-made Blueprint with principal and one certificate, and the admin's token."""
    token = admin_token(emu)
    old = make_cert(8)
    return emu, token, graph_blueprint(emu, token, name="Blueprint", cert=old), old


def _add(emu, token, bp, new, proof, path="addKey"):
    body = {"keyCredential": key_item(new), "passwordCredential": None, "proof": proof}
    return graph_call(emu, "POST", f"/applications/{bp['id']}/{path}", token, json=body)


@pytest.mark.parametrize("path", ["addKey", "microsoft.graph.agentIdentityBlueprint/addKey"])
def test_add_key_keeps_other_keys_and_remove_key(keyed, path):
    emu, token, bp, old = keyed
    new = make_cert(9)
    r = _add(emu, token, bp, new, make_proof(old, bp["id"], now=emu.clock()), path=path)
    assert r.status_code == 200, r.text
    cred = r.json()
    assert cred["@odata.context"].endswith("$metadata#microsoft.graph.keyCredential")
    assert cred["type"] == "AsymmetricX509Cert" and cred["usage"] == "Verify" and cred["key"] is None
    # Both certificates now sign client assertions for the Blueprint.
    assert client_credentials(emu, bp["appId"], old).status_code == 200
    assert client_credentials(emu, bp["appId"], new).status_code == 200
    old_id = next(c.key_id for c in emu.tenant.application(bp["appId"]).key_credentials if c.x5t_s256 == old.x5t_s256)
    proof = make_proof(new, bp["id"], now=emu.clock(), thumbprint="S256")
    r = graph_call(emu, "POST", f"/applications/{bp['id']}/removeKey", token, json={"keyId": old_id, "proof": proof})
    assert r.status_code == 204, r.text
    assert_sts_error(client_credentials(emu, bp["appId"], old), 700027, "invalid_client")
    assert client_credentials(emu, bp["appId"], new).status_code == 200
    r = graph_call(emu, "POST", f"/applications/{bp['id']}/removeKey", token, json={"keyId": old_id, "proof": proof})
    assert_graph_error(r, 404, "Request_ResourceNotFound")


def _refused(r, needle):
    err = assert_graph_error(r, 401, "Authentication_MissingOrMalformed")
    assert needle in err["message"], err["message"]


def test_proof_expired(keyed):
    emu, token, bp, old = keyed
    _refused(_add(emu, token, bp, make_cert(9), make_proof(old, bp["id"], now=emu.clock() - 3600)), "expired")


def test_proof_signed_by_unregistered_key(keyed):
    emu, token, bp, old = keyed
    stranger = make_cert(10)
    _refused(
        _add(emu, token, bp, make_cert(9), make_proof(stranger, bp["id"], now=emu.clock())), "not a currently valid"
    )
    # Right thumbprint in the header, wrong key behind the signature.
    forged = make_proof(old, bp["id"], now=emu.clock(), signing_key=stranger.key)
    _refused(_add(emu, token, bp, make_cert(9), forged), "signature")


def test_proof_for_another_app(keyed):
    emu, token, bp, old = keyed
    other = _create(emu, token, name="other").json()
    _refused(_add(emu, token, bp, make_cert(9), make_proof(old, other["id"], now=emu.clock())), "object id")
    # The app id is not the object id Graph wants in iss.
    _refused(_add(emu, token, bp, make_cert(9), make_proof(old, bp["appId"], now=emu.clock())), "object id")


def test_proof_wrong_audience_and_long_lifetime(keyed):
    emu, token, bp, old = keyed
    _refused(
        _add(
            emu, token, bp, make_cert(9), make_proof(old, bp["id"], now=emu.clock(), aud="https://graph.microsoft.com")
        ),
        "aud",
    )
    _refused(_add(emu, token, bp, make_cert(9), make_proof(old, bp["id"], now=emu.clock(), lifetime=601)), "10 minutes")
    _refused(_add(emu, token, bp, make_cert(9), make_proof(old, bp["id"], now=emu.clock(), drop=("nbf",))), "nbf")


def test_proof_missing_and_no_valid_certificate(keyed):
    emu, token, bp, old = keyed
    r = graph_call(
        emu, "POST", f"/applications/{bp['id']}/addKey", token, json={"keyCredential": key_item(make_cert(9))}
    )
    assert_graph_error(r, 403, "Authorization_RequestDenied")
    emu.advance_clock(400 * 86400)  # the certificate (365 days) has expired: addKey is no longer possible
    _refused(
        _add(emu, admin_token(emu), bp, make_cert(9), make_proof(old, bp["id"], now=emu.clock())), "no currently valid"
    )


def test_add_key_refuses_a_registered_certificate(keyed):
    emu, token, bp, old = keyed
    r = _add(emu, token, bp, old, make_proof(old, bp["id"], now=emu.clock()))
    assert_graph_error(r, 400, "Request_BadRequest")


def test_app_rolls_its_own_keys_without_roles(keyed):
    emu, _token, bp, old = keyed
    own = app_token(emu, bp["appId"], old)
    r = _add(emu, own, bp, make_cert(9), make_proof(old, bp["id"], now=emu.clock(), thumbprint="kid"))
    assert r.status_code == 200, r.text


def test_owned_by_covers_only_owned_apps(keyed):
    emu, _token, bp, old = keyed
    cert = make_cert(11)
    prov = emu.tenant.add_application("owned-by provisioner", [cert.cert])
    emu.tenant.grant_app_roles(prov.app_id, roles=["Application.ReadWrite.OwnedBy"])
    weak = app_token(emu, prov.app_id, cert)
    assert_graph_error(
        _add(emu, weak, bp, make_cert(9), make_proof(old, bp["id"], now=emu.clock())),
        403,
        "Authorization_RequestDenied",
    )
    emu.tenant.add_owner(bp["id"], prov.app_id)
    assert _add(emu, weak, bp, make_cert(9), make_proof(old, bp["id"], now=emu.clock())).status_code == 200


def test_admin_identity_files(emu):
    admin = emu.admin
    assert admin is emu.admin  # made once
    cert = admin_cert(emu)
    assert app_token(emu, admin.app_id, cert)
    assert "key" not in repr(admin).lower().replace("key_path", "")


def test_tokens_for_another_audience_or_tampered_are_refused(emu):
    cert = make_cert(12)
    bp = emu.tenant.add_blueprint("seeded", [cert.cert])
    ai = emu.tenant.add_agent_identity(bp.app_id, "ai")
    form = {
        "client_id": bp.app_id,
        "grant_type": "client_credentials",
        "scope": "api://AzureADTokenExchange/.default",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": make_assertion(cert, bp.app_id, emu.token_endpoint, now=emu.clock()),
        "fmi_path": ai.app_id,
    }
    with emu.session() as s:
        t1 = s.post(emu.token_endpoint, data=form).json()["access_token"]
    err = assert_graph_error(graph_call(emu, "GET", "/applications", t1), 401, "InvalidAuthenticationToken")
    assert "audience" in err["message"]
    head, payload, sig = admin_token(emu).split(".")
    forged = f"{head}.{payload}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}"
    assert_graph_error(graph_call(emu, "GET", "/applications", forged), 401, "InvalidAuthenticationToken")


def test_concurrent_graph_writes_are_all_on_disk_before_the_answers(tmp_path):
    import json
    from concurrent.futures import ThreadPoolExecutor

    state = tmp_path / "s.json"
    with Emulator(state_file=state) as emu:
        token = admin_token(emu)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: _create(emu, token, name=f"bp-{i}"), range(8)))
        assert all(r.status_code == 201 for r in answers)
        # Read while the server still runs: every answered write is already saved.
        saved = {a["appId"] for a in json.loads(state.read_text())["tenant"]["applications"]}
        assert {r.json()["appId"] for r in answers} <= saved
