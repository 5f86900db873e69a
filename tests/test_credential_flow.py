"""AgentUserCredential against the emulator over real sockets: hops, verification, caching, threads."""

from __future__ import annotations

import threading

import jwt
import pytest

from credential_helpers import GRAPH_SCOPE, FakeClock, seed
from entraclaw.auth.token_cache import AccessToken, AccessTokenInfo
from entraclaw.emulator import TOKEN_EXCHANGE_AUDIENCE, Emulator
from entraclaw.errors import ConfigurationError


@pytest.fixture
def emu():
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def seeded(emu):
    return seed(emu)


def _verify(token: str, emu, audience: str) -> dict:
    # A real signature check against the tenant's signing key, not a shape check.
    return jwt.decode(token, emu.signing_public_key, algorithms=["RS256"], audience=audience, issuer=emu.issuer)


def test_three_hops_yield_verified_agent_user_token(seeded):
    emu = seeded.emu
    cred = seeded.credential()
    chain = cred.acquire_chain([GRAPH_SCOPE])

    t1 = _verify(chain.t1.token, emu, TOKEN_EXCHANGE_AUDIENCE)
    assert t1["appid"] == seeded.blueprint_app_id and t1["sub"] == seeded.agent_identity_app_id
    t2 = _verify(chain.t2.token, emu, TOKEN_EXCHANGE_AUDIENCE)
    assert t2["appid"] == seeded.agent_identity_app_id and t2["idtyp"] == "app"
    t3 = _verify(chain.t3.token, emu, "https://graph.microsoft.com")
    assert t3["idtyp"] == "user"
    assert t3["oid"] == seeded.agent_user_id
    assert t3["scp"] == "User.Read openid profile"  # MSAL's openid profile, listed in scp as Entra does
    assert t3["appid"] == seeded.agent_identity_app_id

    hops = [(r["hop"], r["grant_type"], r["client_id"], r["status"]) for r in emu.stats.token_requests]
    assert hops == [
        (1, "client_credentials", seeded.blueprint_app_id, 200),
        (2, "client_credentials", seeded.agent_identity_app_id, 200),
        (3, "user_fic", seeded.agent_identity_app_id, 200),
    ]

    # The token works at the resource.
    me = emu.session().get(f"{emu.graph_url}/me", headers={"Authorization": f"Bearer {chain.t3.token}"}, timeout=10)
    assert me.status_code == 200 and me.json()["id"] == seeded.agent_user_id


def test_hop1_assertion_is_signed_with_ps256_when_asked(seeded):
    cred = seeded.credential(algorithm="PS256")
    token = cred.get_token(GRAPH_SCOPE)
    assert _verify(token.token, seeded.emu, "https://graph.microsoft.com")["oid"] == seeded.agent_user_id


def test_agent_user_by_upn(seeded):
    cred = seeded.credential(agent_user_upn=seeded.agent_user_upn)
    claims = _verify(cred.get_token(GRAPH_SCOPE).token, seeded.emu, "https://graph.microsoft.com")
    assert claims["oid"] == seeded.agent_user_id and claims["upn"] == seeded.agent_user_upn


def test_get_token_info_has_azure_core_shape(seeded):
    cred = seeded.credential()
    info = cred.get_token_info(GRAPH_SCOPE)
    assert isinstance(info, AccessTokenInfo)
    assert info.token_type == "Bearer"
    assert info.refresh_on is not None and info.refresh_on < info.expires_on
    token = cred.get_token(GRAPH_SCOPE)
    assert isinstance(token, AccessToken)
    assert token.token == info.token and token.expires_on == info.expires_on
    text, expires = token  # a 2-tuple, like azure.core.credentials.AccessToken
    assert text == info.token and expires == info.expires_on
    assert info.token not in repr(token) and info.token not in repr(info)


def test_cache_hit_sends_no_request(seeded):
    emu = seeded.emu
    cred = seeded.credential()
    first = cred.get_token(GRAPH_SCOPE)
    assert emu.stats.count() == 3
    for _ in range(50):
        assert cred.get_token(GRAPH_SCOPE).token == first.token
    assert cred.get_token_info(GRAPH_SCOPE).token == first.token
    # Scopes are a set: another spelling is the same cache entry.
    assert cred.get_token(GRAPH_SCOPE, GRAPH_SCOPE).token == first.token
    assert emu.stats.count() == 3


def test_second_scope_reuses_t1_and_t2(seeded):
    emu = seeded.emu
    cred = seeded.credential()
    cred.get_token(GRAPH_SCOPE)
    cred.get_token("https://graph.microsoft.com/User.Read")
    assert [r["hop"] for r in emu.stats.token_requests] == [1, 2, 3, 3]




