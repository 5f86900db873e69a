"""Issue 9 follow-up: a failed background refresh is retried by the worker itself, with no callers.

An agent idle for an hour whose token is past its refresh point has nobody to call
``get_token``; the retry must not wait for one. Time is the credential's injected fake
clock. The worker re-reads that clock whenever ``wait_for_refresh`` wakes it, so the tests
move the clock and then wait for the worker to settle: nothing here is timed, and the
assertions are on counts of emulator requests and log records.
"""

from __future__ import annotations

import gc
import logging
import weakref
from typing import Any

import pytest

from credential_helpers import GRAPH_SCOPE, FakeClock, assert_no_secrets, held_tokens, seed
from entraclaw.auth import credential as credential_module
from entraclaw.auth.persisted_cache import PersistedTokenStore
from entraclaw.auth.retry import TokenRetryPolicy
from entraclaw.auth.token_cache import CachedToken
from entraclaw.emulator import Emulator

# One request per attempt, so each background attempt of a key is exactly one emulator request.
ONE_TRY = TokenRetryPolicy(max_attempts=1)




@pytest.fixture
def world():
    with Emulator(token_lifetime=3600) as emu:
        yield seed(emu)


def _failures(caplog: Any) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "background refresh" in r.getMessage().lower() and "failed" in r.getMessage()]


def _statuses(emu: Any, start: int) -> list[tuple[int, int]]:
    return sorted((r["hop"], r["status"]) for r in emu.stats.token_requests[start:])


def _settle(cred: Any) -> None:
    assert cred.wait_for_refresh(timeout=30), "the background worker did not settle"


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "shared-file"])
def test_failed_background_refresh_is_retried_by_the_worker_with_no_callers(world, tmp_path, caplog, shared):
    emu = world.emu
    clock = FakeClock()
    path = tmp_path / "shared.bin"
    cache = PersistedTokenStore(path, allow_plaintext=True) if shared else None
    cred = world.credential(clock=clock, sleep=clock.sleep, retry_policy=ONE_TRY, cache=cache)
    first = cred.get_token(GRAPH_SCOPE)
    old_tokens = set(held_tokens(cred))
    clock.now += 1801  # T1, T2 and T3 are all past their refresh point, all valid for 1799 s more
    # Two failed rounds of T3 (T1 and T2 are still usable, so they are not renewed: issue 16), then
    # the endpoint is back.
    emu.faults.inject("5xx", count=2, retry_after=0)
    start = len(emu.stats.token_requests)

    with caplog.at_level(logging.WARNING, logger="entraclaw"):
        # The last caller for a long time: it gets the cached token, a refresh starts behind it.
        assert cred.get_token(GRAPH_SCOPE).token == first.token
        _settle(cred)
        assert _statuses(emu, start) == [(3, 503)]
        assert len(_failures(caplog)) == 1

        # No caller from here on. Before the first backoff (10 s) ends: nothing.
        clock.now += 9.5
        _settle(cred)
        assert len(emu.stats.token_requests) - start == 1
        # At it, the worker tries the key again on its own; it fails again.
        clock.now += 0.5
        _settle(cred)
        assert _statuses(emu, start) == [(3, 503)] * 2
        assert len(_failures(caplog)) == 2
        # The backoff doubles: nothing until 20 s after the second failure, then success.
        clock.now += 19.5
        _settle(cred)
        assert len(emu.stats.token_requests) - start == 2
        clock.now += 0.5
        _settle(cred)
        assert _statuses(emu, start) == [(3, 200)] + [(3, 503)] * 2
        # Once refreshed, the worker has nothing left to do, however long the agent stays idle.
        clock.now += 1000
        _settle(cred)
        assert len(emu.stats.token_requests) - start == 3
    assert len(_failures(caplog)) == 2, "each failure is logged exactly once"

    # The fresh T3 is in memory (and on disk) beside the T1 and T2 it was made with: the next
    # caller gets it without a request.
    renewed = set(held_tokens(cred))
    assert len(renewed) == 3 and len(renewed - old_tokens) == 1
    before = emu.stats.count()
    token = cred.get_token(GRAPH_SCOPE).token
    assert token in renewed - old_tokens and token != first.token
    assert emu.stats.count() == before
    if shared:
        on_disk = {entry.token for entry in PersistedTokenStore(path, allow_plaintext=True).load().values()}
        assert on_disk == renewed

    for record in _failures(caplog):
        message = record.getMessage()
        assert record.exc_info is None, "a failure is logged by key and error type, not with its traceback"
        assert any(key in message for key in cred._memory.snapshot()), message
        assert "Error" in message  # the error type's name
        assert_no_secrets(message, list(old_tokens | renewed))


