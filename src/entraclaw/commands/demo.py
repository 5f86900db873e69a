"""``entraclaw demo``: the three-hop Agent User flow against the built-in emulator, traced step by step."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from entraclaw.errors import EntraclawError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="become an Entra Agent User against the local emulator (no tenant, no network) and trace each hop",
        description=(
            "Starts the local Entra + Graph emulator and runs `entraclaw setup` against it as its admin, through "
            "the same code a real tenant gets: Blueprint and principal, a fresh key (CNG on Windows, PEM "
            "elsewhere) and its certificate, Agent Identity, Agent User and consent, all over Graph. Then Hops 1-3 "
            "through MSAL and Graph /me as the Agent User. Tokens are described by their claims; none is printed."
        ),
    )
    p.add_argument("--algorithm", choices=("RS256", "PS256"), default="RS256", help="client assertion algorithm")
    p.add_argument("--json", action="store_true", help="print the trace as one JSON document")
    p.add_argument(
        "--upn",
        nargs="?",
        const="",
        default=None,
        metavar="UPN",
        help="name the Agent User by UPN in Hop 3 (username=) instead of object id; optionally give the UPN "
        "(a verified domain of the emulator tenant; default entraclaw-agent@<its default domain>)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from entraclaw.demo import DemoTrace, run_demo

    as_json: bool = args.json
    trace = DemoTrace(echo=None if as_json else print)
    try:
        run_demo(trace, algorithm=args.algorithm, upn=args.upn)
    except EntraclawError as exc:
        failed_at = len(trace.steps) + 1
        if as_json:
            document = {
                "ok": False,
                "steps": trace.steps,
                "error": {"type": type(exc).__name__, "message": exc.message, "remedy": exc.remedy, "step": failed_at},
            }
            print(json.dumps(document, indent=2, default=str))
        else:
            print(f"[{failed_at}] FAILED: {type(exc).__name__}", file=sys.stderr)
            print(f"entraclaw: error: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"ok": True, "steps": trace.steps}, indent=2, default=str))
    else:
        print("OK: the agent acted as its Entra Agent User; no token was printed.")
    return 0
