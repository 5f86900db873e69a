"""How many propagation retries each setup step needs, per replication lag.

``entraclaw setup`` against the in-process emulator with ``propagation_delay`` = 0 (the baseline),
5 and 30 s (Entra's documented lag is seconds to minutes; upstream waited 30 s after an Agent
User). Setup's sleeps move the emulator's clock (``advance_clock``), so a 30 s lag costs no wall
time; ``--wall`` sleeps for real instead (minutes). Prints one row per lag: the retries of each
step (the one bounded wait's count), the total simulated wait, Graph requests and the wall time,
with ratios against the no-lag run.

Run: python bench/bench_propagation.py [--wall] [--delays 0,5,30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _admin import admin_graph
from entraclaw.emulator import Emulator
from entraclaw.provisioning.context import Endpoints
from entraclaw.provisioning.setup import Setup, SetupOptions

STEPS = ("blueprint_principal", "certificate", "agent_identity", "agent_user", "consent", "smoke")


def run_once(delay: float, *, wall: bool) -> tuple[dict[str, int], float, int, float]:
    with Emulator() as emu, tempfile.TemporaryDirectory() as home:
        emu.propagation_delay = delay
        endpoints = Endpoints(emu.tenant_id, emu.base_url, emu.graph_url, emu.ca_bundle_path)
        slept = [0.0]

        def sleep(seconds: float) -> None:
            slept[0] += seconds
            if wall:
                time.sleep(seconds)
            else:
                emu.advance_clock(seconds)

        options = SetupOptions(
            endpoints=endpoints,
            key_storage="file",
            state_dir=Path(home),
            sponsor_ids=(emu.admin.user_id,),
            propagation_timeout=300.0,
        )
        started = time.perf_counter()
        result = Setup(options, admin_graph(emu, endpoints), echo=lambda _line: None, sleep=sleep).run()
        elapsed = time.perf_counter() - started
        assert result.completed
        return result.waits, slept[0], result.graph_requests, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wall", action="store_true", help="sleep for real instead of moving the emulator's clock")
    parser.add_argument("--delays", default="0,5,30", help="comma-separated propagation delays in seconds")
    args = parser.parse_args()
    delays = [float(d) for d in args.delays.split(",")]
    rows = [(d, *run_once(d, wall=args.wall)) for d in delays]
    base_requests, base_wall = rows[0][3], rows[0][4]
    head = "| delay s | " + " | ".join(STEPS) + " | waited s | Graph requests (x base) | wall s (x base) |"
    print(head)
    print("|" + "---|" * (len(STEPS) + 4))
    for delay, waits, slept, requests, elapsed in rows:
        cells = " | ".join(str(waits.get(step, 0)) for step in STEPS)
        print(
            f"| {delay:g} | {cells} | {slept:.0f} | {requests} ({requests / base_requests:.2f}) | "
            f"{elapsed:.2f} ({elapsed / base_wall:.2f}) |"
        )
    print("\nretries = waits of setup's one bounded propagation wait per step (auth.retry backoff 1, 2, 4, 8, 15 s)")
    if not args.wall:
        print("waited s is simulated: setup's sleeps advanced the emulator's clock (run with --wall to sleep)")


if __name__ == "__main__":
    main()
