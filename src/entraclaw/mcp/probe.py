"""A scripted MCP client for ``entraclaw demo`` and the bench: start ``entraclaw-mcp`` over stdio with the
SDK's own client, and send + read a Teams message through it."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from entraclaw.errors import AgentToolError
from entraclaw.mcp.client_config import server_command

__all__ = ["TeamsRoundTrip", "teams_round_trip"]


@dataclass
class TeamsRoundTrip:
    chat_id: str = ""
    steps: list[tuple[str, str, float]] = field(default_factory=list)  # (tool, answer, seconds)
    server_start_seconds: float = 0.0


def teams_round_trip(env: Mapping[str, str], member: str, text: str, *, timeout: float = 120.0) -> TeamsRoundTrip:
    """create_chat with ``member``, send_teams_message ``text``, read_teams_messages; raises AgentToolError
    naming the tool that failed. ``env`` is the server's whole environment (ENTRACLAW_HOME at least)."""
    import anyio
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    command, args = server_command()
    params = StdioServerParameters(command=command, args=args, env=dict(env))
    result = TeamsRoundTrip()

    async def call(client: Any, tool: str, arguments: dict[str, Any]) -> str:
        began = time.perf_counter()
        answer = await client.call_tool(tool, arguments)
        seconds = time.perf_counter() - began
        body = "\n".join(getattr(c, "text", "") for c in answer.content)
        if answer.is_error:
            raise AgentToolError(f"MCP tool {tool} failed: {body}", remedy="Run `entraclaw doctor`.", tool=tool)
        result.steps.append((tool, body, seconds))
        return body

    async def main() -> None:
        began = time.perf_counter()
        with open(os.devnull, "w") as quiet, anyio.fail_after(timeout):
            async with stdio_client(params, errlog=quiet) as (read, write), ClientSession(read, write) as client:
                await client.initialize()
                result.server_start_seconds = time.perf_counter() - began
                created = await call(client, "create_chat", {"members": [member]})
                found = re.search(r"id=(\S+)", created)
                result.chat_id = found.group(1) if found else ""
                await call(client, "send_teams_message", {"chat_id": result.chat_id, "text": text})
                await call(client, "read_teams_messages", {"chat_id": result.chat_id, "limit": 5})

    anyio.run(main)
    return result
