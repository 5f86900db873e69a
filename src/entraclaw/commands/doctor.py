"""``entraclaw doctor``: check key, certificate, registration, clock, stale certificates, Hops 1-3, consent."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from entraclaw.provisioning.cli_support import add_admin_args, add_endpoint_args

    p: argparse.ArgumentParser = sub.add_parser(
        "doctor",
        help="check this device's setup; exit 0 healthy, 1 unhealthy, 2 could not check",
        description=(
            "Checks the key (present, provider, non-exportable), the certificate (validity, days to expiry, "
            "registered on the Blueprint), clock skew against the token endpoint, stale entraclaw certificates, "
            "Hops 1-3 and /me, and consent. Exit code 0 healthy, 1 unhealthy, 2 could not check."
        ),
    )
    add_endpoint_args(p)
    add_admin_args(p, required=False)
    p.add_argument("--clean-stale", action="store_true", help="remove entraclaw certificates/keys not registered")
    p.add_argument(
        "--prune-expired",
        action="store_true",
        help="with an admin sign-in: remove the Blueprint's expired certificates (retired devices'), keeping every "
        "valid one",
    )
    p.add_argument("--no-smoke-test", action="store_true", help="skip Hops 1-3 and /me")
    p.add_argument("--state-dir", type=Path, help="state directory (default ENTRACLAW_HOME or the platform's)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from entraclaw.errors import EntraclawError
    from entraclaw.provisioning.cli_support import admin_auth, admin_given, endpoints_from_args, graph_client
    from entraclaw.provisioning.doctor import DoctorReport, run_doctor
    from entraclaw.provisioning.state import read_device_config, resolve_state_dir

    state_dir = resolve_state_dir(args.state_dir)
    admin = None
    try:
        if admin_given(args):
            config = read_device_config(state_dir / ".env")
            endpoints = endpoints_from_args(args, config)
            admin = graph_client(endpoints, admin_auth(args, endpoints))
        report = run_doctor(
            state_dir=state_dir,
            admin_graph=admin,
            clean_stale=args.clean_stale,
            prune_expired=args.prune_expired,
            smoke=not args.no_smoke_test,
        )
    except EntraclawError as exc:
        report = DoctorReport()
        report.add("doctor", "unknown", exc.message, exc.remedy)
    from entraclaw.mcp.client_config import check_recorded

    for client, ok, detail in check_recorded(state_dir):
        report.add(f"MCP config ({client})", "ok" if ok else "fail", detail,
                   "" if ok else "Run `entraclaw mcp-config --client` for that client to point it at this install.")
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.text())
    return report.exit_code
