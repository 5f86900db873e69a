"""Agent User token cost: cold (three hops through MSAL over loopback TLS) vs warm (cache hit).

Baseline (ratio 1.00): a dict lookup under a ``threading.Lock`` — the least a
thread-safe cache hit can cost. Contenders:

- warm ``get_token`` (azure-core ``TokenCredential`` path) and ``get_token_info``;
- cold Hop 3 only (T1/T2 cached, e.g. a second scope);
- cold T3: a new credential and a new TLS session each time, so Hops 1-3, MSAL's
  OpenID discovery and the TLS handshakes are all paid — what a fresh process pays.

Goal: warm ``get_token`` < 50 us per call.

Run: python bench/bench_tokens.py     (about 10 s on 2 cores)
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

from entraclaw.auth import AgentUserCredential, PemSigner
from entraclaw.auth.certgen import generate_rsa_key, self_signed_certificate
from entraclaw.emulator import Emulator

SCOPE = "https://graph.microsoft.com/.default"
WARM_CALLS = 200_000
COLD_CALLS = 25
HOP3_CALLS = 40


def _per_call(fn: Callable[[], object], calls: int, rounds: int = 5) -> float:
    results = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        results.append((time.perf_counter() - start) / calls)
    return statistics.median(results)


def main() -> None:
    key = generate_rsa_key()
    cert = self_signed_certificate(key, "bench-tokens")
    signer = PemSigner(key, cert)
    with Emulator() as emu:
        bp = emu.tenant.add_blueprint("bench Blueprint", certificates=[cert])
        ai = emu.tenant.add_agent_identity(bp.app_id, "bench Agent Identity")
        au = emu.tenant.add_agent_user(ai.app_id, "bench@agents.example", "bench Agent User")
        emu.tenant.grant_consent(ai.app_id, scopes=["User.Read"])

        def credential() -> AgentUserCredential:
            return AgentUserCredential(
                tenant=emu.authority,
                blueprint_app_id=bp.app_id,
                agent_identity_app_id=ai.app_id,
                agent_user_id=au.object_id,
                signer=signer,
                session=emu.session(),
            )

        lock = threading.Lock()
        table = {"k": ("token", 0)}

        def baseline() -> object:
            with lock:
                return table.get("k")

        warm = credential()
        warm.get_token(SCOPE)
        before = emu.stats.count()
        t_base = _per_call(baseline, WARM_CALLS)
        t_warm = _per_call(lambda: warm.get_token(SCOPE), WARM_CALLS)
        t_info = _per_call(lambda: warm.get_token_info(SCOPE), WARM_CALLS // 4)
        assert emu.stats.count() == before, "a warm call reached the token endpoint"

        def cold() -> object:
            return credential().get_token(SCOPE)

        scopes = iter(f"https://graph.microsoft.com/Scope{i}.Read" for i in range(10_000))
        emu.tenant.grant_consent(ai.app_id, scopes=[f"Scope{i}.Read" for i in range(2_000)])

        def hop3_only() -> object:
            return warm.get_token(next(scopes))

        cold()  # warm-up: imports, first TLS context
        emu.stats.reset()
        t_cold = _per_call(cold, COLD_CALLS, rounds=3)
        cold_requests = emu.stats.count() / (COLD_CALLS * 3)
        emu.stats.reset()
        t_hop3 = _per_call(hop3_only, HOP3_CALLS, rounds=3)
        hop3_requests = emu.stats.count() / (HOP3_CALLS * 3)

    rows = [
        ("dict lookup under a lock (baseline)", t_base, "-"),
        ("warm get_token (cache hit)", t_warm, "0"),
        ("warm get_token_info (cache hit)", t_info, "0"),
        ("cold Hop 3 only (T1/T2 cached)", t_hop3, f"{hop3_requests:.0f}"),
        ("cold T3: new credential, Hops 1-3", t_cold, f"{cold_requests:.0f}"),
    ]
    print("Agent User token, loopback emulator over TLS, median per call")
    print(f"{'case':<38} {'us/call':>12} {'ratio':>12} {'token requests':>15}")
    print("-" * 80)
    for name, seconds, requests in rows:
        print(f"{name:<38} {seconds * 1e6:>12.2f} {seconds / t_base:>11.1f}x {requests:>15}")
    print("-" * 80)
    print(f"cold T3 / warm get_token: {t_cold / t_warm:,.0f}x")
    print(f"goal: warm get_token < 50 us: {'met' if t_warm < 50e-6 else 'MISSED'} ({t_warm * 1e6:.2f} us)")


if __name__ == "__main__":
    main()
