"""Fault injection: 429 + Retry-After, 5xx, delays, malformed bodies, dropped connections."""

from __future__ import annotations

import pytest
import requests

from emulator_helpers import assert_sts_error
from entraclaw.errors import EmulatorError

# The helper module is a plugin so its fixtures (seeded, fresh) reach these tests.
pytest_plugins = ["emulator_helpers"]


def test_429_with_retry_after_then_recovers(fresh):
    fresh.emu.faults.inject("429", count=2, retry_after=7)
    for _ in range(2):
        r = fresh.post_token(fresh.hop1_form())
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "7"
        assert r.json()["error_codes"] == [90055]
    assert fresh.post_token(fresh.hop1_form()).status_code == 200
    assert [e["status"] for e in fresh.emu.stats.token_requests] == [429, 429, 200]


@pytest.mark.parametrize("status", [500, 503, 504])
def test_5xx(fresh, status):
    fresh.emu.faults.inject("5xx", status=status)
    r = fresh.post_token(fresh.hop1_form())
    assert r.status_code == status
    assert r.json()["error"] == "temporarily_unavailable"
    assert fresh.post_token(fresh.hop1_form()).status_code == 200


def test_malformed_body(fresh):
    fresh.emu.faults.inject("malformed")
    r = fresh.post_token(fresh.hop1_form())
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()


def test_dropped_connection(fresh):
    fresh.emu.faults.inject("drop")
    with pytest.raises(requests.ConnectionError):
        fresh.post_token(fresh.hop1_form())
    assert fresh.post_token(fresh.hop1_form()).status_code == 200


def test_delay_still_answers(fresh):
    fresh.emu.faults.inject("delay", delay=0.05)
    assert fresh.post_token(fresh.hop1_form()).status_code == 200
    assert fresh.emu.faults.pending == 0


def test_fault_only_hits_its_path(fresh):
    fresh.emu.faults.inject("5xx", path="/v1.0/me")
    assert fresh.post_token(fresh.hop1_form()).status_code == 200
    with fresh.emu.session() as s:
        assert s.get(f"{fresh.emu.graph_url}/me").status_code == 503


def test_clear(fresh):
    fresh.emu.faults.inject("429", count=5)
    fresh.emu.faults.clear()
    assert fresh.post_token(fresh.hop1_form()).status_code == 200


def test_real_errors_still_apply_after_faults(fresh):
    fresh.emu.faults.inject("429")
    once = fresh.assertion()
    assert fresh.post_token(fresh.hop1_form(once)).status_code == 429
    # The throttled request never reached the checks, so its jti was not consumed.
    assert fresh.post_token(fresh.hop1_form(once)).status_code == 200
    assert_sts_error(fresh.post_token(fresh.hop1_form(once)), 50013, "invalid_client")


@pytest.mark.parametrize(
    ("kind", "kw"),
    [("teapot", {}), ("429", {"count": 0}), ("5xx", {"status": 404}), ("delay", {"delay": 0})],
)
def test_bad_fault_arguments(fresh, kind, kw):
    with pytest.raises(EmulatorError) as info:
        fresh.emu.faults.inject(kind, **kw)
    assert info.value.remedy