def test_expiry_follows_expires_in_not_a_fixed_time():
    # 60 s tokens: too short for "half, and 5 min before expiry", so a quarter (15 s) is fresh time.
    with Emulator(token_lifetime=60) as emu:
        seeded = seed(emu)
        clock = FakeClock()
        cred = seeded.credential(clock=clock)
        first = cred.get_token_info(GRAPH_SCOPE)
        assert first.expires_on - first.refresh_on == pytest.approx(45, abs=2)
        clock.now += 10
        assert cred.get_token(GRAPH_SCOPE).token == first.token
        assert emu.stats.count() == 3
        clock.now += 10  # past refresh_on, still valid: served at once, refreshed in the background
        assert cred.get_token(GRAPH_SCOPE).token == first.token
        assert cred.wait_for_refresh(timeout=30)
        # Only T3: T1 and T2 are still usable, and are renewed on need, not ahead (issue 16).
        assert emu.stats.count() == 4
        assert sorted(r["hop"] for r in emu.stats.token_requests[3:]) == [3]
        second = cred.get_token(GRAPH_SCOPE)
        assert second.token != first.token and second.expires_on >= first.expires_on


def test_long_lived_tokens_refresh_at_half_their_lifetime():
    with Emulator(token_lifetime=7200) as emu:
        seeded = seed(emu)
        info = seeded.credential().get_token_info(GRAPH_SCOPE)
        assert info.expires_on - info.refresh_on == pytest.approx(3600, abs=2)


def test_claims_challenge_forces_a_new_hop3(seeded):
    emu = seeded.emu
    cred = seeded.credential()
    cred.get_token(GRAPH_SCOPE)
    cred.get_token(GRAPH_SCOPE, claims='{"access_token":{"xms_cc":{"values":["cp1"]}}}')
    assert [r["hop"] for r in emu.stats.token_requests] == [1, 2, 3, 3]


def test_token_from_a_claims_challenge_replaces_the_cached_one_even_if_it_expires_sooner(seeded):
    # Entra's token lifetimes vary (60-90 min): the token a claims challenge brings may expire
    # before the one the resource just refused. The refused one must not stay in the cache.
    emu = seeded.emu
    cred = seeded.credential()
    refused = cred.get_token(GRAPH_SCOPE)
    emu.token_service.token_lifetime = 1800
    renewed = cred.get_token(GRAPH_SCOPE, claims='{"access_token":{"xms_cc":{"values":["cp1"]}}}')
    assert renewed.token != refused.token and renewed.expires_on < refused.expires_on
    assert cred.get_token(GRAPH_SCOPE).token == renewed.token
    assert cred.get_token_info(GRAPH_SCOPE).token == renewed.token
    assert [r["hop"] for r in emu.stats.token_requests] == [1, 2, 3, 3]


def test_sixteen_cold_threads_cause_three_requests(seeded):
    emu = seeded.emu
    cred = seeded.credential()
    barrier = threading.Barrier(16)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(cred.get_token(GRAPH_SCOPE).token)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(results) == 16 and len(set(results)) == 1
    assert sorted(r["hop"] for r in emu.stats.token_requests) == [1, 2, 3]


def test_wrong_tenant_is_refused(seeded):
    cred = seeded.credential()
    with pytest.raises(ConfigurationError, match="tenant"):
        cred.get_token(GRAPH_SCOPE, tenant_id="00000000-0000-0000-0000-000000000001")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"agent_user_id": None}, "exactly one"),
        ({"agent_user_id": "a@b.example"}, "looks like a UPN"),
        ({"agent_user_id": None, "agent_user_upn": "no-at-sign"}, "not a UPN"),
        ({"blueprint_app_id": ""}, "blueprint_app_id is empty"),
    ],
)
def test_configuration_errors_name_the_problem(seeded, kwargs, match):
    with pytest.raises(ConfigurationError, match=match) as info:
        seeded.credential(**kwargs)
    assert info.value.remedy


def test_same_app_id_for_blueprint_and_identity_is_refused(seeded):
    with pytest.raises(ConfigurationError, match="same app id") as info:
        seeded.credential(agent_identity_app_id=seeded.blueprint_app_id)
    assert seeded.blueprint_app_id in str(info.value)


def test_exchange_scope_is_not_a_resource_scope(seeded):
    with pytest.raises(ConfigurationError, match="exchange scope"):
        seeded.credential().get_token("api://AzureADTokenExchange/.default")


def test_no_scope_is_refused(seeded):
    with pytest.raises(ConfigurationError, match="at least one scope"):
        seeded.credential().get_token()


def test_repr_names_ids_not_secrets(seeded):
    cred = seeded.credential()
    cred.get_token(GRAPH_SCOPE)
    text = repr(cred)
    assert seeded.blueprint_app_id in text and seeded.agent_user_id in text
    assert "eyJ" not in text and "PRIVATE" not in text


def test_debug_logs_of_a_full_run_hold_no_token(seeded, caplog):
    import logging

    from credential_helpers import assert_no_secrets, held_tokens

    for name in ("msal", "entraclaw", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)
    cred = seeded.credential()
    cred.get_token(GRAPH_SCOPE)
    cred.get_token("https://graph.microsoft.com/User.Read")
    secrets = held_tokens(cred)
    assert len(secrets) == 4
    assert any("Obtained t3|" in r.getMessage() for r in caplog.records)  # the logs are there...
    for record in caplog.records:  # ...and hold no token
        assert_no_secrets(record.getMessage(), secrets)
