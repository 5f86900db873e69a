"""Setup time and Graph bytes per device as the devices on one Blueprint grow toward the limit.

Devices are set up one after another on one Blueprint against the in-process emulator: the first
creates it and registers by PATCH; every later device has no registered key, so it appends its
certificate with ``--patch-key-credentials`` (read the list, PATCH the whole list, read it back,
read again after the settle time; fleet.py). Every certificate in the list travels in each read and
PATCH, so a device's Graph bytes grow with the devices before it. The emulator's limit is set to
``--limit`` (Entra: about 600 certificates) and setup's guard to the same, so the last device is
refused cleanly. Prints, at device counts 1, 2, 4, ..., the setup wall time and the Graph body
bytes (requests + answers) of that device, with ratios against the first device.

``fleet_settle`` is 0 here (the settle read still happens): the table measures work, not the 2 s
pause a device makes on a shared Blueprint. Smoke tests are off (token traffic is not Graph).

Run: python bench/bench_fleet_limits.py [--limit 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from _admin import admin_graph
from entraclaw.emulator import Emulator
from entraclaw.emulator.graph.app_limits import AppLimits
from entraclaw.errors import ConfigurationError
from entraclaw.provisioning.context import Endpoints
from entraclaw.provisioning.setup import Setup, SetupOptions


class ByteCount:
    def __init__(self) -> None:
        self.total = 0

    def __call__(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        body = response.request.body or b""
        self.total += len(body if isinstance(body, bytes) else body.encode()) + len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=64, help="certificates per Blueprint (emulator and setup)")
    args = parser.parse_args()
    rows: list[tuple[int, float, int, int]] = []
    refused = ""
    with Emulator() as emu, tempfile.TemporaryDirectory() as root:
        emu.graph_service.app_limits = AppLimits(max_key_credentials=args.limit)
        endpoints = Endpoints(emu.tenant_id, emu.base_url, emu.graph_url, emu.ca_bundle_path)
        domain = emu.tenant.default_domain
        checkpoints = {1 << i for i in range(16)}
        for n in range(1, args.limit + 2):
            counter = ByteCount()
            options = SetupOptions(
                endpoints=endpoints,
                key_storage="file",
                state_dir=Path(root) / f"device-{n}",
                sponsor_ids=(emu.admin.user_id,),
                agent_identity_name=f"device {n}",
                agent_user_upn=f"device{n}@{domain}",
                patch_key_credentials=n > 1,
                smoke_test=False,
                fleet_settle=0.0,
                max_key_credentials=args.limit,
            )
            graph = admin_graph(emu, endpoints, on_response=counter)
            started = time.perf_counter()
            try:
                Setup(options, graph, echo=lambda _line: None).run()
            except ConfigurationError as exc:
                refused = f"device {n}: refused before any certificate write: {exc.message[:110]}..."
                break
            elapsed = time.perf_counter() - started
            if n in checkpoints or n == args.limit:
                rows.append((n, elapsed, counter.total, graph.requests_made))
    first_time, first_bytes = rows[0][1], rows[0][2]
    print(f"| device # on the Blueprint (limit {args.limit}) | setup s (x first) | Graph bytes (x first) | requests |")
    print("|---|---|---|---|")
    for n, elapsed, total, count in rows:
        print(f"| {n} | {elapsed:.3f} ({elapsed / first_time:.2f}) | {total} ({total / first_bytes:.2f}) | {count} |")
    if refused:
        print(f"\n{refused}")


if __name__ == "__main__":
    main()
