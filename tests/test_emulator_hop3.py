"""Hop 3 over real sockets: user_fic with T1 + T2 -> T3 for the Agent User, and every refusal."""

from __future__ import annotations

import json

import pytest

from emulator_helpers import (
    EXCHANGE_AUD,
    GRAPH,
    assert_sts_error,
    make_assertion,
    verify_token,
)
from entraclaw.auth import b64url_decode

# The helper module is a plugin so its fixtures (seeded, fresh) reach these tests.
pytest_plugins = ["emulator_helpers"]


@pytest.fixture
def chain(seeded):
    t1 = seeded.t1()
    return t1, seeded.t2(t1)


@pytest.mark.parametrize("msal_style", [True, False], ids=["msal-form", "original-form"])
def test_hop3_issues_t3(seeded, chain, msal_style):
    t1, t2 = chain
    r = seeded.post_token(seeded.hop3_form(t1, t2, msal_style=msal_style))
    assert r.status_code == 200, r.text
    body = r.json()
    claims = verify_token(seeded.emu, body["access_token"], GRAPH)
    assert claims["idtyp"] == "user"
    assert claims["oid"] == seeded.au.object_id
    assert claims["upn"] == seeded.au.upn
    # MSAL asks for openid profile offline_access too; Entra lists openid and profile in scp.
    assert claims["scp"] == ("User.Read openid profile" if msal_style else "User.Read")
    assert claims["appid"] == seeded.ai.app_id
    id_claims = verify_token(seeded.emu, body["id_token"], seeded.ai.app_id)
    assert id_claims["oid"] == seeded.au.object_id
    assert id_claims["preferred_username"] == seeded.au.upn
    info = json.loads(b64url_decode(body["client_info"]))
    assert info == {"uid": seeded.au.object_id, "utid": seeded.emu.tenant_id}
    assert "User.Read" in body["scope"].split()


def test_hop3_by_username(seeded, chain):
    t1, t2 = chain
    form = seeded.hop3_form(t1, t2, username=seeded.au.upn.upper())
    del form["user_id"]
    r = seeded.post_token(form)
    assert r.status_code == 200, r.text
    assert verify_token(seeded.emu, r.json()["access_token"], GRAPH)["oid"] == seeded.au.object_id


def test_hop3_named_scope_within_consent(seeded, chain):
    t1, t2 = chain
    r = seeded.post_token(seeded.hop3_form(t1, t2, scope=f"{GRAPH}/User.Read openid profile offline_access"))
    assert r.status_code == 200, r.text


def test_hop3_scope_without_consent_rejected(seeded, chain):
    t1, t2 = chain
    r = seeded.post_token(seeded.hop3_form(t1, t2, scope=f"{GRAPH}/Mail.Send openid profile offline_access"))
    body = assert_sts_error(r, 65001, "invalid_grant")
    assert "Mail.Send" in body["error_description"] and seeded.ai.app_id in body["error_description"]


def test_hop3_without_any_consent_rejected(fresh):
    t1 = fresh.t1()
    t2 = fresh.t2(t1)
    fresh.emu.tenant.revoke_consent(fresh.ai.app_id)
    assert_sts_error(fresh.post_token(fresh.hop3_form(t1, t2)), 65001, "invalid_grant")


def test_user_of_another_identity_rejected(seeded, chain):
    t1, t2 = chain
    body = assert_sts_error(
        seeded.post_token(seeded.hop3_form(t1, t2, user_id=seeded.au2.object_id)), 70000, "invalid_grant"
    )
    assert seeded.au2.object_id in body["error_description"]


def test_user_id_and_username_together_rejected(seeded, chain):
    t1, t2 = chain
    assert_sts_error(seeded.post_token(seeded.hop3_form(t1, t2, username=seeded.au.upn)), 9002313, "invalid_request")


def test_upn_as_user_id_rejected(seeded, chain):
    t1, t2 = chain
    body = assert_sts_error(seeded.post_token(seeded.hop3_form(t1, t2, user_id=seeded.au.upn)), 50000, "invalid_grant")
    assert "username" in body["error_description"]


def test_unknown_user_rejected(seeded, chain):
    t1, t2 = chain
    r = seeded.post_token(seeded.hop3_form(t1, t2, user_id="33333333-3333-3333-3333-333333333333"))
    assert_sts_error(r, 50034, "invalid_grant")


def test_neither_user_id_nor_username_rejected(seeded, chain):
    t1, t2 = chain
    form = seeded.hop3_form(t1, t2)
    del form["user_id"]
    assert_sts_error(seeded.post_token(form), 900144, "invalid_request")


def test_t2_of_another_identity_rejected(seeded, chain):
    t1, _ = chain
    t2_b = seeded.t2(seeded.t1(ai=seeded.ai2, bp=seeded.bp2, cert=seeded.other_cert), ai=seeded.ai2)
    body = assert_sts_error(seeded.post_token(seeded.hop3_form(t1, t2_b)), 50013, "invalid_grant")
    assert seeded.ai2.app_id in body["error_description"]


def test_t1_as_user_credential_rejected(seeded, chain):
    t1, _ = chain
    assert_sts_error(seeded.post_token(seeded.hop3_form(t1, t1)), 50013, "invalid_grant")


def test_expired_t2_rejected(fresh):
    t2 = fresh.t2()
    fresh.emu.advance_clock(3600 + 5)
    # A fresh T1 at the emulator's new "now", so only T2 is stale.
    assertion = make_assertion(fresh.cert, fresh.bp.app_id, fresh.emu.token_endpoint, now=fresh.emu.clock())
    r1 = fresh.post_token(fresh.hop1_form(assertion))
    assert r1.status_code == 200, r1.text
    assert_sts_error(fresh.post_token(fresh.hop3_form(r1.json()["access_token"], t2)), 50013, "invalid_grant")


def test_missing_user_credential_rejected(seeded, chain):
    t1, t2 = chain
    form = seeded.hop3_form(t1, t2)
    del form["user_federated_identity_credential"]
    assert_sts_error(seeded.post_token(form), 900144, "invalid_request")


def test_bad_requested_token_use_rejected(seeded, chain):
    t1, t2 = chain
    form = seeded.hop3_form(t1, t2, requested_token_use="something_else")
    assert_sts_error(seeded.post_token(form), 9002313, "invalid_request")


@pytest.mark.parametrize("scope", ["profile offline_access", f"{GRAPH}/.default {GRAPH}/User.Read"])
def test_hop3_invalid_scope_rejected(seeded, chain, scope):
    t1, t2 = chain
    assert_sts_error(seeded.post_token(seeded.hop3_form(t1, t2, scope=scope)), 70011, "invalid_scope")


def test_hop3_unknown_resource_rejected(seeded, chain):
    t1, t2 = chain
    r = seeded.post_token(seeded.hop3_form(t1, t2, scope="api://not-registered/.default openid"))
    assert_sts_error(r, 500011, "invalid_resource")


def test_blueprint_cannot_use_user_fic(seeded, chain):
    t1, t2 = chain
    form = seeded.hop3_form(t1, t2, client_id=seeded.bp.app_id, client_assertion=seeded.assertion())
    assert_sts_error(seeded.post_token(form), 70000, "invalid_grant")


def test_t1_audience_is_token_exchange(seeded, chain):
    t1, t2 = chain
    assert verify_token(seeded.emu, t1, EXCHANGE_AUD)["sub"] == seeded.ai.app_id
    assert verify_token(seeded.emu, t2, EXCHANGE_AUD)["appid"] == seeded.ai.app_id
