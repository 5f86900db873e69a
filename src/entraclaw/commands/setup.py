"""``entraclaw setup``: Blueprint, key, certificate, Agent Identity, Agent User, consent, config, smoke test."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from entraclaw.provisioning.cli_support import add_admin_args, add_endpoint_args

    p: argparse.ArgumentParser = sub.add_parser(
        "setup",
        help="provision this device's Agent User (idempotent, resumable; --dry-run prints the plan)",
        description=(
            "Creates or finds the Blueprint and its principal, makes this device's key (TPM first on Windows, "
            "the OS keystore elsewhere), registers its certificate, creates the Agent Identity, the Agent User "
            "and consent, writes the device config and runs Hops 1-3 and /me. Re-running makes no Graph writes; "
            "an interrupted run resumes from its journal."
        ),
    )
    add_endpoint_args(p)
    add_admin_args(p, required=True)
    g = p.add_argument_group("what to create")
    g.add_argument(
        "--blueprint-name",
        default="entraclaw Agent Blueprint",
        help="Blueprint displayName to find or create (default: %(default)s)",
    )
    g.add_argument("--blueprint-app-id", help="use this existing Blueprint")
    g.add_argument(
        "--agent-identity-name",
        default="entraclaw Agent Identity",
        help="Agent Identity displayName to find or create (default: %(default)s)",
    )
    g.add_argument("--upn", help="Agent User UPN (default: entraclaw-agent@<default verified domain>)")
    g.add_argument("--scope", action="append", help="delegated Graph scope to consent (default User.Read); repeat")
    g.add_argument(
        "--sponsor",
        action="append",
        default=[],
        help="user UPN or object id sponsoring the Blueprint and Agent Identity; repeat (default: the "
        "signed-in admin; required with an app-only sign-in)",
    )
    g.add_argument(
        "--key-storage",
        choices=("auto", "cng", "keystore", "file", "tpm"),
        default="auto",
        help="auto: TPM/CNG on Windows; on Linux the TPM if usable, else the Secret Service; tpm: Linux TPM "
        "(ENTRACLAW_TPM2_TCTI, default device:/dev/tpmrm0); file: an owner-only PEM in the state dir",
    )
    g.add_argument(
        "--require-tpm",
        action="store_true",
        default=None,
        help="the key must be in the TPM: a software-KSP fallback becomes an error naming the reason "
        "(also ENTRACLAW_REQUIRE_TPM=1)",
    )
    g.add_argument(
        "--machine",
        action="store_true",
        help="Windows: the key in LocalMachine\\My for an agent run by a service, scheduled task or gMSA; "
        "only --account may use it (run elevated; needs --state-dir)",
    )
    g.add_argument(
        "--account",
        help="with --machine: the account the agent runs as (DOMAIN\\user, a gMSA DOMAIN\\name$, "
        "NT SERVICE\\name, LocalSystem, LocalService, NetworkService)",
    )
    g.add_argument(
        "--patch-key-credentials",
        action="store_true",
        help="when other devices' certificates exist and this device has no registered key, append with PATCH",
    )
    p.add_argument("--state-dir", type=Path, help="state directory (default ENTRACLAW_HOME or the platform's)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; no writes")
    p.add_argument("--rollback", action="store_true", help="delete what an unfinished setup of this device created")
    p.add_argument("--force", action="store_true", help="with --rollback: also roll back a completed setup")
    p.add_argument("--no-smoke-test", action="store_true", help="skip Hops 1-3 and /me at the end")
    p.add_argument("--propagation-timeout", type=float, default=180.0, help="seconds to wait for new objects")
    p.add_argument("--json", action="store_true", help="print the plan/result as JSON at the end")
    p.add_argument(
        "--mcp-config",
        choices=("claude", "vscode", "copilot", "all", "none"),
        default=None,
        help="last step: write this install's entraclaw-mcp into that MCP client's config (default: only suggest it)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from entraclaw.provisioning.cli_support import admin_auth, endpoints_from_args, graph_client
    from entraclaw.provisioning.setup import Setup, SetupOptions
    from entraclaw.provisioning.state import read_device_config, resolve_state_dir, unfinished_setup_endpoints

    echo = (lambda _line: None) if args.json else print
    if args.machine or args.account:
        from entraclaw.errors import ConfigurationError
        from entraclaw.provisioning.machine_steps import require_explicit_state_dir

        if not (args.machine and args.account):
            raise ConfigurationError(
                "--machine and --account go together: the machine key is made for one account.",
                remedy="Run `entraclaw setup --machine --account <account> --state-dir <dir>` from an elevated prompt.",
            )
        # Here, before the directory is resolved; the account and the key storage are checked by Setup.run.
        require_explicit_state_dir(args.state_dir)
    state_dir = resolve_state_dir(args.state_dir)
    config = {**unfinished_setup_endpoints(state_dir), **read_device_config(state_dir / ".env")}
    endpoints = endpoints_from_args(args, config)
    graph = graph_client(endpoints, admin_auth(args, endpoints))
    options = SetupOptions(
        endpoints=endpoints,
        blueprint_name=args.blueprint_name,
        blueprint_app_id=args.blueprint_app_id,
        agent_identity_name=args.agent_identity_name,
        agent_user_upn=args.upn,
        scopes=tuple(args.scope or ("User.Read",)),
        key_storage=args.key_storage,
        patch_key_credentials=args.patch_key_credentials,
        sponsor_ids=tuple(args.sponsor),
        smoke_test=not args.no_smoke_test,
        state_dir=state_dir,
        propagation_timeout=args.propagation_timeout,
        require_tpm=args.require_tpm,
        machine_account=args.account if args.machine else None,
    )
    setup = Setup(options, graph, echo=echo)
    if args.rollback:
        plan = setup.rollback(dry_run=args.dry_run, force=args.force)
        if args.json:
            print(json.dumps({"rollback": [vars(s) for s in plan], "dry_run": args.dry_run}, indent=2))
        return 0
    result = setup.run(dry_run=args.dry_run)
    if args.json:
        document = {
            "completed": result.completed,
            "dry_run": args.dry_run,
            "plan": [vars(s) for s in result.plan],
            "graph_requests": result.graph_requests,
            "graph_writes": result.graph_writes,
            "warnings": result.warnings,
            "waits": result.waits,
            "config": {k: v for k, v in result.config.items()},
        }
        print(json.dumps(document, indent=2))
    elif args.dry_run:
        print(f"dry run: {result.graph_requests} Graph read(s), no writes")
    else:
        print(f"OK: setup complete ({result.graph_writes} Graph write(s), {result.graph_requests} request(s)); "
              f"config in {state_dir / '.env'}")
        _offer_mcp_config(args)
    if result.waits and not args.json:
        print("propagation waits: " + ", ".join(f"{step} {n}" for step, n in result.waits.items()))
    return 0


def _offer_mcp_config(args: argparse.Namespace) -> None:
    """The last step: connect an MCP client to the agent (done with --mcp-config, else suggested)."""
    if args.mcp_config == "none":
        return
    if args.mcp_config is None:
        print("Next: connect an MCP client to the agent: `entraclaw mcp-config --client all` "
              "(Claude Code .mcp.json, VS Code .vscode/mcp.json, Copilot CLI ~/.copilot/mcp-config.json).")
        return
    import argparse as _argparse

    from entraclaw.commands.mcp import run_config

    run_config(_argparse.Namespace(client=args.mcp_config, project_dir=None, dry_run=False, state_dir=args.state_dir))