def _due_t3_only(world: Any, clock: FakeClock, **overrides: Any) -> tuple[Any, str]:
    """A credential whose T3 (only) is past its refresh point and 40 s from expiry.

    T1 and T2 stay fresh, so each background attempt is exactly one Hop-3 request. The
    T3 entry is the real token with earlier times: 3600 s lifetime, obtained 3560 s ago,
    so its must-wait point (30 s before expiry) is 10 s away.
    """
    cred = world.credential(clock=clock, sleep=clock.sleep, retry_policy=ONE_TRY, **overrides)
    cred.get_token(GRAPH_SCOPE)
    (key,) = [k for k in cred._memory.snapshot() if k.startswith("t3|")]
    entry = cred._memory.get_any(key)
    cred._memory.put(
        key, CachedToken.create(entry.token, expires_on=clock.now + 40, obtained_on=clock.now - 3560), replace=True
    )
    return cred, key


def test_retries_come_sooner_as_expiry_nears_and_stop_when_the_token_expires(world, caplog, monkeypatch):
    emu = world.emu
    # An idle worker ends at once instead of after a minute: the test can see it end.
    monkeypatch.setattr(credential_module, "_WORKER_IDLE_EXIT", 0.0)
    clock = FakeClock()
    t0 = clock.now
    cred, key = _due_t3_only(world, clock)
    emu.faults.inject("5xx", count=1000, retry_after=0)
    start = len(emu.stats.token_requests)

    def attempts() -> int:
        return len(emu.stats.token_requests) - start

    with caplog.at_level(logging.WARNING, logger="entraclaw"):
        cred.get_token(GRAPH_SCOPE)
        _settle(cred)
        assert attempts() == 1
        worker = cred._refresher._worker
        assert worker is not None
        # Backoff alone would wait 10, 20, 40, ... s. Each retry instead comes at the latest
        # half-way to the token's must-wait point (t0 + 10), at least 5 s apart; past that
        # point, half-way to expiry (t0 + 40); none at or after expiry.
        for n, at in enumerate([5.0, 10.0, 25.0, 32.5, 37.5], start=2):
            clock.now = t0 + at - 0.5
            _settle(cred)
            assert attempts() == n - 1, f"attempt {n} came before t0+{at}"
            clock.now = t0 + at
            _settle(cred)
            assert attempts() == n, f"attempt {n} did not come at t0+{at}"
        assert {r["hop"] for r in emu.stats.token_requests[start:]} == {3}
        # The next would be at or past expiry: the worker has stopped for this key.
        for later in (40.0, 60.0, 400.0, 4000.0):
            clock.now = t0 + later
            _settle(cred)
        assert attempts() == 6
    # Nothing left to retry: the worker is idle and ends (a pending retry had kept it alive).
    worker.join(30)
    assert not worker.is_alive(), "the worker did not end once its retries stopped"
    failures = _failures(caplog)
    assert len(failures) == 6
    assert all(key in r.getMessage() for r in failures)
    assert "no further" in failures[-1].getMessage().lower()


