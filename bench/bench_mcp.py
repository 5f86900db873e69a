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

Columns besides the goal's ratio (warm call / bare request, which stays the goal):

- ``vs bare+ping``: the warm call over (bare request + MCP ping round trip), i.e. what is left once
  the SDK's own stdio round trip is granted;
- ``CPU ms/op``: CPU time per operation, which load does not inflate: for a warm call the server's
  CPU (all its threads, /proc/PID/task/*/schedstat) plus this process's (MCP client + emulator),
  for the bare request this process's (client + emulator); the ``CPU ratio`` is theirs.

Import floors, spawned K times each: ``python -c pass``, the SDK modules ``entraclaw-mcp`` imports
(``mcp.server.mcpserver``, ``mcp.server.stdio``), and entraclaw's own modules on the way to the first
tool result without the SDK; each as wall ms and CPU ms (user + sys of the child). The SDK's row is
the part of a cold start that is not ours.
``--graph-latency MS`` makes the emulator wait MS before answering each chats request (the bare GET and
the tool's request alike), to show the same ratio when Graph is not on loopback; the value is an
assumption the run states, not a measurement of Graph.
POSIX (resource), Linux for the server's CPU column (/proc).
Run: python bench/bench_mcp.py [--calls N] [--starts K] [--graph-latency MS]
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from entraclaw.auth.credential import AgentUserCredential
from entraclaw.config import load_config, make_session
from entraclaw.demo import DemoTrace, provision_emulator_tenant
from entraclaw.emulator import Emulator
from entraclaw.mcp.client_config import server_command

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


def _env(home: str) -> dict[str, str]:
    """The server's environment: the device's state dir, no CA-bundle override, and bytecode cached.

    ``pip install`` compiles every module to ``.pyc``; an environment with PYTHONDONTWRITEBYTECODE
    (CI sandboxes set it) would make each server start compile entraclaw from source while the SDK,
    installed from wheels, loads its ``.pyc``. So the servers and import floors of this bench cache
    bytecode in a directory of the run (PYTHONPYCACHEPREFIX): the first start compiles, the measured
    ones load, as on an installed machine."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PYTHONDONTWRITEBYTECODE")}
    env["ENTRACLAW_HOME"] = home
    env["PYTHONPYCACHEPREFIX"] = os.path.join(home, "bench-pycache")
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


def _server_cpu_ns() -> int:
    """CPU nanoseconds so far of this process's children (the stdio server), all their threads (Linux)."""
    total = 0
    pids: list[str] = []
    for children in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with contextlib.suppress(OSError):
            pids += Path(children).read_text().split()
    for pid in pids:
        for stat in glob.glob(f"/proc/{pid}/task/*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(Path(stat).read_text().split()[0])
    return total


def _timed_calls(env: dict[str, str], tool: str, arguments: dict[str, Any], n: int) -> tuple[list[float], float]:
    """(wall seconds per call, CPU seconds per call: the server's plus this process's)."""

    async def work(client: Any) -> tuple[list[float], float]:
        first = await client.call_tool(tool, arguments)  # warm: token, scope check, Graph connection
        assert not first.is_error, first.content
        times = []
        server_before, here_before = _server_cpu_ns(), time.process_time()
        for _ in range(n):
            began = time.perf_counter()
            result = await client.call_tool(tool, arguments)
            times.append(time.perf_counter() - began)
            assert not result.is_error
        cpu = (_server_cpu_ns() - server_before) / 1e9 + time.process_time() - here_before
        return times, cpu / n

    return anyio.run(_session, env, work)  # type: ignore[no-any-return]


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


def _bare(session: Any, token: str, url: str, params: dict[str, str], n: int) -> tuple[list[float], float]:
    """(wall seconds per request, CPU seconds per request of this process: client + emulator)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    session.get(url, headers=headers, params=params, timeout=30).raise_for_status()  # connection warm
    times = []
    cpu_before = time.process_time()
    for _ in range(n):
        began = time.perf_counter()
        response = session.get(url, headers=headers, params=params, timeout=30)
        response.json()
        times.append(time.perf_counter() - began)
        response.raise_for_status()
    return times, (time.process_time() - cpu_before) / n


#: Import floors: (row, code). The SDK's row imports what entraclaw-mcp imports of it.
_FLOORS = (
    ("import floor: python -c pass", "pass"),
    ("import floor: the mcp SDK (server + stdio)", "import mcp.server.mcpserver, mcp.server.stdio"),
    ("import floor: entraclaw's modules, no SDK",
     "import entraclaw.mcp.runtime, entraclaw.mcp.graph, entraclaw.mcp.tools, entraclaw.auth.credential, "
     "entraclaw.config"),
)


def _import_floor(code: str, starts: int, env: dict[str, str]) -> tuple[float, float]:
    """Median (wall s, CPU s) of a fresh interpreter running ``code``."""
    walls, cpus = [], []
    for _ in range(starts):
        cpu_before = _children_cpu()
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        walls.append(time.perf_counter() - began)
        cpus.append(_children_cpu() - cpu_before)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument(
        "--graph-latency",
        type=float,
        default=0.0,
        help="ms the emulator waits before answering each chats request, for the bare GET and the tool alike "
        "(0: loopback, the default). A stated assumption, e.g. a WAN round trip; not a measurement of Graph",
    )
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
            if args.graph_latency > 0:
                # Same wait on both sides of every ratio: the bare GET and the tool's Graph request.
                for pattern in ("/v1.0/me/chats", "/v1.0/chats/*/messages"):
                    emu.faults.inject("delay", count=10**9, path=pattern, delay=args.graph_latency / 1000)
            cases = [
                ("list_chats", {"limit": 20}, f"{emu.graph_url}/me/chats", {"$top": "20"}),
                ("read_teams_messages", {"chat_id": chat_id, "limit": 20},
                 f"{emu.graph_url}/chats/{chat_id}/messages",
                 {"$top": "20", "$orderby": "lastModifiedDateTime desc"}),
            ]
            # (name, median ms, baseline ms, ratio, vs bare+ping, CPU ms/op, CPU ratio, goal)
            rows: list[tuple[str, float, float | None, float | None, float | None, float | None, float | None,
                             str]] = []
            ping = statistics.median(_ping(env, args.calls))
            rows.append(("MCP ping round trip (SDK stdio, no tool)", ping * 1000, None, None, None, None, None,
                         "(floor)"))
            for tool, arguments, url, params in cases:
                bare_times, bare_cpu = _bare(session, token, url, params, args.calls)
                warm_times, warm_cpu = _timed_calls(env, tool, arguments, args.calls)
                bare, warm = statistics.median(bare_times), statistics.median(warm_times)
                rows.append((f"warm {tool} vs bare GET", warm * 1000, bare * 1000, warm / bare, warm / (bare + ping),
                             warm_cpu * 1000, warm_cpu / bare_cpu, "<= 1.10x"))
                rows.append(("  bare GET (this process: client+emulator)", bare * 1000, None, None, None,
                             bare_cpu * 1000, None, ""))
            starts = [_cold_start(env, "list_chats", {"limit": 20}) for _ in range(args.starts)]
            init = statistics.median(s[0] for s in starts)
            first = statistics.median(s[1] for s in starts)
            cpu = statistics.median(s[2] for s in starts)
            rows.append(("cold start: spawn -> initialize", init * 1000, None, None, None, None, None, ""))
            rows.append(("cold start: spawn -> first tool result", first * 1000, None, None, None, cpu * 1000, None,
                         "<= 1500 ms"))
            for name, code in _FLOORS:
                _import_floor(code, 1, env)  # bytecode cached, as the servers' is by now
                wall, floor_cpu = _import_floor(code, args.starts, env)
                rows.append((name, wall * 1000, None, None, None, floor_cpu * 1000, None, ""))
        finally:
            if demo.key.cleanup is not None:
                demo.key.cleanup()

    header = (f"{'measurement':<44} {'median ms':>10} {'baseline ms':>12} {'ratio':>7} {'vs bare+ping':>12} "
              f"{'CPU ms/op':>10} {'CPU ratio':>9}  goal")
    print(header)
    print("-" * len(header))

    def cell(value: float | None, width: int, fmt: str) -> str:
        return f"{value:{width}{fmt}}" if value is not None else f"{'-':>{width}}"

    for name, value, baseline, ratio, vs_ping, cpu_ms, cpu_ratio, goal in rows:
        rat = f"{ratio:6.2f}x" if ratio is not None else f"{'-':>7}"
        print(f"{name:<44} {value:10.2f} {cell(baseline, 12, '.2f')} {rat} {cell(vs_ping, 11, '.2f')}"
              f"{'x' if vs_ping is not None else ' '} {cell(cpu_ms, 10, '.2f')} {cell(cpu_ratio, 8, '.2f')}"
              f"{'x' if cpu_ratio is not None else ' '}  {goal}")
    print(f"({args.calls} warm calls per row, {args.starts} cold starts / import spawns; CPU ms/op of a cold start "
          f"is the server's user+sys to its exit; server: {' '.join(server_command()[:1])}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; added Graph latency "
          f"{args.graph_latency:g} ms)")

if __name__ == "__main__":
    main()
