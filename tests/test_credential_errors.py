"""Token-endpoint failures become typed errors: AADSTS fields, remedies, retries, network errors, no secrets."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from credential_helpers import FAST_RETRY, GRAPH_SCOPE, assert_no_secrets, error_texts, held_tokens, seed
from entraclaw.auth.certgen import generate_rsa_key, self_signed_certificate
from entraclaw.auth.retry import TokenRetryPolicy
from entraclaw.auth.signer import PemSigner
from entraclaw.auth.token_errors import AADSTS_REMEDIES, exchange_error, parse_aadsts_code, redact
from entraclaw.config import make_session
from entraclaw.emulator import Emulator
from entraclaw.errors import NetworkError, TokenEndpointUnavailableError, TokenExchangeError


@pytest.fixture
def emu():
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def seeded(emu):
    return seed(emu)


@pytest.fixture
def debug_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="msal")
    caplog.set_level(logging.DEBUG, logger="entraclaw")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    return caplog


def _check_clean(exc: BaseException, secrets=()) -> None:
    for text in error_texts(exc):
        assert_no_secrets(text, secrets)


def _check_logs_clean(caplog, secrets=()) -> None:
    for record in caplog.records:
        assert_no_secrets(record.getMessage(), secrets)
        if record.exc_text:
            assert_no_secrets(record.exc_text, secrets)


# --- AADSTS codes from the emulator ------------------------------------------------------


def test_700027_unregistered_certificate(seeded, debug_logs):
    other = generate_rsa_key()
    cert = self_signed_certificate(other, "not-registered")
    cred = seeded.credential(signer=PemSigner(other, cert))
    with pytest.raises(TokenExchangeError) as info:
        cred.get_token(GRAPH_SCOPE)
    err = info.value
    assert (err.hop, err.aadsts_code, err.error, err.http_status) == (1, 700027, "invalid_client", 401)
    assert err.client_id == seeded.blueprint_app_id and seeded.blueprint_app_id in str(err)
    assert err.correlation_id and err.trace_id
    assert "`entraclaw setup`" in err.remedy and "ENTRACLAW_BLUEPRINT_CERT_X5T_S256" in err.remedy
    _check_clean(err)
    _check_logs_clean(debug_logs)


def test_700016_unknown_blueprint(seeded):
    cred = seeded.credential(blueprint_app_id="11111111-2222-3333-4444-555555555555")
    with pytest.raises(TokenExchangeError) as info:
        cred.get_token(GRAPH_SCOPE)
    err = info.value
    assert (err.hop, err.aadsts_code) == (1, 700016)
    assert "client id" in err.remedy and "TENANT" in err.remedy
    _check_clean(err)


def test_65001_missing_consent_after_t1_t2_were_issued(emu, debug_logs):
    seeded = seed(emu, consent=())
    cred = seeded.credential()
    with pytest.raises(TokenExchangeError) as info:
        cred.get_token(GRAPH_SCOPE)
    err = info.value
    assert (err.hop, err.aadsts_code, err.error) == (3, 65001, "invalid_grant")
    assert err.client_id == seeded.agent_identity_app_id
    assert "consent" in err.remedy
    secrets = held_tokens(cred)
    assert len(secrets) == 2  # T1 and T2 were issued and are held
    _check_clean(err, secrets)
    _check_logs_clean(debug_logs, secrets)


def test_consent_granted_after_a_failure_is_seen_at_once(emu):
    # MSAL replays HTTP 400s for 60 s from its throttle cache; entraclaw must not.
    seeded = seed(emu, consent=())
    cred = seeded.credential()
    with pytest.raises(TokenExchangeError):
        cred.get_token(GRAPH_SCOPE)
    emu.tenant.grant_consent(seeded.agent_identity_app_id, scopes=["User.Read"])
    assert cred.get_token(GRAPH_SCOPE).token


def test_50034_unknown_agent_user(seeded):
    cred = seeded.credential(agent_user_id="99999999-8888-7777-6666-555555555555")
    with pytest.raises(TokenExchangeError) as info:
        cred.get_token(GRAPH_SCOPE)
    err = info.value
    assert (err.hop, err.aadsts_code) == (3, 50034)
    assert "ENTRACLAW_AGENT_USER_ID" in err.remedy
    _check_clean(err, held_tokens(cred))


def test_700024_clock_skew(seeded):
    seeded.emu.advance_clock(3600)  # the server's clock runs an hour ahead of ours
    cred = seeded.credential()
    with pytest.raises(TokenExchangeError) as info:
        cred.get_token(GRAPH_SCOPE)
    err = info.value
    assert (err.hop, err.aadsts_code) == (1, 700024)
    assert "clock" in err.remedy


def test_identity_of_another_blueprint(emu):
    seeded = seed(emu)
    other_bp = emu.tenant.add_blueprint("other", certificates=[seeded.cert])
    foreign = emu.tenant.add_agent_identity(other_bp.app_id, "foreign identity")
    cred = seeded.credential(agent_identity_app_id=foreign.app_id)
    with pytest.raises(TokenExchangeError) as info:
        cred.get_token(GRAPH_SCOPE)
    assert info.value.hop == 1 and info.value.aadsts_code is not None
    assert info.value.remedy
    _check_clean(info.value)


# --- mapping of codes the emulator cannot produce through a well-configured client -------


@pytest.mark.parametrize(
    "code, words",
    [
        (700027, "registers this device's certificate"),
        (700024, "clock"),
        (65001, "consent"),
        (50000, "object id"),
        (50034, "Agent User"),
        (700016, "client id"),
        (7000216, "client_assertion"),
        (9002324, "client secrets"),
        (50027, "JWT"),
    ],
)
def test_each_common_code_has_its_remedy(code, words):
    body = {
        "error": "invalid_grant",
        "error_description": f"AADSTS{code}: Something failed. Trace ID: t Correlation ID: c Timestamp: 2026-01-01",
        "error_codes": [code],
        "trace_id": "trace-1",
        "correlation_id": "corr-1",
    }
    err = exchange_error(body, hop=2, client_id="app-1", http_status=400)
    assert err.aadsts_code == code and err.hop == 2 and err.client_id == "app-1"
    assert err.trace_id == "trace-1" and err.correlation_id == "corr-1"
    assert err.remedy == AADSTS_REMEDIES[code] and words in err.remedy
    assert "Trace ID" not in err.description  # kept as fields instead


def test_code_parsed_from_description_when_error_codes_missing():
    assert parse_aadsts_code({"error_description": "AADSTS7000216: 'client_assertion' is required"}) == 7000216
    assert parse_aadsts_code({"error": "x"}) is None


def test_throttled_body_gets_throttling_remedy():
    err = exchange_error({"error": "temporarily_unavailable"}, hop=1, client_id="a", http_status=429)
    assert "429" in err.remedy


def test_descriptions_echoing_tokens_are_redacted():
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    secret = "a-long-secret-value-123"
    body = {"error": "invalid_grant", "error_description": f"AADSTS50027: bad token {token} and {secret}"}
    err = exchange_error(body, hop=3, client_id="a", http_status=400, secrets=[secret])
    _check_clean(err, [token, secret])
    assert "[redacted]" in err.description
    assert redact("prefix eyJ0eXAiOiJKV1Qi cut") == "prefix [redacted] cut"


# --- throttling, 5xx, network ----------------------------------------------------------------


def test_429_with_retry_after_is_retried_after_waiting(seeded):
    emu = seeded.emu
    emu.faults.inject("429", count=1, retry_after=1)
    cred = seeded.credential()
    started = time.monotonic()
    token = cred.get_token(GRAPH_SCOPE)
    elapsed = time.monotonic() - started
    assert token.token
    statuses = [(r["hop"], r["status"]) for r in emu.stats.token_requests]
    assert statuses == [(1, 429), (1, 200), (2, 200), (3, 200)]
    assert elapsed >= 1.0  # Retry-After honoured, and the retry really went to the server


def test_429_on_hop3_is_retried(seeded):
    emu = seeded.emu
    cred = seeded.credential()
    cred.get_token("https://graph.microsoft.com/User.Read")  # warms T1/T2
    emu.stats.reset()
    emu.faults.inject("429", count=1, retry_after=1)
    assert cred.get_token(GRAPH_SCOPE).token
    assert [(r["hop"], r["status"]) for r in emu.stats.token_requests] == [(3, 429), (3, 200)]


def test_5xx_retried_then_succeeds(seeded):
    emu = seeded.emu
    emu.faults.inject("5xx", count=2, status=503, retry_after=1)
    token = seeded.credential(retry_policy=TokenRetryPolicy(max_attempts=4, base_delay=0.01)).get_token(GRAPH_SCOPE)
    assert token.token
    assert [r["status"] for r in emu.stats.token_requests][:3] == [503, 503, 200]


def test_5xx_exhausts_retries_then_unavailable(seeded, debug_logs):
    emu = seeded.emu
    emu.faults.inject("5xx", count=10, status=502, retry_after=1)
    cred = seeded.credential(retry_policy=TokenRetryPolicy(max_attempts=3, base_delay=0.01))
    with pytest.raises(TokenEndpointUnavailableError) as info:
        cred.get_token(GRAPH_SCOPE)
    err = info.value
    assert err.http_status == 502 and err.attempts == 3 and err.hop == 1
    assert err.retry_after == 1.0
    assert emu.stats.count() == 3
    assert seeded.blueprint_app_id in str(err) and err.remedy
    _check_clean(err)
    _check_logs_clean(debug_logs)


def test_retry_after_beyond_budget_is_not_slept_through(seeded):
    emu = seeded.emu
    emu.faults.inject("429", count=1, retry_after=120)
    cred = seeded.credential(retry_policy=TokenRetryPolicy(max_retry_after=5))
    started = time.monotonic()
    with pytest.raises(TokenEndpointUnavailableError) as info:
        cred.get_token(GRAPH_SCOPE)
    assert time.monotonic() - started < 5
    assert info.value.http_status == 429 and info.value.retry_after == 120
    # The next call within the Retry-After window does not hit the server either.
    with pytest.raises(TokenEndpointUnavailableError):
        cred.get_token(GRAPH_SCOPE)
    assert emu.stats.count() == 1


def test_malformed_response_is_a_typed_error_and_logs_no_token_fragment(seeded, debug_logs):
    seeded.emu.faults.inject("malformed", count=1)
    with pytest.raises(TokenExchangeError) as info:
        seeded.credential().get_token(GRAPH_SCOPE)
    assert info.value.error == "invalid_response" and info.value.hop == 1
    _check_clean(info.value)
    _check_logs_clean(debug_logs)


def test_dropped_connection_is_retried(seeded):
    seeded.emu.faults.inject("drop", count=1)
    assert seeded.credential().get_token(GRAPH_SCOPE).token


def test_dropped_connections_become_network_error(seeded):
    seeded.emu.faults.inject("drop", count=10)
    with pytest.raises(NetworkError) as info:
        seeded.credential().get_token(GRAPH_SCOPE)
    assert info.value.network_kind == "connection" and info.value.attempts == FAST_RETRY.max_attempts
    _check_clean(info.value)


def test_timeout_becomes_network_error(seeded):
    seeded.emu.faults.inject("delay", count=5, delay=1.5)
    cred = seeded.credential(timeout=0.3, retry_policy=TokenRetryPolicy(max_attempts=1))
    with pytest.raises(NetworkError) as info:
        cred.get_token(GRAPH_SCOPE)
    assert info.value.network_kind == "timeout"
    assert "timeout" in str(info.value).lower() or "timed out" in str(info.value).lower()


def test_connection_refused_becomes_network_error(seeded):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cred = seeded.credential(tenant=f"https://127.0.0.1:{port}/{seeded.emu.tenant_id}")
    with pytest.raises(NetworkError) as info:
        cred.get_token(GRAPH_SCOPE)
    err = info.value
    assert err.network_kind == "connection" and err.hop == 1
    assert "refused" in str(err).lower()
    assert f"127.0.0.1:{port}" in str(err)


def test_untrusted_tls_certificate_becomes_network_error(seeded):
    session = make_session()  # public CAs only: the machine's REQUESTS_CA_BUNDLE would otherwise decide
    cred = seeded.credential(session=session)
    with pytest.raises(NetworkError) as info:
        cred.get_token(GRAPH_SCOPE)
    assert info.value.network_kind == "tls"
    assert "emu.session()" in info.value.remedy


def test_stale_token_served_while_endpoint_is_down():
    import time as _time

    with Emulator(token_lifetime=600) as emu:
        seeded = seed(emu)

        class Clock:
            now = _time.time()

            def __call__(self) -> float:
                return self.now

        clock = Clock()
        cred = seeded.credential(clock=clock)
        first = cred.get_token(GRAPH_SCOPE)
        clock.now += 540 + 1  # past refresh_on (60 s before expiry), still valid for ~59 s
        emu.faults.inject("5xx", count=20, retry_after=0)
        assert cred.get_token(GRAPH_SCOPE).token == first.token


def test_errors_pickle_with_fields(seeded):
    import pickle

    cred = seeded.credential(agent_user_id="99999999-8888-7777-6666-555555555555")
    with pytest.raises(TokenExchangeError) as info:
        cred.get_token(GRAPH_SCOPE)
    clone = pickle.loads(pickle.dumps(info.value))
    assert clone.aadsts_code == 50034 and clone.hop == 3 and str(clone) == str(info.value)


def test_hostile_error_fields_are_not_echoed():
    # A broken or hostile server puts a token-like value where Entra puts a code or a GUID.
    secret = "opaque-refresh-secret-" + "x" * 40
    body = {
        "error": f"invalid_grant {secret}",
        "error_description": "AADSTS700027: Client assertion failed signature validation.",
        "error_codes": [700027],
        "correlation_id": f"{secret}",
        "trace_id": "<script>" + secret,
    }
    err = exchange_error(body, hop=1, client_id="app-1", http_status=400)
    assert err.error == "unknown_error" and err.trace_id is None
    assert err.aadsts_code == 700027
    for text in (str(err), repr(err)):
        assert secret not in text
    good = exchange_error(
        {"error": "invalid_client", "error_codes": [700027], "correlation_id": "0d7c4f7e-1b1e-4b52-9f0e-8d1c2c6c1f00"},
        hop=1,
        client_id="app-1",
        http_status=400,
    )
    assert good.error == "invalid_client" and good.correlation_id == "0d7c4f7e-1b1e-4b52-9f0e-8d1c2c6c1f00"