def test_the_retry_delay_policy():
    from entraclaw.auth.credential import BACKGROUND_RETRY_MAX, _next_background_attempt

    entry = CachedToken.create("t" * 20, expires_on=10_000.0, obtained_on=6_400.0)  # 3600 s, must-wait at 9970
    # Far from expiry: plain backoff, 10 s doubling up to the cap.
    assert [_next_background_attempt(n, 8_200.0, entry) for n in (1, 2, 3, 5, 6, 20)] == [
        8_210.0,
        8_220.0,
        8_240.0,
        8_360.0,
        8_200.0 + BACKGROUND_RETRY_MAX,
        8_200.0 + BACKGROUND_RETRY_MAX,
    ]
    # Near the must-wait point: half-way to it, never later than it.
    assert _next_background_attempt(7, 9_900.0, entry) == 9_935.0
    assert _next_background_attempt(1, 9_962.0, entry) == 9_967.0
    assert _next_background_attempt(2, 9_967.0, entry) == 9_970.0
    # Inside the must-wait window, while still valid: half-way to expiry, at least 5 s on.
    assert _next_background_attempt(9, 9_970.0, entry) == 9_985.0
    # Not before expiry, or already expired: no further attempt.
    assert _next_background_attempt(1, 9_996.0, entry) is None
    assert _next_background_attempt(1, 10_000.0, entry) is None
    assert _next_background_attempt(1, 20_000.0, entry) is None


def _retrying_with_a_live_worker(world: Any) -> tuple[Any, int]:
    """T3 past its refresh point with plenty of time left, the endpoint failing: one background attempt
    made, a retry pending on a live worker. Returns the credential and the request count before it."""
    emu = world.emu
    clock = FakeClock()
    cred, key = _due_t3_only(world, clock)
    cred._memory.put(  # plenty of time before expiry: the retries would go on for a while
        key,
        CachedToken.create(cred._memory.get_any(key).token, expires_on=clock.now + 1700, obtained_on=clock.now - 1900),
        replace=True,
    )
    emu.faults.inject("5xx", count=1000, retry_after=0)
    start = len(emu.stats.token_requests)
    cred.get_token(GRAPH_SCOPE)
    _settle(cred)
    assert len(emu.stats.token_requests) - start == 1
    worker = cred._refresher._worker
    assert worker is not None and worker.is_alive()
    return cred, start


def test_a_closed_credential_stops_retrying_and_its_worker_ends(world, caplog):
    emu = world.emu
    cred, start = _retrying_with_a_live_worker(world)
    clock = cred._clock
    worker = cred._refresher._worker

    cred.close()
    worker.join(30)
    assert not worker.is_alive(), "the worker of a closed credential is still running"
    for step in (10, 20, 40, 300, 1000):
        clock.now += step
        assert cred.wait_for_refresh(timeout=30)
    assert len(emu.stats.token_requests) - start == 1, "a closed credential kept retrying"


def test_a_credential_dropped_without_close_does_not_keep_its_worker(world):
    emu = world.emu
    cred, start = _retrying_with_a_live_worker(world)
    clock = cred._clock
    worker = cred._refresher._worker

    # A retry is pending; the worker must hold the credential only weakly.
    dropped = weakref.ref(cred)
    del cred
    gc.collect()
    assert dropped() is None, "the background worker keeps the credential alive"
    worker.join(30)
    assert not worker.is_alive(), "the worker outlived its credential"
    clock.now += 1000
    assert len(emu.stats.token_requests) - start == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the SystemExit itself
def test_a_worker_killed_by_systemexit_is_replaced_on_the_next_schedule(world):
    emu = world.emu
    clock = FakeClock()
    cred = world.credential(clock=clock, sleep=clock.sleep, retry_policy=ONE_TRY)
    first = cred.get_token(GRAPH_SCOPE)
    clock.now += 1801
    real = cred._background_refresh

    def exits(key: str) -> None:
        raise SystemExit(3)

    cred._background_refresh = exits
    assert cred.get_token(GRAPH_SCOPE).token == first.token
    worker = cred._refresher._worker
    worker.join(30)
    assert not worker.is_alive()
    _settle(cred)  # nothing is left waiting for a thread that is gone
    cred._background_refresh = real
    start = emu.stats.count()
    assert cred.get_token(GRAPH_SCOPE).token == first.token
    _settle(cred)
    assert emu.stats.count() - start == 1  # T3 only: T1 and T2 are still usable (renewed on need)
    assert cred.get_token(GRAPH_SCOPE).token != first.token
