"""``entraclaw mcp`` (the ``entraclaw-mcp`` server) and ``entraclaw mcp-config`` (the MCP client entries)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "mcp",
        help="serve MCP on stdin/stdout: the agent's tools, acting as this device's Agent User",
        description="The same server as the entraclaw-mcp console script; an MCP client starts it.",
    )
    p.set_defaults(handler=lambda args: _serve())
    c: argparse.ArgumentParser = sub.add_parser(
        "mcp-config",
        help="write or merge this install's entraclaw-mcp into Claude Code, VS Code and Copilot CLI configs",
        description=(
            "Claude Code: <project>/.mcp.json; VS Code: <project>/.vscode/mcp.json; Copilot CLI: "
            "$COPILOT_HOME/mcp-config.json (default ~/.copilot). Other servers and comments are kept, the old "
            "file is saved as .bak, the write is atomic."
        ),
    )
    c.add_argument(
        "--client", choices=("claude", "vscode", "copilot", "all"), default="all", help="which client(s) (default: all)"
    )
    c.add_argument("--project-dir", type=Path, default=None, help="project folder for .mcp.json / .vscode (default: .)")
    c.add_argument("--dry-run", action="store_true", help="print what would be written; write nothing")
    c.set_defaults(handler=run_config)


def _serve() -> int:
    from entraclaw.mcp.server import main

    return main([])


def run_config(args: argparse.Namespace) -> int:
    from entraclaw.mcp.client_config import plan_change, server_command, targets, write_change
    from entraclaw.platform import paths

    command, cmd_args = server_command()
    env = {}
    home = str(getattr(args, "state_dir", None) or "") or os.environ.get(paths.ENV_HOME, "").strip()
    if home:
        # The client starts the server with its own environment: carry the state directory over.
        env[paths.ENV_HOME] = str(Path(home).expanduser().absolute())
    for target in targets(args.client, project_dir=args.project_dir):
        change = plan_change(target, command, cmd_args, env)
        if args.dry_run:
            print(f"{target.client}: would {change.action} {target.path}")
            if change.action != "unchanged":
                print(change.new_text.rstrip())
            continue
        backup = write_change(change, home=home or None)
        saved = f" (previous saved as {backup})" if backup else ""
        print(f"{target.client}: {change.action} {target.path}{saved}")
    print(f"server command: {command}{' ' + ' '.join(cmd_args) if cmd_args else ''}")
    return 0
