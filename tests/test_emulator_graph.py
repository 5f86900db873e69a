"""The Graph subset: /me as the Agent User, and application keyCredentials with Graph's replace semantics."""

from __future__ import annotations

import base64

import pytest

from emulator_helpers import (
    GRAPH,
    assert_sts_error,
    make_cert,
)

# The helper module is a plugin so its fixtures (seeded, fresh) reach these tests.
pytest_plugins = ["emulator_helpers"]


def _graph_error(r, status, code):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert set(err["innerError"]) == {"date", "request-id", "client-request-id"}
    return err


def _me(s, token=None, headers=None):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    with s.emu.session() as session:
        return session.get(f"{s.emu.graph_url}/me", headers=h, timeout=10)


@pytest.fixture(scope="module")
def t3(seeded):
    t1 = seeded.t1()
    r = seeded.post_token(seeded.hop3_form(t1, seeded.t2(t1)))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_me_with_t3(seeded, t3):
    r = _me(seeded, t3)
    assert r.status_code == 200
    body = r.json()
    assert (body["id"], body["userPrincipalName"], body["displayName"]) == (
        seeded.au.object_id,
        seeded.au.upn,
        seeded.au.display_name,
    )


def test_me_without_token(seeded):
    r = _me(seeded)
    err = _graph_error(r, 401, "InvalidAuthenticationToken")
    assert err["message"] == "Access token is empty."
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_me_echoes_client_request_id(seeded):
    cid = "5d0f2a57-1c67-4e40-9d1e-6b7ad7c7c1f0"
    assert (
        _graph_error(_me(seeded, headers={"client-request-id": cid}), 401, "InvalidAuthenticationToken")["innerError"][
            "client-request-id"
        ]
        == cid
    )


def test_me_with_t1_is_wrong_audience(seeded):
    err = _graph_error(_me(seeded, seeded.t1()), 401, "InvalidAuthenticationToken")
    assert "audience" in err["message"]


def test_me_with_tampered_t3(seeded, t3):
    head, payload, sig = t3.split(".")
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    _graph_error(_me(seeded, f"{head}.{payload}.{flipped}"), 401, "InvalidAuthenticationToken")
    _graph_error(_me(seeded, "garbage"), 401, "InvalidAuthenticationToken")


def test_me_with_expired_t3(fresh):
    t1 = fresh.t1()
    token = fresh.post_token(fresh.hop3_form(t1, fresh.t2(t1))).json()["access_token"]
    assert _me(fresh, token).status_code == 200
    fresh.emu.advance_clock(3600 + 1)
    err = _graph_error(_me(fresh, token), 401, "InvalidAuthenticationToken")
    assert "expired" in err["message"]


def test_me_with_app_token(fresh):
    cert = make_cert(4)
    app = fresh.emu.tenant.add_application("provisioner", certificates=[cert.cert])
    err = _graph_error(_me(fresh, fresh.graph_app_token(app, cert)), 400, "BadRequest")
    assert "delegated" in err["message"]


# --- applications -----------------------------------------------------------------------


@pytest.fixture
def provisioner(fresh):
    """A provisioner app owning Blueprint A, with Application.ReadWrite.OwnedBy."""
    cert = make_cert(4)
    app = fresh.emu.tenant.add_application("provisioner", certificates=[cert.cert])
    fresh.emu.tenant.add_owner(fresh.bp.object_id, app.app_id)
    fresh.emu.tenant.grant_app_roles(app.app_id, GRAPH, ["Application.ReadWrite.OwnedBy"])
    return fresh.graph_app_token(app, cert)


def _app_url(s, object_id=None):
    return f"{s.emu.graph_url}/applications/{object_id or s.bp.object_id}"


def _key_item(cert, **extra):
    item = {
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
        "key": base64.b64encode(cert.der).decode(),
        "displayName": "CN=rotated",
    }
    item.update(extra)
    return item


def test_get_application_hides_key_unless_selected(fresh, provisioner):
    with fresh.emu.session() as s:
        auth = {"Authorization": f"Bearer {provisioner}"}
        plain = s.get(_app_url(fresh), headers=auth).json()
        selected = s.get(_app_url(fresh), params={"$select": "keyCredentials"}, headers=auth).json()
    assert plain["appId"] == fresh.bp.app_id and plain["id"] == fresh.bp.object_id
    (cred,) = plain["keyCredentials"]
    assert cred["key"] is None
    assert cred["type"] == "AsymmetricX509Cert" and cred["usage"] == "Verify"
    assert {"customKeyIdentifier", "displayName", "startDateTime", "endDateTime", "keyId"} <= set(cred)
    assert set(selected) == {"@odata.context", "keyCredentials"}
    assert base64.b64decode(selected["keyCredentials"][0]["key"]) == fresh.cert.der


