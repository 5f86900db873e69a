"""``entraclaw audit``: print and filter the agent's audit trail (audit.jsonl in the state directory)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "audit", help="print the agent's tool calls from audit.jsonl (bodies appear as hash + length)"
    )
    p.add_argument("--tool", help="only this tool (e.g. send_teams_message)")
    p.add_argument(
        "--status",
        choices=("ok", "error", "refused", "declined", "cancelled", "timeout"),
        help="only calls that ended this way",
    )
    p.add_argument("--since", help="only records at or after this time: ISO 8601 or 30m / 2h / 1d")
    p.add_argument("--last", type=int, default=None, help="only the last N matching records")
    p.add_argument("--state-dir", type=Path, help="state directory (default ENTRACLAW_HOME or the platform's)")
    p.add_argument("--json", action="store_true", help="one JSON record per line, as stored")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from entraclaw.errors import ConfigurationError
    from entraclaw.mcp.audit import AuditFilter, AuditLog, format_record
    from entraclaw.mcp.tools import parse_since
    from entraclaw.platform import paths

    try:
        since = parse_since(args.since, "audit")
    except Exception as exc:  # parse_since raises AgentToolError naming the tool; say it as a CLI error
        raise ConfigurationError(
            f"--since {args.since!r} is neither an ISO 8601 time nor a relative time like 30m, 2h or 1d.",
            remedy="Run `entraclaw audit --since` with e.g. 2026-05-01T09:00:00Z or 2h.",
        ) from exc
    log = AuditLog(paths.audit_log_path(args.state_dir) if args.state_dir else None)
    records = log.read(AuditFilter(tool=args.tool, status=args.status, since=since, last=args.last))
    for record in records:
        print(json.dumps(record, ensure_ascii=False) if args.json else format_record(record))
    if not args.json:
        skipped = f"; {log.skipped} unreadable line(s) skipped" if log.skipped else ""
        print(f"{len(records)} record(s) from {log.path}{skipped}")
    return 0
