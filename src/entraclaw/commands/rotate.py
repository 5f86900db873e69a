"""``entraclaw rotate``: new key, addKey, prove with Hop 1, switch config, removeKey old, delete old key."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from entraclaw.provisioning.cli_support import add_admin_args, add_endpoint_args

    p: argparse.ArgumentParser = sub.add_parser(
        "rotate",
        help="rotate this device's Blueprint key when it nears expiry (never strands the device)",
        description=(
            "Makes a new key and certificate, registers it with addKey (proof signed by the old key), proves it "
            "with a real Hop 1, switches the config, removes the old certificate with removeKey (proof signed "
            "by the new key) and deletes the old key. An interrupted run resumes from its journal."
        ),
    )
    add_endpoint_args(p)
    add_admin_args(p, required=False)
    p.add_argument(
        "--as-blueprint",
        action="store_true",
        help="call Graph as the Blueprint itself with its current key (an app may roll its own keys)",
    )
    p.add_argument("--days", type=int, default=30, help="rotate when the certificate expires within N days")
    p.add_argument("--force", action="store_true", help="rotate now whatever the expiry")
    p.add_argument("--dry-run", action="store_true", help="say what would happen; no writes")
    p.add_argument("--state-dir", type=Path, help="state directory (default ENTRACLAW_HOME or the platform's)")
    p.add_argument(
        "--propagation-timeout", type=float, default=180.0, help="seconds to wait for the new key to be usable"
    )
    p.add_argument("--json", action="store_true", help="print the plan/result as JSON at the end")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from entraclaw.errors import ConfigurationError
    from entraclaw.provisioning.auth import ClientCertificateAuth, GraphAuth
    from entraclaw.provisioning.cli_support import admin_auth, admin_given, endpoints_from_args, graph_client
    from entraclaw.provisioning.keys import open_device_key
    from entraclaw.provisioning.rotate import Rotate, require_config
    from entraclaw.provisioning.state import read_device_config, resolve_state_dir

    echo = (lambda _line: None) if args.json else print
    state_dir = resolve_state_dir(args.state_dir)
    config = read_device_config(state_dir / ".env")
    require_config(config, state_dir / ".env")
    endpoints = endpoints_from_args(args, config)
    auth: GraphAuth
    if args.as_blueprint:
        current = open_device_key(config["ENTRACLAW_KEY_REF"])
        blueprint = config["ENTRACLAW_BLUEPRINT_APP_ID"]
        auth = ClientCertificateAuth(
            authority=endpoints.authority,
            client_id=blueprint,
            signer=current.signer,
            session=endpoints.session(),
            who=f"The Blueprint {blueprint} (--as-blueprint, with this device's key {current.sha1})",
            credential_remedy="The Blueprint no longer accepts this device's key: run `entraclaw doctor` to see "
            "why, then rotate with an admin sign-in instead (`entraclaw rotate --device-code`).",
        )
    elif admin_given(args):
        auth = admin_auth(args, endpoints)
    else:
        raise ConfigurationError(
            "rotate needs a Graph identity for addKey/removeKey.",
            remedy="Pass --as-blueprint (the Blueprint rolls its own key) or an admin sign-in such as --device-code.",
        )
    rotation = Rotate(
        graph_client(endpoints, auth),
        state_dir=state_dir,
        days_before_expiry=args.days,
        force=args.force,
        echo=echo,
        propagation_timeout=args.propagation_timeout,
        read_key_list=not args.as_blueprint,
    )
    result = rotation.run(dry_run=args.dry_run)
    if not args.dry_run:
        from entraclaw.mcp.client_config import refresh_recorded

        # A redeploy may have moved the venv: MCP clients must start the server where it is now.
        for change in refresh_recorded(state_dir):
            echo(f"MCP client config refreshed: {change.target.client} {change.target.path}")
    if args.json:
        print(
            json.dumps(
                {
                    "rotated": result.rotated,
                    "old_sha1": result.old_sha1,
                    "new_sha1": result.new_sha1,
                    "days_left": result.days_left,
                    "plan": [vars(s) for s in result.plan],
                    "graph_requests": result.graph_requests,
                    "graph_writes": result.graph_writes,
                },
                indent=2,
            )
        )
    elif result.rotated:
        print(f"OK: rotated {result.old_sha1} -> {result.new_sha1}")
    return 0
