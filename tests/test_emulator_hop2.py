"""Hop 2 over real sockets: the Agent Identity presents T1 -> T2; T1s that do not fit are refused."""

from __future__ import annotations

import jwt
import pytest

from emulator_helpers import (
    EXCHANGE_AUD,
    GRAPH,
    assert_sts_error,
    make_cert,
    verify_token,
)

# The helper module is a plugin so its fixtures (seeded, fresh) reach these tests.
pytest_plugins = ["emulator_helpers"]


def test_hop2_issues_t2(seeded):
    r = seeded.post_token(seeded.hop2_form(seeded.t1()))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    claims = verify_token(seeded.emu, body["access_token"], EXCHANGE_AUD)
    assert claims["appid"] == seeded.ai.app_id
    assert claims["sub"] == seeded.ai.object_id
    assert claims["idtyp"] == "app"


def test_t1_is_reusable_until_it_expires(seeded):
    # Entra does not single-use federated assertions; MSAL caches T1 and reuses it.
    t1 = seeded.t1()
    for _ in range(2):
        assert seeded.post_token(seeded.hop2_form(t1)).status_code == 200


def test_t1_for_another_agent_identity_rejected(fresh):
    sibling = fresh.emu.tenant.add_agent_identity(fresh.bp.app_id, "Sibling of A")
    t1_for_sibling = fresh.t1(ai=sibling)
    body = assert_sts_error(fresh.post_token(fresh.hop2_form(t1_for_sibling)), 700213, "invalid_client")
    assert fresh.ai.app_id in body["error_description"]
    assert fresh.post_token(fresh.hop2_form(t1_for_sibling, ai=sibling)).status_code == 200


def test_t1_from_a_blueprint_that_is_not_the_parent_rejected(seeded):
    t1_b = seeded.t1(ai=seeded.ai2, bp=seeded.bp2, cert=seeded.other_cert)
    assert_sts_error(seeded.post_token(seeded.hop2_form(t1_b)), 700213, "invalid_client")


def test_t2_cannot_stand_in_for_t1(seeded):
    t2 = seeded.t2()
    assert_sts_error(seeded.post_token(seeded.hop2_form(t2)), 700213, "invalid_client")


def test_expired_t1_rejected(fresh):
    t1 = fresh.t1()
    fresh.emu.advance_clock(3600 + 5)
    assert_sts_error(fresh.post_token(fresh.hop2_form(t1)), 700024, "invalid_client")


def test_t1_not_signed_by_the_emulator_rejected(seeded):
    t1 = seeded.t1()
    claims = jwt.decode(t1, options={"verify_signature": False})
    header = jwt.get_unverified_header(t1)
    forged = jwt.encode(claims, make_cert(1).key, algorithm="RS256", headers={"kid": header["kid"]})
    body = assert_sts_error(seeded.post_token(seeded.hop2_form(forged)), 50027, "invalid_request")
    assert "signing key" in body["error_description"]


def test_graph_token_as_t1_rejected(fresh):
    cert = make_cert(4)
    app = fresh.emu.tenant.add_application("provisioner", certificates=[cert.cert])
    graph_token = fresh.graph_app_token(app, cert)
    # Upstream saw AADSTS700211 for a Graph token presented as T1 (HWL Learning #12).
    body = assert_sts_error(fresh.post_token(fresh.hop2_form(graph_token)), 700211, "invalid_client")
    assert "audience" in body["error_description"]


def test_certificate_assertion_is_not_a_t1(seeded):
    # An Agent Identity has no certificates: a self-signed assertion must not authenticate it.
    own = seeded.assertion(client_id=seeded.ai.app_id)
    assert_sts_error(seeded.post_token(seeded.hop2_form(own)), 50027, "invalid_request")


@pytest.mark.parametrize("scope", ["api://AzureADTokenExchange/read", f"{GRAPH}/User.Read"])
def test_hop2_scope_must_be_one_default_scope(seeded, scope):
    assert_sts_error(seeded.post_token(seeded.hop2_form(seeded.t1(), scope=scope)), 70011, "invalid_scope")


def test_hop2_unknown_resource_rejected(seeded):
    form = seeded.hop2_form(seeded.t1(), scope="api://no-such-resource/.default")
    assert_sts_error(seeded.post_token(form), 500011, "invalid_resource")


def test_hop2_resource_scope_gives_agent_identity_app_token(seeded):
    # The autonomous-agent flow: T1 as the Agent Identity's credential, a resource as the scope.
    response = seeded.post_token(seeded.hop2_form(seeded.t1(), scope=f"{GRAPH}/.default"))
    assert response.status_code == 200, response.text
    claims = jwt.decode(
        response.json()["access_token"], seeded.emu.signing_public_key, algorithms=["RS256"], audience=GRAPH
    )
    assert claims["idtyp"] == "app"
    assert claims["appid"] == seeded.ai.app_id and claims["oid"] == seeded.ai.object_id


def test_hop2_stats_hop(fresh):
    t1 = fresh.t1()
    fresh.emu.stats.reset()
    fresh.post_token(fresh.hop2_form(t1))
    assert fresh.emu.stats.count(hop=2) == 1
    assert fresh.emu.stats.token_requests[0]["client_id"] == fresh.ai.app_id
