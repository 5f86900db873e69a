"""Entra's answers where upstream observed them on a real tenant (evidence #8, #14, #15).

Sources: microsoft/entraclaw docs/runbooks/hard-won-learnings.md — Learning #12 (AADSTS700211),
Learning #34 (AADSTS65001 for Azure Storage), Learning #40 (jwt-bearer with T3 -> AADSTS50013;
``user_fic`` + ``scope=openid`` -> 200 with an id_token whose aud is the Agent Identity).
"""

from __future__ import annotations

from typing import Any

import pytest

from emulator_helpers import EXCHANGE_AUD, EXCHANGE_SCOPE, GRAPH, assert_sts_error, verify_token

pytest_plugins = ["emulator_helpers"]

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.fixture
def chain(seeded: Any) -> tuple[str, str]:
    t1 = seeded.t1()
    return t1, seeded.t2(t1)


@pytest.mark.parametrize("scope", [f"{GRAPH}/.default", EXCHANGE_SCOPE])
def test_hop2_with_a_t1_requested_without_fmi_path_is_700211(seeded: Any, scope: str) -> None:
    form = seeded.hop1_form(scope=scope)
    del form["fmi_path"]
    r = seeded.post_token(form)
    assert r.status_code == 200, r.text
    body = assert_sts_error(seeded.post_token(seeded.hop2_form(r.json()["access_token"])), 700211, "invalid_client")
    assert "fmi_path" in body["error_description"]


def test_hop1_without_fmi_path_for_the_exchange_is_about_the_blueprint(seeded: Any) -> None:
    form = seeded.hop1_form()
    del form["fmi_path"]
    r = seeded.post_token(form)
    assert r.status_code == 200, r.text
    claims = verify_token(seeded.emu, r.json()["access_token"], EXCHANGE_AUD)
    assert claims["appid"] == seeded.bp.app_id and claims["sub"] == claims["oid"] != seeded.ai.app_id


def test_hop3_for_a_first_party_resource_without_consent_is_65001(seeded: Any, chain: tuple[str, str]) -> None:
    t1, t2 = chain
    for resource in ("https://storage.azure.com", "e406a681-f3d4-42a8-90b6-c2b029497af1"):
        r = seeded.post_token(seeded.hop3_form(t1, t2, scope=f"{resource}/.default"))
        body = assert_sts_error(r, 65001, "invalid_grant")
        assert seeded.ai.app_id in body["error_description"]


def test_jwt_bearer_with_a_t3_is_50013(seeded: Any, chain: tuple[str, str]) -> None:
    t1, t2 = chain
    t3 = seeded.post_token(seeded.hop3_form(t1, t2)).json()["access_token"]
    form = {
        "client_id": seeded.ai.app_id,
        "grant_type": JWT_BEARER_GRANT,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": seeded.t1(),
        "assertion": t3,
        "requested_token_use": "on_behalf_of",
        "scope": f"{GRAPH}/.default",
    }
    body = assert_sts_error(seeded.post_token(form), 50013, "invalid_grant")
    assert "audience" in body["error_description"]
    # The client is still authenticated first: a bad client assertion is the client's error.
    assert_sts_error(seeded.post_token({**form, "client_assertion": t3}), 700211, "invalid_client")


def test_user_fic_with_openid_only_returns_an_id_token_for_the_agent_identity(
    seeded: Any, chain: tuple[str, str]
) -> None:
    t1, t2 = chain
    r = seeded.post_token(seeded.hop3_form(t1, t2, scope="openid"))
    assert r.status_code == 200, r.text
    body = r.json()
    id_claims = verify_token(seeded.emu, body["id_token"], seeded.ai.app_id)
    assert id_claims["oid"] == seeded.au.object_id
    assert verify_token(seeded.emu, body["access_token"], GRAPH)["scp"] == "openid"


def test_t3_scp_carries_the_oidc_scopes_asked_for(seeded: Any, chain: tuple[str, str]) -> None:
    t1, t2 = chain
    r = seeded.post_token(seeded.hop3_form(t1, t2, scope=f"{GRAPH}/.default openid profile email offline_access"))
    assert r.status_code == 200, r.text
    claims = verify_token(seeded.emu, r.json()["access_token"], GRAPH)
    assert claims["scp"].split() == ["User.Read", "openid", "profile", "email"]
    asked_none = seeded.post_token(seeded.hop3_form(t1, t2, msal_style=False))
    assert verify_token(seeded.emu, asked_none.json()["access_token"], GRAPH)["scp"] == "User.Read"
