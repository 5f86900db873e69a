"""Graph requests of provisioning against the minimum each operation needs.

Counts the admin's Graph requests (by method) of three runs against the
in-process emulator, and the token-endpoint requests the emulator saw:

1. a fresh ``setup`` on an empty tenant;
2. the same ``setup`` again on the configured device (idempotent: no writes);
3. a forced ``rotate``.

The baseline is the floor for each operation, stated below; the table shows
each run next to it. Floors (why):

- fresh setup: 6 writes (Blueprint, principal, certificate PATCH, Agent
  Identity, Agent User, consent grant) + 4 reads: the Blueprint lookup by name
  (without it a re-run would make a second Blueprint), the tenant's app
  management policy (the certificate's allowed lifetime), the default domain (for
  the UPN) and Microsoft Graph's service principal id (for the grant) = 10.
  Lookups under an object this process just created are skipped: nothing can
  hang below it yet. The sponsor is passed as an object id (a UPN costs 1 read).
- re-run: 0 writes; 7 reads to confirm each object (Blueprint, principal,
  keyCredentials, Agent Identity, Agent User, Graph's principal, grants) = 7.
- rotate (admin): addKey + removeKey = 2 writes, + 1 read of the key list (is the
  new one there, is the old one valid, which keyIds) + 1 read of the app
  management policy (the new certificate's allowed lifetime) = 4.
- rotate as the Blueprint itself (``--as-blueprint``): it may roll its keys but not
  read them; keyIds derived from the certificates name the old one = 2.

Run: python bench/bench_provisioning.py
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from _admin import admin_graph
from entraclaw.emulator import Emulator
from entraclaw.provisioning.auth import ClientCertificateAuth
from entraclaw.provisioning.context import Endpoints
from entraclaw.provisioning.graph import WRITE_METHODS, GraphClient
from entraclaw.provisioning.rotate import Rotate
from entraclaw.provisioning.setup import Setup, SetupOptions

FLOORS = {"fresh setup": (10, 6), "re-run setup": (7, 0), "rotate --force": (4, 2), "rotate as BP": (2, 2)}


def main() -> None:
    rows: list[tuple[str, Counter[str], int]] = []
    with Emulator() as emu, tempfile.TemporaryDirectory() as home:
        endpoints = Endpoints(emu.tenant_id, emu.base_url, emu.graph_url, emu.ca_bundle_path)
        options = SetupOptions(
            endpoints=endpoints, key_storage="file", state_dir=Path(home), sponsor_ids=(emu.admin.user_id,)
        )
        for name in ("fresh setup", "re-run setup"):
            graph = admin_graph(emu, endpoints)
            before = emu.stats.count()
            Setup(options, graph, echo=lambda _line: None).run()
            rows.append((name, Counter(graph.counts), emu.stats.count() - before))
        graph = admin_graph(emu, endpoints)
        before = emu.stats.count()
        Rotate(graph, state_dir=Path(home), force=True, echo=lambda _line: None).run()
        rows.append(("rotate --force", Counter(graph.counts), emu.stats.count() - before))
        from entraclaw.provisioning.keys import open_device_key
        from entraclaw.provisioning.state import read_device_config

        config = read_device_config(Path(home) / ".env", environ={})
        current = open_device_key(config["ENTRACLAW_KEY_REF"])
        as_blueprint = GraphClient(
            endpoints.graph_url,
            ClientCertificateAuth(
                authority=endpoints.authority,
                client_id=config["ENTRACLAW_BLUEPRINT_APP_ID"],
                signer=current.signer,
                session=endpoints.session(),
            ),
            session=endpoints.session(),
        )
        before = emu.stats.count()
        Rotate(as_blueprint, state_dir=Path(home), force=True, echo=lambda _line: None, read_key_list=False).run()
        rows.append(("rotate as BP", Counter(as_blueprint.counts), emu.stats.count() - before))

    header = (
        f"{'run':<16}{'GET':>5}{'POST':>6}{'PATCH':>7}{'DELETE':>8}{'total':>7}{'writes':>8}"
        f"{'floor':>7}{'floor w':>9}{'x floor':>9}{'token reqs':>12}"
    )
    print(header)
    print("-" * len(header))
    for name, counts, token_requests in rows:
        total = sum(n for k, n in counts.items() if k != "retries")
        writes = sum(counts[m] for m in WRITE_METHODS)
        floor, floor_writes = FLOORS[name]
        print(
            f"{name:<16}{counts['GET']:>5}{counts['POST']:>6}{counts['PATCH']:>7}{counts['DELETE']:>8}"
            f"{total:>7}{writes:>8}{floor:>7}{floor_writes:>9}{total / floor:>9.2f}{token_requests:>12}"
        )
    print(
        "\ntoken reqs: requests the emulator's token endpoint served during the run (admin token, and the smoke "
        "test's Hops 1-3 / rotate's Hop 1 proof)."
    )


if __name__ == "__main__":
    main()
