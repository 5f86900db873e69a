"""Where a warm ``entraclaw-mcp`` tool call's time goes, server side: one table of medians.

The server runs as a real stdio subprocess (this file with ``--serve``: ``entraclaw-mcp``'s own
``main`` with timers wrapped around its pieces); the MCP SDK's client in this process calls a tool
N times after one warm-up call, and the MCP ping N times. The server writes its medians to stderr at
exit; this process prints them under the client's view:

- the client's view: the tool call and the ping round trip (the SDK's stdio floor);
- ``graph_work``: the await of the worker thread (what the event loop waits for), split into the
  hop there (queue + wake-up), the work on the thread, and the hop back;
- on the thread: the scope check (``scope_for``: the ``.default`` token's ``scp``), each token lookup,
  the Graph request through ``GraphClient`` and the bare ``requests`` call under it;
- on the event loop: the audit line (``AuditLog.append``: redaction, one ``write``).

What is left between the client's view and these pieces is the SDK (JSON-RPC framing and parsing,
argument validation, result conversion, OpenTelemetry middleware) and the pipes. Timers cost a few
microseconds each. Run: python bench/bench_mcp_breakdown.py [--calls N] [--tool list_chats|read_teams_messages]
"""

from __future__ import annotations

import argparse
import atexit
import functools
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

_PREFIX = "BREAKDOWN "


def _serve() -> int:
    """entraclaw-mcp's main with timers around its pieces; medians to stderr at exit."""
    import anyio.to_thread
    import requests

    import entraclaw.mcp.audit as audit
    import entraclaw.mcp.graph as agent_graph
    import entraclaw.provisioning.graph as graph
    from entraclaw.mcp import server

    samples: dict[str, list[float]] = defaultdict(list)

    def timed(owner: Any, name: str, label: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                samples[label].append(time.perf_counter() - began)

        setattr(owner, name, wrapper)

    timed(audit.AuditLog, "append", "event loop: AuditLog.append (audit line)")
    timed(agent_graph.AgentGraph, "scope_for", "thread: scope_for (scp check)")
    timed(agent_graph.AgentGraph, "_get_token", "thread: token lookup (each)")
    timed(graph.GraphClient, "request", "thread: GraphClient.request")
    timed(requests.Session, "request", "thread:   requests Session.request")

    original_run_sync = anyio.to_thread.run_sync

    async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        marks: dict[str, float] = {}

        def on_thread(*inner: Any) -> Any:
            marks["start"] = time.perf_counter()
            try:
                return func(*inner)
            finally:
                marks["end"] = time.perf_counter()

        began = time.perf_counter()
        try:
            return await original_run_sync(on_thread, *args, **kwargs)
        finally:
            done = time.perf_counter()
            if "end" in marks:
                samples["graph_work: await of the worker thread"].append(done - began)
                samples["graph_work:   hop to the thread"].append(marks["start"] - began)
                samples["graph_work:   work on the thread"].append(marks["end"] - marks["start"])
                samples["graph_work:   hop back to the loop"].append(done - marks["end"])

    anyio.to_thread.run_sync = run_sync  # what runtime.graph_work awaits

    def report() -> None:
        for label, values in samples.items():
            warm = values[3:]  # the warm-up thread's token and the first calls are not warm
            if warm:
                sys.stderr.write(f"{_PREFIX}{label}\t{statistics.median(warm) * 1000:.3f}\t{len(warm)}\n")
        sys.stderr.flush()

    atexit.register(report)
    return server.main([])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--tool", choices=("list_chats", "read_teams_messages"), default="list_chats")
    args = parser.parse_args()

    import anyio
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from bench_mcp import _env
    from entraclaw.demo import DemoTrace, provision_emulator_tenant
    from entraclaw.emulator import Emulator

    client_view: dict[str, float] = {}
    with Emulator() as emu, tempfile.TemporaryFile("w+") as errlog:
        demo = provision_emulator_tenant(emu, DemoTrace())
        try:
            assert demo.home is not None
            env = _env(str(demo.home))
            params = StdioServerParameters(command=sys.executable, args=[__file__, "--serve"], env=env)

            async def run() -> None:
                async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
                    await client.initialize()
                    arguments: dict[str, Any] = {"limit": 20}
                    if args.tool == "read_teams_messages":
                        created = await client.call_tool("create_chat", {"members": [emu.people.colleague.upn]})
                        chat_id = created.content[0].text.split("id=", 1)[1].split()[0]
                        await client.call_tool("send_teams_message", {"chat_id": chat_id, "text": "bench"})
                        arguments = {"chat_id": chat_id, "limit": 20}
                    assert not (await client.call_tool(args.tool, arguments)).is_error
                    calls, pings = [], []
                    for _ in range(args.calls):
                        began = time.perf_counter()
                        result = await client.call_tool(args.tool, arguments)
                        calls.append(time.perf_counter() - began)
                        assert not result.is_error, result.content
                        began = time.perf_counter()
                        await client.send_ping()
                        pings.append(time.perf_counter() - began)
                    client_view[f"client: warm {args.tool} call"] = statistics.median(calls) * 1000
                    client_view["client: MCP ping round trip"] = statistics.median(pings) * 1000

            anyio.run(run)
        finally:
            if demo.key.cleanup is not None:
                demo.key.cleanup()
        errlog.seek(0)
        server_rows = [line[len(_PREFIX):].rstrip("\n").split("\t") for line in errlog if line.startswith(_PREFIX)]

    header = f"{'piece (median of warm calls)':<48} {'ms':>8} {'n':>6}"
    print(header)
    print("-" * len(header))
    for label, value in client_view.items():
        print(f"{label:<48} {value:8.3f} {args.calls:>6}")
    for label, value, count in server_rows:
        print(f"{'server ' + label:<48} {float(value):8.3f} {count:>6}")
    print(f"({args.calls} warm calls; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        raise SystemExit(_serve())
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
