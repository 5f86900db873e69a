"""entraclaw-mcp: what the agent layer costs over the Graph request it makes, and how long a cold start takes.

One run, one table:

- warm tool call: the MCP SDK's stdio client calls a tool of an already-started ``entraclaw-mcp``
  (token warm) N times; the baseline is the bare Graph request that tool makes (same URL and
  query, a warm T3, a keep-alive ``requests`` session) from this process, N times. Goal: the
  median tool call <= 1.10 x the median bare request.
- cold start: from spawning ``entraclaw-mcp`` to the first tool result (imports, ``initialize``,
  config, key, the three hops, the Graph call), median of a few starts. Goal: <= 1.5 s.

The emulator runs in this process (HTTPS on loopback); the device is provisioned by the same
``Setup`` as ``entraclaw demo``. The MCP ping round trip is printed too: the SDK's own stdio cost
under any tool call, and the
server's CPU seconds per cold start (user + sys, to its exit), which a loaded machine does not inflate.
POSIX only (resource). Run: python bench/bench_mcp.py [--calls N] [--starts K]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from typing import Any

import anyio

from entraclaw.auth.credential import AgentUserCredential
from entraclaw.config import load_config, make_session
from entraclaw.demo import DemoTrace, provision_emulator_tenant
from entraclaw.emulator import Emulator
from entraclaw.mcp.client_config import server_command

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


def _env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env["ENTRACLAW_HOME"] = home
    return env


async def _session(env: dict[str, str], work: Any) -> Any:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    command, args = server_command()
    params = StdioServerParameters(command=command, args=args, env=env)
    with open(os.devnull, "w") as quiet:
        async with stdio_client(params, errlog=quiet) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            return await work(client)


def _timed_calls(env: dict[str, str], tool: str, arguments: dict[str, Any], n: int) -> list[float]:
    async def work(client: Any) -> list[float]:
        first = await client.call_tool(tool, arguments)  # warm: token, scope check, Graph connection
        assert not first.is_error, first.content
        times = []
        for _ in range(n):
            began = time.perf_counter()
            result = await client.call_tool(tool, arguments)
            times.append(time.perf_counter() - began)
            assert not result.is_error
        return times

    return anyio.run(_session, env, work)


def _ping(env: dict[str, str], n: int) -> list[float]:
    """MCP ping round trips: the SDK transport's own floor under any tool call."""

    async def work(client: Any) -> list[float]:
        await client.send_ping()
        times = []
        for _ in range(n):
            began = time.perf_counter()
            await client.send_ping()
            times.append(time.perf_counter() - began)
        return times

    return anyio.run(_session, env, work)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cold_start(env: dict[str, str], tool: str, arguments: dict[str, Any]) -> tuple[float, float, float]:
    """(seconds to initialize, seconds to the first tool result, both from the spawn; the server's CPU seconds)."""
    marks: dict[str, float] = {}
    cpu_before = _children_cpu()

    async def work(client: Any) -> None:
        marks["init"] = time.perf_counter()
        result = await client.call_tool(tool, arguments)
        marks["result"] = time.perf_counter()
        assert not result.is_error, result.content

    began = time.perf_counter()
    anyio.run(_session, env, work)
    return marks["init"] - began, marks["result"] - began, _children_cpu() - cpu_before


def _bare(session: Any, token: str, url: str, params: dict[str, str], n: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    session.get(url, headers=headers, params=params, timeout=30).raise_for_status()  # connection warm
    times = []
    for _ in range(n):
        began = time.perf_counter()
        response = session.get(url, headers=headers, params=params, timeout=30)
        response.json()
        times.append(time.perf_counter() - began)
        response.raise_for_status()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()

    with Emulator() as emu:
        demo = provision_emulator_tenant(emu, DemoTrace())
        try:
            assert demo.home is not None
            home = str(demo.home)
            env = _env(home)
            colleague = emu.people.colleague.upn
            config = load_config(env_file=demo.home / ".env", environ={})
            credential = AgentUserCredential.from_config(config, session=make_session(config))
            token = credential.get_token(GRAPH_DEFAULT).token
            session = make_session(config)

            # A chat with two messages so read_teams_messages has something to read.
            async def seed(client: Any) -> str:
                created = await client.call_tool("create_chat", {"members": [colleague]})
                text = created.content[0].text
                chat_id = text.split("id=", 1)[1].split()[0]
                for i in range(2):
                    await client.call_tool("send_teams_message", {"chat_id": chat_id, "text": f"bench {i}"})
                return chat_id

            chat_id = anyio.run(_session, env, seed)
            cases = [
                ("list_chats", {"limit": 20}, f"{emu.graph_url}/me/chats", {"$top": "20"}),
                ("read_teams_messages", {"chat_id": chat_id, "limit": 20},
                 f"{emu.graph_url}/chats/{chat_id}/messages",
                 {"$top": "20", "$orderby": "lastModifiedDateTime desc"}),
            ]
            rows = []
            ping = statistics.median(_ping(env, args.calls))
            rows.append(("MCP ping round trip (SDK stdio, no tool)", ping * 1000, None, None, "(floor)"))
            for tool, arguments, url, params in cases:
                bare = statistics.median(_bare(session, token, url, params, args.calls))
                warm = statistics.median(_timed_calls(env, tool, arguments, args.calls))
                rows.append((f"warm {tool} vs bare GET", warm * 1000, bare * 1000, warm / bare, "<= 1.10x"))
            starts = [_cold_start(env, "list_chats", {"limit": 20}) for _ in range(args.starts)]
            init = statistics.median(s[0] for s in starts)
            first = statistics.median(s[1] for s in starts)
            rows.append(("cold start: spawn -> initialize", init * 1000, None, None, ""))
            rows.append(("cold start: spawn -> first tool result", first * 1000, None, None, "<= 1500 ms"))
            cpu = statistics.median(s[2] for s in starts)
            rows.append(("cold start: server CPU (user+sys) to exit", cpu * 1000, None, None, "(load-free view)"))
        finally:
            if demo.key.cleanup is not None:
                demo.key.cleanup()

    header = f"{'measurement':<42} {'median ms':>10} {'baseline ms':>12} {'ratio':>7}  goal"
    print(header)
    print("-" * len(header))
    for name, value, baseline, ratio, goal in rows:
        base = f"{baseline:12.2f}" if baseline is not None else f"{'-':>12}"
        rat = f"{ratio:6.2f}x" if ratio is not None else f"{'-':>7}"
        print(f"{name:<42} {value:10.2f} {base} {rat}  {goal}")
    print(f"({args.calls} warm calls per row, {args.starts} cold starts; server: {' '.join(server_command()[:1])}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
