"""Faithfulness: plain MSAL 1.39 completes all three legs against the emulator, and sees its refusals.

Only MSAL, PyJWT and (for one variant) entraclaw.auth.build_client_assertion
touch the wire; the emulator fixture seeds the tenant.
"""

from __future__ import annotations

import msal
import pytest

from emulator_helpers import (
    EXCHANGE_AUD,
    EXCHANGE_SCOPE,
    GRAPH,
    make_assertion,
    verify_token,
)
from entraclaw.auth import build_client_assertion

# The helper module is a plugin so its fixtures (seeded, fresh) reach these tests.
pytest_plugins = ["emulator_helpers"]


def _app(emu, client_id, assertion):
    return msal.ConfidentialClientApplication(
        client_id,
        authority=emu.authority,
        client_credential={"client_assertion": assertion},
        http_client=emu.session(),
        instance_discovery=False,
        validate_authority=False,
    )


def _pyjwt_assertion(s):
    return lambda: make_assertion(s.cert, s.bp.app_id, s.emu.token_endpoint)


def _entraclaw_assertion(s):
    return lambda: build_client_assertion(
        private_key_pem=s.cert.pem,
        cert_thumbprint=s.cert.x5t_s256,
        client_id=s.bp.app_id,
        token_endpoint=s.emu.token_endpoint,
    )


@pytest.mark.parametrize("builder", [_pyjwt_assertion, _entraclaw_assertion], ids=["pyjwt", "entraclaw"])
def test_msal_three_legs(fresh, builder):
    s = fresh
    hop1 = _app(s.emu, s.bp.app_id, builder(s))
    r1 = hop1.acquire_token_for_client([EXCHANGE_SCOPE], fmi_path=s.ai.app_id)
    assert "access_token" in r1, r1
    t1 = r1["access_token"]
    assert verify_token(s.emu, t1, EXCHANGE_AUD)["sub"] == s.ai.app_id

    agent = _app(s.emu, s.ai.app_id, lambda: t1)
    r2 = agent.acquire_token_for_client([EXCHANGE_SCOPE])
    assert "access_token" in r2, r2
    t2 = r2["access_token"]
    assert verify_token(s.emu, t2, EXCHANGE_AUD)["appid"] == s.ai.app_id

    r3 = agent.acquire_token_by_user_federated_identity_credential(
        [f"{GRAPH}/.default"], assertion=t2, user_object_id=s.au.object_id
    )
    assert "access_token" in r3, r3
    t3 = verify_token(s.emu, r3["access_token"], GRAPH)
    assert (t3["idtyp"], t3["oid"], t3["scp"]) == ("user", s.au.object_id, "User.Read openid profile")
    verify_token(s.emu, r3["id_token"], s.ai.app_id)
    # MSAL built an account from client_info + id_token.
    accounts = agent.get_accounts()
    assert [a["home_account_id"] for a in accounts] == [f"{s.au.object_id}.{s.emu.tenant_id}"]
    assert accounts[0]["username"] == s.au.upn

    me = s.emu.session().get(f"{s.emu.graph_url}/me", headers={"Authorization": f"Bearer {r3['access_token']}"})
    assert me.status_code == 200 and me.json()["id"] == s.au.object_id
    assert [e["hop"] for e in s.emu.stats.token_requests] == [1, 2, 3]


def test_msal_user_fic_by_upn(seeded):
    s = seeded
    t1 = s.t1()
    agent = _app(s.emu, s.ai.app_id, lambda: t1)
    r3 = agent.acquire_token_by_user_federated_identity_credential(
        [f"{GRAPH}/User.Read"], assertion=s.t2(t1), username=s.au.upn
    )
    assert "access_token" in r3, r3
    assert verify_token(s.emu, r3["access_token"], GRAPH)["upn"] == s.au.upn


def test_msal_caches_t1(fresh):
    s = fresh
    hop1 = _app(s.emu, s.bp.app_id, _pyjwt_assertion(s))
    first = hop1.acquire_token_for_client([EXCHANGE_SCOPE], fmi_path=s.ai.app_id)
    second = hop1.acquire_token_for_client([EXCHANGE_SCOPE], fmi_path=s.ai.app_id)
    assert first["access_token"] == second["access_token"]
    assert second["token_source"] == "cache"
    assert s.emu.stats.count(hop=1) == 1


def test_msal_sees_entra_errors(seeded):
    s = seeded
    forged = _app(
        s.emu,
        s.bp.app_id,
        lambda: make_assertion(s.cert, s.bp.app_id, s.emu.token_endpoint, signing_key=s.other_cert.key),
    )
    r = forged.acquire_token_for_client([EXCHANGE_SCOPE], fmi_path=s.ai.app_id)
    assert r["error"] == "invalid_client" and r["error_codes"] == [700027]

    t1 = s.t1()
    agent = _app(s.emu, s.ai.app_id, lambda: t1)
    r3 = agent.acquire_token_by_user_federated_identity_credential(
        [f"{GRAPH}/Mail.Send"], assertion=s.t2(t1), user_object_id=s.au.object_id
    )
    assert r3["error"] == "invalid_grant" and r3["error_codes"] == [65001]

    other_user = agent.acquire_token_by_user_federated_identity_credential(
        [f"{GRAPH}/.default"], assertion=s.t2(t1), user_object_id=s.au2.object_id
    )
    assert other_user["error_codes"] == [70000]
