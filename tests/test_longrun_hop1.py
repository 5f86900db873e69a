"""Issue 16, "fewest TPM signatures": Hop 1 (the device key's signature) at most once per T1 lifetime.

T1 and T2 feed only the next hop's exchange, which runs in the background for every caller after
the first; so they are renewed when an outer refresh needs them and finds them unusable, not at
their own refresh point. A simulated day on a fake clock counts Hop-1 requests at the emulator;
the old refresh-ahead behaviour (``_inner_refresh_ahead = True``) is run the same way in the same
test, so the count is compared, not assumed.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import pytest

from credential_helpers import GRAPH_SCOPE, FakeClock, seed
from entraclaw.auth.persisted_cache import PersistedTokenStore
from entraclaw.emulator import Emulator

LIFETIME = 3600
USER_READ = "https://graph.microsoft.com/User.Read"


@pytest.fixture
def world():
    with Emulator(token_lifetime=LIFETIME) as emu:
        yield seed(emu)


def _hop1(emu: Any, start: int = 0) -> int:
    return sum(1 for r in emu.stats.token_requests[start:] if r["hop"] == 1 and r["status"] == 200)


def _simulate(creds: list[Any], clock: FakeClock, seconds: float, step: float, scopes: tuple[str, ...]) -> int:
    """Every credential asks for every scope at each step; returns how many calls waited (foreground)."""
    waited = 0
    caller = threading.get_ident()
    for cred in creds:
        foreground = cred._refresh_now

        def counted(*args: Any, _f: Any = foreground, **kwargs: Any) -> Any:
            # A caller waited only if the exchange ran on its own thread (the worker's don't count).
            nonlocal waited
            if threading.get_ident() == caller:
                waited += 1
            return _f(*args, **kwargs)

        cred._refresh_now = counted
    for _ in range(int(seconds / step)):
        for cred in creds:
            for scope in scopes:
                cred.get_token(scope)
            assert cred.wait_for_refresh(timeout=30)
        clock.now += step
    return waited


def _day(world: Any, *, ahead: bool, scopes: tuple[str, ...] = (GRAPH_SCOPE,)) -> tuple[int, int]:
    clock = FakeClock()
    cred = world.credential(clock=clock, sleep=clock.sleep)
    if ahead:
        cred._inner_refresh_ahead = True  # the old behaviour; otherwise the credential's default
    start = len(world.emu.stats.token_requests)
    try:
        # Warm first: the first call of each scope waits by definition.
        for scope in scopes:
            cred.get_token(scope)
        waited = _simulate([cred], clock, 86400, 150, scopes)
    finally:
        cred.close()
    return _hop1(world.emu, start), waited


def test_hop1_runs_at_most_once_per_t1_lifetime_over_a_day(world):
    hop1, waited = _day(world, ahead=False)
    lifetimes = math.ceil(86400 / LIFETIME)
    assert hop1 <= lifetimes + 1, f"{hop1} Hop-1 signatures in a day of {lifetimes} T1 lifetimes"
    assert waited == 0  # no call after the first waited for an exchange


def test_refresh_ahead_of_t1_signed_about_twice_per_lifetime(world):
    # The baseline the change is measured against: the same day with T1/T2 refreshed at half-life.
    old, _ = _day(world, ahead=True)
    new, _ = _day(world, ahead=False)
    assert old >= 2 * (new - 1), (old, new)


def test_several_scopes_share_one_t1(world):
    hop1, waited = _day(world, ahead=False, scopes=(GRAPH_SCOPE, USER_READ))
    assert hop1 <= math.ceil(86400 / LIFETIME) + 1
    assert waited == 0


def test_t1_past_its_refresh_point_is_not_refreshed_on_its_own(world):
    clock = FakeClock()
    with world.credential(clock=clock, sleep=clock.sleep) as cred:
        cred.get_token(GRAPH_SCOPE)
        start = len(world.emu.stats.token_requests)
        clock.now += LIFETIME / 2 + 1  # T1, T2 and T3 are all past their refresh points
        cred.get_token(GRAPH_SCOPE)
        assert cred.wait_for_refresh(timeout=30)
        hops = sorted(r["hop"] for r in world.emu.stats.token_requests[start:])
        assert hops == [3], hops  # T3 renewed with the still-usable T1 and T2: no signature
        clock.now += LIFETIME / 2  # T1 is now past its usable point: the next T3 refresh renews it
        cred.get_token(GRAPH_SCOPE)
        assert cred.wait_for_refresh(timeout=30)
        assert _hop1(world.emu, start) == 1


def test_processes_sharing_the_cache_sign_once_per_lifetime_together(world, tmp_path: Path):
    clock = FakeClock()
    store_path = tmp_path / "tokens.bin"
    creds = [
        world.credential(clock=clock, sleep=clock.sleep, cache=PersistedTokenStore(store_path, allow_plaintext=True))
        for _ in range(3)
    ]
    start = len(world.emu.stats.token_requests)
    try:
        for cred in creds:
            cred.get_token(GRAPH_SCOPE)
        waited = _simulate(creds, clock, 6 * LIFETIME, 150, (GRAPH_SCOPE,))
    finally:
        for cred in creds:
            cred.close()
    assert _hop1(world.emu, start) <= 6 + 1
    assert waited == 0
