"""entraclaw-mcp under Graph faults and with mail, against an emulator run in this process (its fault
injector and mailboxes are Python calls), the server still a real stdio subprocess over HTTPS.

Throttling: one 429 with Retry-After 1 is waited out within the call's deadline; a Retry-After
longer than what is left fails at once with Graph's code and how long to wait; a 503 is retried.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from entraclaw.demo import DemoTrace, provision_emulator_tenant
from entraclaw.emulator import Emulator
from mcp_helpers import Session, run_session


@dataclass
class Local:
    emu: Any
    home: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    with Emulator() as emu:
        scopes = ("User.Read", "Chat.Create", "Chat.ReadBasic", "Chat.Read", "Mail.Read", "Mail.Send")
        demo = provision_emulator_tenant(emu, DemoTrace(), scopes=scopes)
        try:
            assert demo.home is not None
            env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
            env["ENTRACLAW_HOME"] = str(demo.home)
            yield Local(emu, demo.home, env)
        finally:
            if demo.key.cleanup is not None:
                demo.key.cleanup()


def last_audit(local: Local) -> dict[str, Any]:
    return json.loads((local.home / "audit.jsonl").read_text().splitlines()[-1])


def test_a_429_within_the_deadline_is_waited_out(local: Local) -> None:
    local.emu.faults.inject("429", count=1, path="/v1.0/me/chats", retry_after=1)
    text = run_session(local.env, lambda s: s.ok("list_chats"))
    assert "chat" in text and local.emu.faults.pending == 0
    assert last_audit(local)["status"] == "ok"


def test_a_503_is_retried(local: Local) -> None:
    local.emu.faults.inject("5xx", count=1, path="/v1.0/me/chats", status=503)
    run_session(local.env, lambda s: s.ok("list_chats"))
    assert local.emu.faults.pending == 0


def test_a_retry_after_beyond_the_deadline_fails_at_once_with_the_code_and_the_wait(local: Local) -> None:
    local.emu.faults.inject("429", count=3, path="/v1.0/me/chats", retry_after=600)
    try:
        failed, text = run_session(local.env, lambda s: s.call("list_chats"))
    finally:
        local.emu.faults.clear()
    assert failed and "TooManyRequests" in text and "HTTP 429" in text and "600 s" in text
    record = last_audit(local)
    assert record["status"] == "error" and record["error_code"] == "TooManyRequests"


def test_read_email_gives_text_bodies_and_filters_unread(local: Local) -> None:
    emu = local.emu
    people = emu.people
    agent = _dotenv(local.home)["ENTRACLAW_AGENT_USER_UPN"]
    emu.workspace.send_mail(people.colleague, "Lunch?", "html", "<p>Noon at <b>the usual</b>?</p>",
                            to=[(agent, agent)], cc=[], bcc=[])
    text = run_session(local.env, lambda s: s.ok("read_email", unread_only=True, since="1h"))
    assert "Lunch?" in text and "Noon at the usual?" in text and "<b>" not in text and "(unread)" in text


def _dotenv(home: Path) -> dict[str, str]:
    out = {}
    for line in (home / ".env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def test_wait_for_reply_is_cancellable_and_the_cancel_is_audited(local: Local) -> None:
    quiet = local.emu.people.second_colleague.upn  # no auto-reply: the wait would run its full minute
    box: dict[str, Any] = {}

    async def body(s: Session) -> None:
        created = await s.ok("create_chat", members=[quiet])
        chat = created.split("id=", 1)[1].split()[0]
        try:
            # The client gives up after 2 s: the SDK sends notifications/cancelled for the request.
            await s.client.call_tool("wait_for_reply", {"chat_id": chat, "timeout_seconds": 60, "poll_seconds": 0.5},
                                     read_timeout_seconds=2)
        except Exception as exc:  # the SDK's timeout error
            box["error"] = type(exc).__name__
        for _ in range(100):
            if last_audit(local)["tool"] == "wait_for_reply":
                break
            await anyio.sleep(0.1)
        box["record"] = last_audit(local)

    run_session(local.env, body)
    assert "error" in box
    assert box["record"]["tool"] == "wait_for_reply" and box["record"]["status"] == "cancelled"
