"""Issue 9, "refresh ahead, never wait": refresh points, background refresh, deadlines, cross-process reads.

Time is a fake clock handed to the credential; slow exchanges are the emulator's ``gate``
fault (held until the test sets an event), so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from credential_helpers import GRAPH_SCOPE, FakeClock, assert_no_secrets, held_tokens, seed
from entraclaw.auth.persisted_cache import PersistedTokenStore
from entraclaw.auth.retry import TokenRetryPolicy
from entraclaw.auth.token_cache import CachedToken
from entraclaw.emulator import Emulator
from entraclaw.errors import TokenDeadlineExceededError, TokenExchangeError

HELPERS = Path(__file__).with_name("credential_helpers.py")
USER_READ = "https://graph.microsoft.com/User.Read"




@pytest.fixture
def world():
    with Emulator(token_lifetime=3600) as emu:
        yield seed(emu)


def _hops(emu: Any, start: int = 0) -> list[int]:
    return sorted(r["hop"] for r in emu.stats.token_requests[start:])


# --- the refresh point -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lifetime, served",
    [(3600, 1800), (7200, 3600), (86400, 43200), (900, 450), (600, 300)],
)
def test_refresh_point_is_half_the_lifetime_and_at_least_five_minutes_before_expiry(lifetime, served):
    entry = CachedToken.create("t" * 20, expires_on=1000 + lifetime, obtained_on=1000)
    assert entry.refresh_on - 1000 == pytest.approx(served)
    assert entry.expires_on - entry.refresh_on >= 300


def test_short_tokens_are_still_served_for_a_while():
    entry = CachedToken.create("t" * 20, expires_on=1300, obtained_on=1000)
    assert 1000 < entry.refresh_on < 1300


def test_refresh_in_from_entra_is_honoured():
    later = CachedToken.from_response({"access_token": "a.b.c", "expires_in": 3600, "refresh_in": 3000}, now=1000)
    assert later.refresh_on == 4000
    earlier = CachedToken.from_response({"access_token": "a.b.c", "expires_in": 3600, "refresh_in": 600}, now=1000)
    assert earlier.refresh_on == 1600


# --- past the refresh point: the cached token at once, one refresh in the background ---------------


def test_due_token_is_served_at_once_while_one_background_refresh_runs(world):
    emu = world.emu
    clock = FakeClock()
    cred = world.credential(clock=clock, sleep=clock.sleep)
    first = cred.get_token(GRAPH_SCOPE)
    start = len(emu.stats.token_requests)
    clock.now += 1801  # past every refresh point (T1, T2, T3 all half-way), still valid

    entered, release = threading.Event(), threading.Event()
    emu.faults.inject("gate", entered=entered, release=release, count=3)
    returned: list[str] = []
    done = threading.Event()

    def caller() -> None:
        returned.append(cred.get_token(GRAPH_SCOPE).token)
        done.set()

    threading.Thread(target=caller, daemon=True).start()
    try:
        assert done.wait(10), "the caller waited on the network although its token was valid"
        assert returned == [first.token]
        # More callers while the refresh is in flight: same token, no new refresh.
        for _ in range(16):
            assert cred.get_token(GRAPH_SCOPE).token == first.token
        assert entered.wait(10)
    finally:
        release.set()
    assert cred.wait_for_refresh(timeout=30)
    # T3 only: T1 and T2 are still usable and are renewed on need, not ahead (issue 16).
    assert _hops(emu, start) == [3], "exactly one refresh of the due key"
    second = cred.get_token(GRAPH_SCOPE)
    assert second.token != first.token


def test_failed_background_refresh_is_logged_without_token_and_retried_with_backoff(world, caplog):
    emu = world.emu
    clock = FakeClock()
    cred = world.credential(clock=clock, sleep=clock.sleep)
    first = cred.get_token(GRAPH_SCOPE)
    clock.now += 1801
    emu.faults.inject("5xx", count=1000, retry_after=0)
    start = len(emu.stats.token_requests)
    with caplog.at_level(logging.WARNING, logger="entraclaw"):
        assert cred.get_token(GRAPH_SCOPE).token == first.token
        assert cred.wait_for_refresh(timeout=30)
        assert cred.get_token(GRAPH_SCOPE).token == first.token
        assert cred.wait_for_refresh(timeout=30)
    failed_once = len(emu.stats.token_requests) - start
    assert failed_once > 0
    assert "background refresh" in caplog.text.lower()
    for record in caplog.records:
        assert_no_secrets(record.getMessage(), held_tokens(cred))
    # Within the backoff, callers do not start another attempt.
    assert cred.get_token(GRAPH_SCOPE).token == first.token
    assert cred.wait_for_refresh(timeout=30)
    assert len(emu.stats.token_requests) - start == failed_once
    # After it, one more attempt; when the endpoint is back, the new token arrives.
    emu.faults.clear()
    clock.now += 600
    assert cred.get_token(GRAPH_SCOPE).token == first.token
    assert cred.wait_for_refresh(timeout=30)
    assert cred.get_token(GRAPH_SCOPE).token != first.token


def test_expired_token_makes_the_caller_wait_for_a_new_one(world):
    clock = FakeClock()
    cred = world.credential(clock=clock, sleep=clock.sleep)
    first = cred.get_token(GRAPH_SCOPE)
    clock.now += 3601
    assert cred.get_token(GRAPH_SCOPE).token != first.token


def test_t1_is_exchanged_once_per_refresh_period_for_many_scopes(world):
    emu = world.emu
    emu.tenant.grant_consent(world.agent_identity_app_id, scopes=["User.Read", "Mail.Read"])
    clock = FakeClock()
    cred = world.credential(clock=clock, sleep=clock.sleep)
    scopes = [GRAPH_SCOPE, USER_READ, "https://graph.microsoft.com/Mail.Read"]
    for _period in range(4):
        for scope in scopes:
            cred.get_token(scope)
            cred.wait_for_refresh(timeout=30)
        clock.now += 1801
    assert emu.stats.count(1) <= 4
    assert emu.stats.count(2) <= 4


# --- the total deadline -------------------------------------------------------------------------


def test_retry_after_beyond_the_deadline_is_a_typed_deadline_error(world):
    emu = world.emu
    clock = FakeClock()
    cred = world.credential(
        clock=clock, sleep=clock.sleep, retry_policy=TokenRetryPolicy(max_attempts=4, max_retry_after=60), deadline=30
    )
    emu.faults.inject("429", count=10, retry_after=20)
    with pytest.raises(TokenDeadlineExceededError) as info:
        cred.get_token(GRAPH_SCOPE)
    err = info.value
    assert isinstance(err, TokenExchangeError)
    assert err.hop == 1 and err.waited_on == "Retry-After"
    assert "Hop 1" in str(err) and "Retry-After" in str(err)
    assert sum(clock.slept) <= 30


def test_deadline_per_call(world):
    emu = world.emu
    clock = FakeClock()
    cred = world.credential(clock=clock, sleep=clock.sleep)
    emu.faults.inject("429", count=10, retry_after=4)
    with pytest.raises(TokenDeadlineExceededError) as info:
        cred.get_token(GRAPH_SCOPE, deadline=3)
    assert info.value.waited_on == "Retry-After" and clock.slept == []


def test_waiting_on_another_threads_exchange_counts_against_the_deadline(world):
    emu = world.emu
    cred = world.credential()
    entered, release = threading.Event(), threading.Event()
    emu.faults.inject("gate", entered=entered, release=release)
    holder = threading.Thread(target=lambda: cred.get_token(GRAPH_SCOPE), daemon=True)
    holder.start()
    try:
        assert entered.wait(10)
        with pytest.raises(TokenDeadlineExceededError) as info:
            cred.get_token(GRAPH_SCOPE, deadline=0.5)
        assert info.value.waited_on == "lock"
    finally:
        release.set()
        holder.join(30)


def test_a_slow_network_answer_counts_against_the_deadline(world):
    emu = world.emu
    cred = world.credential()
    entered, release = threading.Event(), threading.Event()
    emu.faults.inject("gate", entered=entered, release=release, count=10)
    try:
        with pytest.raises(TokenDeadlineExceededError) as info:
            cred.get_token(GRAPH_SCOPE, deadline=0.5)
        assert info.value.waited_on == "network" and info.value.hop == 1
    finally:
        release.set()


# --- across processes -----------------------------------------------------------------------


def _child_held_in_its_exchange(world, tmp_path: Path) -> tuple[Path, subprocess.Popen[str], threading.Event]:
    """A warm shared cache, then a child process held inside its Hop-3 exchange for a key not on disk.

    Returns the cache path, the child, and the event that lets the emulator answer it.
    """
    path = tmp_path / "shared.bin"
    world.credential(cache=PersistedTokenStore(path, allow_plaintext=True)).get_token(GRAPH_SCOPE)
    config = world.child_config(path)
    config["scope"] = USER_READ
    config_path = tmp_path / "child.json"
    config_path.write_text(json.dumps(config))
    entered, release = threading.Event(), threading.Event()
    world.emu.faults.inject("gate", entered=entered, release=release)
    child = _child(config_path)
    if not entered.wait(60):
        release.set()
        child.kill()
        _, err = child.communicate(timeout=60)
        pytest.fail(f"the child never reached its exchange: {err[-2000:]}")
    return path, child, release


def _child(config_path: Path) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HELPERS.parent), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, str(HELPERS), "child", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_reading_a_token_on_disk_never_waits_for_another_process_exchange(world, tmp_path):
    path, child, release = _child_held_in_its_exchange(world, tmp_path)
    try:
        # The child now holds its exchange lock. A new process-like reader (fresh memory):
        reader = world.credential(cache=PersistedTokenStore(path, allow_plaintext=True, lock_timeout=3))
        assert reader.get_token(GRAPH_SCOPE).token
    finally:
        release.set()
        _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err


def test_a_process_killed_mid_exchange_frees_its_slot_at_once(world, tmp_path):
    path, child, release = _child_held_in_its_exchange(world, tmp_path)
    try:
        child.send_signal(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
        child.wait(30)
        other = world.credential(cache=PersistedTokenStore(path, allow_plaintext=True, lock_timeout=3))
        assert other.get_token(USER_READ).token
    finally:
        release.set()


def test_background_refresh_adopts_a_token_another_process_wrote(world, tmp_path):
    """Two credentials with their own memory (two processes, as far as the cache can tell)."""
    emu = world.emu
    path = tmp_path / "shared.bin"
    clock = FakeClock()
    first = world.credential(clock=clock, sleep=clock.sleep, cache=PersistedTokenStore(path, allow_plaintext=True))
    second = world.credential(clock=clock, sleep=clock.sleep, cache=PersistedTokenStore(path, allow_plaintext=True))
    old = first.get_token(GRAPH_SCOPE)
    assert second.get_token(GRAPH_SCOPE).token == old.token  # from the file: no exchange
    assert emu.stats.count() == 3
    clock.now += 1801
    assert first.get_token(GRAPH_SCOPE).token == old.token
    assert first.wait_for_refresh(timeout=30)
    assert emu.stats.count() == 4  # T3 only (T1 and T2 renewed on need, issue 16)
    renewed = first.get_token(GRAPH_SCOPE).token
    # The second process's token is due too; its background refresh finds the renewed one.
    assert second.get_token(GRAPH_SCOPE).token == old.token
    assert second.wait_for_refresh(timeout=30)
    assert second.get_token(GRAPH_SCOPE).token == renewed
    assert emu.stats.count() == 4, "the second process exchanged although the file had a fresh token"
