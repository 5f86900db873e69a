"""``entraclaw schedule install|status|remove|run``: the daily job that rotates the key before it expires."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "schedule",
        help="a daily job (systemd user timer / Task Scheduler / launchd) that runs rotate inside the expiry window",
        description=(
            "Installs a daily job, as this account, that runs `entraclaw rotate` signed in as the Blueprint itself "
            "when the certificate is within --days of expiry, resumes an interrupted rotation, and appends to "
            "<state dir>/logs/rotate.log. A missed day runs when the machine is back."
        ),
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="{install,status,remove,run}")
    for verb, text in (
        ("install", "write the job and enable it (idempotent)"),
        ("status", "show whether the job is installed and its last log line"),
        ("remove", "disable and delete the job"),
        ("run", "what the job runs once a day (rotate inside the window, logged)"),
    ):
        v = verbs.add_parser(verb, help=text, description=text)
        v.add_argument("--state-dir", type=Path, help="state directory (default ENTRACLAW_HOME or the platform's)")
        if verb in ("install", "run"):
            v.add_argument("--days", type=int, default=30, help="rotate when the certificate expires within N days")
        if verb == "install":
            v.add_argument(
                "--no-activate", action="store_true", help="only write the job files; do not enable them"
            )
            v.add_argument(
                "--account",
                help="Windows, with `setup --machine`: run the task as this account (NetworkService, LocalSystem, "
                "a gMSA DOMAIN\\name$, DOMAIN\\user) instead of this one; run elevated",
            )
        v.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from entraclaw.provisioning.state import resolve_state_dir
    from entraclaw.schedule import JobSpec, run_job
    from entraclaw.schedule.install import install, remove, status

    state_dir = resolve_state_dir(args.state_dir).absolute()
    if args.verb == "run":
        return run_job(state_dir, days=args.days)
    spec = JobSpec(state_dir, days=getattr(args, "days", 30))
    if args.verb == "install":
        result = install(spec, activate=not args.no_activate, account=args.account)
    elif args.verb == "remove":
        result = remove(spec)
    else:
        result = status(spec)
    print(f"{result.scheduler}: {result.name} {'installed' if result.installed else 'not installed'} ({result.active})")
    for path in result.files:
        print(f"  {path}")
    for note in result.notes:
        print(f"  {note}")
    return 0 if (result.installed or args.verb == "remove") else 1