def test_patch_replaces_key_credentials(fresh, provisioner):
    new = make_cert(5, cn="rotated")
    with fresh.emu.session() as s:
        r = s.patch(
            _app_url(fresh),
            json={"keyCredentials": [_key_item(new)]},
            headers={"Authorization": f"Bearer {provisioner}"},
        )
    assert r.status_code == 204, r.text
    # Replace, not append: the old certificate no longer signs Hop 1, the new one does.
    assert_sts_error(fresh.post_token(fresh.hop1_form()), 700027, "invalid_client")
    assert fresh.post_token(fresh.hop1_form(fresh.assertion(cert=new))).status_code == 200


def test_patch_keeps_existing_credential_by_key_id(fresh, provisioner):
    (old,) = fresh.bp.key_credentials
    new = make_cert(5, cn="added")
    with fresh.emu.session() as s:
        r = s.patch(
            _app_url(fresh),
            json={
                "keyCredentials": [
                    {"keyId": old.key_id, "type": "AsymmetricX509Cert", "usage": "Verify"},
                    _key_item(new),
                ]
            },
            headers={"Authorization": f"Bearer {provisioner}"},
        )
    assert r.status_code == 204, r.text
    assert fresh.post_token(fresh.hop1_form()).status_code == 200
    assert fresh.post_token(fresh.hop1_form(fresh.assertion(cert=new))).status_code == 200


@pytest.mark.parametrize(
    "item",
    [
        {"type": "Symmetric", "usage": "Verify", "key": "AAAA"},
        {"type": "AsymmetricX509Cert", "usage": "Sign", "key": "AAAA"},
        {"type": "AsymmetricX509Cert", "usage": "Verify", "key": "not base64 DER!"},
        {"type": "AsymmetricX509Cert", "usage": "Verify"},
    ],
)
def test_patch_rejects_bad_items(fresh, provisioner, item):
    with fresh.emu.session() as s:
        r = s.patch(
            _app_url(fresh), json={"keyCredentials": [item]}, headers={"Authorization": f"Bearer {provisioner}"}
        )
    _graph_error(r, 400, "Request_BadRequest")
    assert fresh.post_token(fresh.hop1_form()).status_code == 200  # unchanged


def test_patch_rejects_unknown_property(fresh, provisioner):
    with fresh.emu.session() as s:
        r = s.patch(
            _app_url(fresh), json={"passwordCredentials": []}, headers={"Authorization": f"Bearer {provisioner}"}
        )
    _graph_error(r, 400, "Request_BadRequest")


def test_patch_without_role_denied(fresh):
    cert = make_cert(4)
    app = fresh.emu.tenant.add_application("no-roles", certificates=[cert.cert])
    fresh.emu.tenant.add_owner(fresh.bp.object_id, app.app_id)
    with fresh.emu.session() as s:
        r = s.patch(
            _app_url(fresh),
            json={"keyCredentials": []},
            headers={"Authorization": f"Bearer {fresh.graph_app_token(app, cert)}"},
        )
    _graph_error(r, 403, "Authorization_RequestDenied")


def test_owned_by_only_covers_owned_apps(fresh, provisioner):
    with fresh.emu.session() as s:
        r = s.patch(
            _app_url(fresh, fresh.bp2.object_id),
            json={"keyCredentials": []},
            headers={"Authorization": f"Bearer {provisioner}"},
        )
    _graph_error(r, 403, "Authorization_RequestDenied")


def test_user_token_cannot_patch(fresh):
    t1 = fresh.t1()
    t3 = fresh.post_token(fresh.hop3_form(t1, fresh.t2(t1))).json()["access_token"]
    with fresh.emu.session() as s:
        r = s.patch(_app_url(fresh), json={"keyCredentials": []}, headers={"Authorization": f"Bearer {t3}"})
    _graph_error(r, 403, "Authorization_RequestDenied")


def test_unknown_application_is_404(fresh, provisioner):
    with fresh.emu.session() as s:
        r = s.get(
            _app_url(fresh, "44444444-4444-4444-4444-444444444444"), headers={"Authorization": f"Bearer {provisioner}"}
        )
    _graph_error(r, 404, "Request_ResourceNotFound")
