"""``entraclaw-mcp`` (and ``entraclaw mcp``): the MCP server over stdio, on the official ``mcp`` SDK.

stdout belongs to the protocol: the SDK's stdio transport points fd 1 at stderr while it serves,
logging goes to stderr, and nothing here prints. A device that is not set up still gets a server:
``initialize`` succeeds, its instructions say what is missing, and every tool answers with the
reason and the fixing command as an MCP tool error, so the client shows it to its user instead of
a dead process.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any

from entraclaw import __version__

__all__ = ["INSTRUCTIONS", "build_server", "main"]

INSTRUCTIONS = (
    "entraclaw acts in Microsoft 365 as this device's Entra Agent User; every call is signed by a key that "
    "never leaves the machine. Teams: find_user, create_chat, list_chats, send_teams_message, "
    "read_teams_messages, list_chat_members, add_chat_member, wait_for_reply. Mail: send_email, read_email. "
    "whoami says who the agent is; audit_log shows the last calls. Some actions (a first message to people "
    "outside the tenant, mail to external domains, adding chat members) wait for a human yes."
)


def _instructions(rt: Any) -> str:
    if rt.startup_error is not None:
        return INSTRUCTIONS + f"\n\nNOT READY: {rt.startup_error}"
    return INSTRUCTIONS


def build_server(runtime: Any = None, *, instructions: str | None = None) -> Any:
    """The MCPServer with every tool registered over ``runtime`` (an AgentRuntime; a new one by default).

    ``instructions`` defaults to :data:`INSTRUCTIONS` plus the runtime's startup error, if any."""
    from mcp.server.mcpserver import MCPServer

    from entraclaw.mcp.runtime import AgentRuntime
    from entraclaw.mcp.tools import identity, mail, teams

    rt = runtime if runtime is not None else AgentRuntime()
    if instructions is None:
        instructions = _instructions(rt)
    server = MCPServer(name="entraclaw", instructions=instructions, version=__version__, log_level="WARNING")
    identity.register(server, rt)
    teams.register(server, rt)
    mail.register(server, rt)
    return server


def _preflight(rt: Any) -> None:
    """A quick look at the device config (no key, no network) so ``initialize`` can already say what is missing."""
    from entraclaw.config import USER_TOKEN_REQUIRED, load_config
    from entraclaw.errors import ConfigurationError

    try:
        load_config(required=USER_TOKEN_REQUIRED)
    except ConfigurationError as exc:
        rt.startup_error = ConfigurationError(
            f"entraclaw-mcp cannot act: this device is not set up as an Agent User ({exc.message})",
            remedy="Run `entraclaw setup` (with the admin sign-in options) on this device, then restart the MCP "
            "server; `entraclaw doctor` shows what is missing.",
        )


async def _serve_stdio(server: Any) -> None:
    """The SDK's stdio transport; on POSIX pipes with event-loop-native streams (entraclaw.mcp.transport)."""
    from mcp.server.stdio import stdio_server

    from entraclaw.mcp.transport import native_stdio

    async with native_stdio() as streams:
        if streams is None:
            await server.run_stdio_async()
            return
        lowlevel = server._lowlevel_server
        async with stdio_server(stdin=streams[0], stdout=streams[1]) as (read, write):
            await lowlevel.run(read, write, lowlevel.create_initialization_options())


def main(argv: Sequence[str] | None = None) -> int:
    """Serve MCP on stdin/stdout until the client closes the pipe."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("--version", "-V"):
        sys.stderr.write(f"entraclaw-mcp {__version__}\n")
        return 0
    if args:
        sys.stderr.write(
            f"entraclaw-mcp: unexpected arguments {args!r}. It takes none: an MCP client starts it and talks "
            "over stdin/stdout. Fix: `entraclaw mcp-config --client all` writes the client entries.\n"
        )
        return 2
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="entraclaw-mcp: %(levelname)s %(message)s")
    from entraclaw.mcp.runtime import AgentRuntime

    rt = AgentRuntime()
    _preflight(rt)
    instructions = _instructions(rt)  # what the preflight found, before the warm-up can change it
    if rt.startup_error is None:
        # Config, key and the first token on a side thread, started before the SDK is imported: the
        # three hops' network waits (Entra's side of each hop) overlap the SDK's import, which is most
        # of a cold start (bench/bench_mcp.py prints both).
        threading.Thread(target=rt.prepare, name="entraclaw-mcp-warmup", daemon=True).start()
    server = build_server(rt, instructions=instructions)
    try:
        import anyio

        anyio.run(_serve_stdio, server)
    except KeyboardInterrupt:
        return 130
    finally:
        if rt.credential is not None:
            rt.credential.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
