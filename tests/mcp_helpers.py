"""Driving ``entraclaw-mcp`` over stdio with the MCP SDK's own client, against ``entraclaw emulator serve``.

One provisioned device per test module: ``serve`` runs, ``entraclaw setup`` (the command line serve
prints, plus ``--scope``) provisions the Agent User into a temporary ENTRACLAW_HOME, and each test
starts the real ``entraclaw-mcp`` console script with that home and talks to it through
``mcp.client.stdio.stdio_client`` + ``ClientSession``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import requests

from emulator_helpers import cli_env, serve, stop_serve

#: What the module fixture consents: every tool's least-privileged scope except Mail.Send (the
#: "no consent" case; a test adds it with `entraclaw setup --scope Mail.Send`).
SCOPES = ("User.Read", "User.ReadBasic.All", "Chat.Create", "Chat.ReadBasic", "Chat.Read", "ChatMessage.Send",
          "ChatMember.ReadWrite", "Mail.Read")


def server_command() -> list[str]:
    exe = Path(sys.executable).parent / ("entraclaw-mcp.exe" if sys.platform == "win32" else "entraclaw-mcp")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "entraclaw.mcp"]


@dataclass
class Device:
    """A served emulator and a device provisioned against it."""

    proc: subprocess.Popen[str]
    info: dict[str, str]
    home: Path
    env: dict[str, str] = field(default_factory=dict)
    foreign_chat: str = ""  # a chat of the two colleagues, without the Agent User

    @property
    def ca(self) -> str:
        return self.info["ca_bundle"]

    def dotenv(self) -> dict[str, str]:
        out = {}
        for line in (self.home / ".env").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                out[key.strip()] = value.strip().strip('"').strip("'")
        return out

    @property
    def agent_upn(self) -> str:
        return self.dotenv()["ENTRACLAW_AGENT_USER_UPN"]

    @property
    def domain(self) -> str:
        return self.agent_upn.rpartition("@")[2]

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """The emulator's loopback control API (entraclaw.emulator.control)."""
        session = requests.Session()
        session.trust_env = False
        r = session.request(method, f"{self.info['base_url']}/emulator/{path}", json=body, verify=self.ca, timeout=30)
        assert r.status_code < 300, (path, r.status_code, r.text)
        return r.json() if r.content else None

    def setup(
        self, *scopes: str, mcp_config: str = "none", cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = shlex.split(self.info["setup"])[1:]  # without the leading "entraclaw"
        for scope in scopes:
            argv += ["--scope", scope]
        # A PEM key file in the state dir: the tests need no OS keyring (the keystore has its own tests).
        argv += ["--key-storage", "file", "--mcp-config", mcp_config]
        return subprocess.run([sys.executable, "-m", "entraclaw", *argv],
                              capture_output=True, text=True, env=self.env, timeout=300, cwd=cwd)

    def audit_lines(self) -> list[str]:
        path = self.home / "audit.jsonl"
        return path.read_text().splitlines() if path.exists() else []


def seeded_state(tmp: Path) -> tuple[Path, str]:
    """An emulator state file with the seeded people, the colleague answering every chat message after
    1 s, and a chat of the two colleagues the Agent User is not in (its id); ``serve --state`` loads it."""
    from entraclaw.emulator import Emulator
    from entraclaw.emulator.workspace import AutoReply, ChatMember

    state = tmp / "emulator.json"
    emu = Emulator(state_file=state)
    people = emu.people
    emu.workspace.add_rule(AutoReply(people.colleague.object_id, "Got it: {text}", delay=1.0, channel="chat"))
    members = [ChatMember("", u.object_id, u.display_name, u.mail or u.upn, emu.tenant_id, ("owner",))
               for u in (people.colleague, people.second_colleague)]
    chat, _ = emu.workspace.add_chat("group", "colleagues only", members)
    emu.save_state()
    return state, chat.id


def provision(tmp: Path, scopes: tuple[str, ...] = SCOPES) -> Device:
    state, foreign = seeded_state(tmp)
    proc, info = serve("--state", str(state))
    home = tmp / "home"
    env = {**cli_env(), "ENTRACLAW_HOME": str(home)}
    device = Device(proc, info, home, env, foreign)
    try:
        done = device.setup(*scopes)
        assert done.returncode == 0, done.stdout + done.stderr
    except BaseException:
        stop_serve(proc)
        raise
    return device


@dataclass
class Session:
    """What a test sees of one MCP session."""

    client: Any
    init: Any = None  # the InitializeResult (server instructions, capabilities)
    progress: list[tuple[float, float | None, str | None]] = field(default_factory=list)
    elicitations: list[str] = field(default_factory=list)

    async def call(self, tool: str, **arguments: Any) -> tuple[bool, str]:
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            self.progress.append((progress, total, message))

        result = await self.client.call_tool(tool, arguments, progress_callback=on_progress)
        text = "\n".join(getattr(c, "text", "") for c in result.content)
        return bool(result.is_error), text

    async def ok(self, tool: str, **arguments: Any) -> str:
        failed, text = await self.call(tool, **arguments)
        assert not failed, f"{tool} failed: {text}"
        return text


Answer = Callable[[str], Awaitable[Any]]


def run_session(
    env: dict[str, str],
    body: Callable[[Session], Awaitable[Any]],
    *,
    answer: Answer | None = None,
    errlog: Any = None,
) -> Any:
    """Start entraclaw-mcp with ``env``, initialize, run ``body(session)``. ``answer(message)`` makes the client
    declare elicitation and returns the ElicitResult for each question; without it the client has none."""
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    command = server_command()
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    box: dict[str, Any] = {}

    async def main() -> None:
        session_box: list[Session] = []

        async def on_elicit(context: Any, params: Any) -> Any:
            session_box[0].elicitations.append(params.message)
            assert answer is not None
            return await answer(params.message)

        log = errlog if errlog is not None else open(os.devnull, "w")  # noqa: SIM115
        try:
            callback = on_elicit if answer else None
            async with stdio_client(params, errlog=log) as (read, write), ClientSession(
                read, write, elicitation_callback=callback
            ) as client:
                box["init"] = await client.initialize()
                session = Session(client, box["init"])
                session_box.append(session)
                box["result"] = await body(session)
        finally:
            if errlog is None:
                log.close()
        _ = types

    anyio.run(main)
    return box.get("result")


def accept(approve: bool = True) -> Answer:
    async def answer(message: str) -> Any:
        import mcp_types as types

        return types.ElicitResult(action="accept", content={"approve": approve})

    return answer


def refuse(action: str) -> Answer:
    async def answer(message: str) -> Any:
        import mcp_types as types

        return types.ElicitResult(action=action)

    return answer


def never_answer() -> Answer:
    async def answer(message: str) -> Any:
        await anyio.sleep(60)

    return answer
