"""Load on the emulator: many clients, a full jti store, slow clients; does it stay up and bounded?

Baselines are measured in the same run:

1. Load: N threads x M Hop-1 requests (each verifies an RSA assertion and claims a jti),
   against 1 thread x M (the baseline): errors, p50/p99, RSS and thread count before/after.
2. jti store: Hop-1 p50 with 300k live jtis in the replay store against an empty store
   (the store once pruned itself in O(n) on every request).
3. Slow clients: S clients dripping one byte every ``--drip`` seconds while a normal client
   runs M requests: the normal client's p50 against the idle p50, how many slow clients the
   request deadline cut, and the thread count after (it returns to the baseline).

Run: python bench/bench_emulator_load.py [--threads 16] [--requests 40] [--slow 24]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import ssl
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests

from bench_emulator import Chain
from entraclaw.emulator import Emulator


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def threads() -> int:
    return threading.active_count()


def hop1_times(chain: Chain, n: int) -> tuple[list[float], int]:
    times, errors = [], 0
    with chain.emu.session() as s:
        for _ in range(n):
            started = time.perf_counter()
            try:
                chain.hop1(s)
            except (requests.RequestException, KeyError, ValueError):
                errors += 1
                continue
            times.append(time.perf_counter() - started)
    return times, errors


def load(chain: Chain, n_threads: int, n_requests: int) -> dict:
    results: list[tuple[list[float], int]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_threads)

    def worker() -> None:
        barrier.wait()
        out = hop1_times(chain, n_requests)
        with lock:
            results.append(out)

    before = (rss_mb(), threads())
    started = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(n_threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - started
    time.sleep(0.5)  # let handler threads of closed keep-alive connections finish
    after = (rss_mb(), threads())
    times = [t for r in results for t in r[0]]
    return {
        "requests": n_threads * n_requests,
        "errors": sum(r[1] for r in results),
        "p50": statistics.median(times) * 1000,
        "p99": statistics.quantiles(times, n=100)[98] * 1000,
        "rps": len(times) / wall,
        "rss": before[0],
        "rss_after": after[0],
        "threads": before[1],
        "threads_after": after[1],
    }


def slow_clients(
    emu: Emulator, count: int, drip: float, stop: threading.Event, cut: list[int]
) -> list[threading.Thread]:
    ctx = ssl.create_default_context(cadata=emu.ca_cert_pem.decode())
    request = f"GET /{emu.tenant_id}/v2.0/.well-known/openid-configuration HTTP/1.1\r\nHost: x\r\n".encode() * 4

    def drip_one() -> None:
        try:
            raw = socket.create_connection(("127.0.0.1", emu.port), timeout=30)
            sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        except OSError:
            return
        with sock:
            for i in range(len(request)):
                if stop.is_set():
                    return
                try:
                    sock.sendall(request[i : i + 1])
                except OSError:
                    with contextlib.suppress(Exception):
                        cut.append(1)
                    return
                stop.wait(drip)

    workers = [threading.Thread(target=drip_one, daemon=True) for _ in range(count)]
    for w in workers:
        w.start()
    return workers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--slow", type=int, default=24)
    parser.add_argument("--drip", type=float, default=0.5)
    parser.add_argument("--deadline", type=float, default=3.0)
    args = parser.parse_args()

    with Emulator() as emu:
        chain = Chain(emu)
        hop1_times(chain, 5)  # warm up
        one = load(chain, 1, args.requests)
        many = load(chain, args.threads, args.requests)

        # 2. a replay store with 300k live jtis, swapped in and out so both stores are measured
        # in alternating rounds under the same machine load
        from entraclaw.emulator.client_assertion import ReplayCache

        now = emu.clock()
        full = ReplayCache()
        for i in range(300_000):
            full.claim("bench-filler", f"jti-{i}", now + 600, now)
        rounds: dict[str, list[float]] = {"empty": [], "full": []}
        for _ in range(3):
            for name in ("empty", "full"):
                emu.token_service.replay = ReplayCache() if name == "empty" else full
                rounds[name].append(statistics.median(hop1_times(chain, args.requests)[0]) * 1000)
        empty_p50, full_p50 = statistics.median(rounds["empty"]), statistics.median(rounds["full"])
        full_size = len(full)

        # 3. slow clients against the request deadline
        emu._server.request_deadline = args.deadline
        idle_times = [t * 1000 for t in hop1_times(chain, args.requests)[0]]
        threads_before_slow = threads()
        stop, cut = threading.Event(), []
        drippers = slow_clients(emu, args.slow, args.drip, stop, cut)
        time.sleep(args.drip * 2)
        served, errors = hop1_times(chain, args.requests)
        busy_threads = threads()
        time.sleep(args.deadline + 2 * args.drip)  # the watchdog cuts every dripper by now
        stop.set()
        for d in drippers:
            d.join(10)
        time.sleep(0.5)
        threads_after_slow = threads()

    print(f"Emulator under load (loopback TLS, Hop 1 = RSA assertion verify + jti claim + RS256 mint), {emu!r}")
    print(
        f"{'case':<34} {'requests':>8} {'errors':>6} {'p50 ms':>7} {'p99 ms':>7} {'p50 ratio':>9} {'req/s':>7} "
        f"{'RSS MB before/after':>20} {'threads before/after':>21}"
    )
    print("-" * 128)
    for name, row in (("1 thread (baseline)", one), (f"{args.threads} threads", many)):
        print(
            f"{name:<34} {row['requests']:>8} {row['errors']:>6} {row['p50']:>7.2f} {row['p99']:>7.2f} "
            f"{row['p50'] / one['p50']:>8.2f}x {row['rps']:>7.0f} "
            f"{row['rss']:>9.1f} / {row['rss_after']:<8.1f} {row['threads']:>9} / {row['threads_after']:<9}"
        )
    print("-" * 128)
    print(f"{'jti store':<34} {'Hop-1 p50 ms':>12} {'ratio':>7}")
    print(f"{'empty (baseline)':<34} {empty_p50:>12.2f} {1.0:>6.2f}x")
    print(f"{f'{full_size} live jtis':<34} {full_p50:>12.2f} {full_p50 / empty_p50:>6.2f}x")
    print("-" * 128)
    served_ms = [t * 1000 for t in served]
    print(
        f"slow clients: {args.slow} clients dripping a byte every {args.drip:g} s, request deadline {args.deadline:g} s"
    )
    print(f"{'normal client':<34} {'served':>7} {'errors':>6} {'p50 ms':>7} {'p99 ms':>7} {'p50 ratio':>9}")
    print(
        f"{'idle server (baseline)':<34} {len(idle_times):>7} {0:>6} {statistics.median(idle_times):>7.2f} "
        f"{statistics.quantiles(idle_times, n=100)[98]:>7.2f} {1.0:>8.2f}x"
    )
    print(
        f"{'with slow clients':<34} {len(served_ms):>7} {errors:>6} {statistics.median(served_ms):>7.2f} "
        f"{statistics.quantiles(served_ms, n=100)[98]:>7.2f} "
        f"{statistics.median(served_ms) / statistics.median(idle_times):>8.2f}x"
    )
    print(
        f"slow clients cut by the deadline: {len(cut)}/{args.slow}; threads before/during/after: "
        f"{threads_before_slow}/{busy_threads}/{threads_after_slow}"
    )


if __name__ == "__main__":
    main()
