"""``entraclaw conformance``: run the conformance scenario and write (or check) a sanitized transcript."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from entraclaw.provisioning.cli_support import add_admin_args, add_endpoint_args

    p: argparse.ArgumentParser = sub.add_parser(
        "conformance",
        help="record how a tenant answers the provisioning and token flow (sanitized: no ids, names or tokens)",
        description=(
            "Runs the provisioning and token flow and its documented failures against the tenant, in a throwaway "
            "Blueprint deleted at the end (--read-only: lookups and refusals only, no writes), and writes a "
            "sanitized transcript: method, path shape, status, error code, JSON shape. Put the file in "
            "tests/fidelity/transcripts/ and the replay suite holds the emulator to it."
        ),
    )
    add_endpoint_args(p)
    add_admin_args(p, required=True)
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--record", type=Path, metavar="FILE", help="write the transcript here")
    action.add_argument("--compare", type=Path, metavar="FILE", help="run again and list differences to FILE")
    p.add_argument("--read-only", action="store_true", help="no writes: lookups and refusals only")
    p.add_argument("--sponsor", action="append", default=[], help="sponsor UPN or object id (full run); repeat")
    p.add_argument("--kind", default="tenant", choices=("tenant", "emulator"), help="what the target is (recorded)")
    p.add_argument("--propagation-timeout", type=float, default=180.0, help="seconds to wait for new objects")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from entraclaw.conformance.runner import record
    from entraclaw.conformance.transcript import Transcript, compare
    from entraclaw.provisioning.cli_support import admin_auth, endpoints_from_args

    endpoints = endpoints_from_args(args, {})
    auth = admin_auth(args, endpoints)
    scenario = "read-only" if args.read_only else "full"
    transcript, waits = record(
        endpoints, auth, scenario, sponsors=args.sponsor, kind=args.kind, propagation_timeout=args.propagation_timeout
    )
    for step, count in waits.items():
        print(f"waited for propagation: {step} ({count} retr{'y' if count == 1 else 'ies'})")
    if args.record is not None:
        transcript.save(args.record)
        print(f"OK: {len(transcript.entries)} exchange(s) of scenario {scenario} written to {args.record}")
        return 0
    differences = compare(Transcript.load(args.compare), transcript)
    for line in differences:
        print(f"differs: {line}")
    print(f"{len(differences)} difference(s) from {args.compare}")
    return 1 if differences else 0
