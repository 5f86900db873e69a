"""``entraclaw-mcp`` end to end: the MCP SDK's own stdio client against the server, the server against
``entraclaw emulator serve`` over HTTPS, with a device provisioned by ``entraclaw setup``.

Covers: the tool list; each tool's happy path; the failures (no consent -> the setup command,
Graph 403, a device that is not set up); human consent accepted, declined, cancelled, timed out and
unsupported; the audit trail (no secret, no body). Graph 429/503 and read_email:
tests/test_mcp_faults.py (an emulator in the test process, for its fault injector and mailboxes).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import mcp_helpers
from emulator_helpers import cli_env, stop_serve
from mcp_helpers import Device, Session, accept, never_answer, provision, refuse, run_session, server_command

JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
TOOLS = {"whoami", "find_user", "create_chat", "list_chats", "send_teams_message", "read_teams_messages",
         "list_chat_members", "add_chat_member", "wait_for_reply", "send_email", "read_email", "audit_log"}


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    dev = provision(tmp_path_factory.mktemp("mcp"))
    try:
        yield dev
    finally:
        stop_serve(dev.proc)


def colleague(device: Device) -> str:
    return f"megan.bowen@{device.domain}"


def chat_id_of(text: str) -> str:
    match = re.search(r"id=(\S+)", text)
    assert match, text
    return match.group(1)


# --- the server -----------------------------------------------------------------------------------


def test_tools_are_listed_with_input_schemas(device: Device) -> None:
    async def body(s: Session) -> list[object]:
        return list((await s.client.list_tools()).tools)

    tools = run_session(device.env, body)
    assert {t.name for t in tools} == TOOLS
    by_name = {t.name: t for t in tools}
    schema = by_name["send_teams_message"].input_schema
    assert set(schema["required"]) == {"chat_id", "text"} and "ctx" not in schema["properties"]
    assert "Chat.Read" in by_name["wait_for_reply"].description


def test_not_set_up_device_says_why_and_names_the_fix(tmp_path: Path) -> None:
    env = {**cli_env(), "ENTRACLAW_HOME": str(tmp_path)}
    box: dict[str, object] = {}

    async def body(s: Session) -> None:
        box["instructions"] = s.init.instructions
        box["whoami"] = await s.call("whoami")
        box["send"] = await s.call("send_teams_message", chat_id="19:x", text="hi")

    run_session(env, body)
    for failed, text in (box["whoami"], box["send"]):  # type: ignore[misc]
        assert failed and "not set up" in text and "`entraclaw setup`" in text and "ENTRACLAW_TENANT_ID" in text
    # initialize already says so (the preflight's finding, fixed before the warm-up thread starts)
    instructions = str(box["instructions"])
    assert "NOT READY" in instructions and "not set up" in instructions and "`entraclaw setup`" in instructions
    record = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert record["tool"] == "send_teams_message" and record["status"] == "error"


def test_stdout_carries_only_the_protocol(tmp_path: Path) -> None:
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "nope", "arguments": {}}},
    ]
    env = {**cli_env(), "ENTRACLAW_HOME": str(tmp_path)}
    proc = subprocess.Popen(server_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    timer = threading.Timer(120, proc.kill)
    timer.start()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in lines))
        proc.stdin.flush()
        # Every stdout line is JSON-RPC: json.loads would fail on anything else.
        answers = [json.loads(proc.stdout.readline()) for _ in range(3)]
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read() == ""
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
    by_id = {a.get("id"): a for a in answers}
    assert sorted(by_id) == [1, 2, 3] and all(a["jsonrpc"] == "2.0" for a in answers)
    assert by_id[2]["result"]["isError"] is True and "entraclaw setup" in by_id[2]["result"]["content"][0]["text"]


# --- happy paths ---------------------------------------------------------------------------------------


def test_whoami_names_the_agent_user_and_never_a_token(device: Device) -> None:
    text = run_session(device.env, lambda s: s.ok("whoami"))
    assert device.agent_upn in text and device.dotenv()["ENTRACLAW_AGENT_IDENTITY_ID"] in text
    assert "expires" in text and "PEM" in text and "ChatMessage.Send" in text
    assert not JWT_LIKE.search(text)


def test_teams_round_trip_with_a_colleague_who_replies(device: Device) -> None:
    box: dict[str, str] = {}

    async def body(s: Session) -> None:
        box["found"] = await s.ok("find_user", query=colleague(device))
        box["chat"] = await s.ok("create_chat", members=[colleague(device)])
        chat = chat_id_of(box["chat"])
        box["sent"] = await s.ok("send_teams_message", chat_id=chat, text="Build is green")
        box["reply"] = await s.ok("wait_for_reply", chat_id=chat, timeout_seconds=30, poll_seconds=0.5, since="1m")
        box["read"] = await s.ok("read_teams_messages", chat_id=chat, since="10m")
        box["chats"] = await s.ok("list_chats")
        box["members"] = await s.ok("list_chat_members", chat_id=chat)
        box["chat_id"] = chat

    run_session(device.env, body)
    assert "Megan Bowen" in box["found"] and "type=Member" in box["found"]
    assert "oneOnOne" in box["chat"]
    assert "Got it: Build is green" in box["reply"]
    assert "Build is green" in box["read"] and "Got it" in box["read"]
    assert box["chat_id"] in box["chats"]
    assert "2 member(s)" in box["members"] and colleague(device) in box["members"]


def test_wait_for_reply_reports_progress_and_times_out(device: Device) -> None:
    box: dict[str, object] = {}

    async def body(s: Session) -> None:
        chat = chat_id_of(await s.ok("create_chat", members=[f"lee.gu@{device.domain}"]))
        box["text"] = await s.ok("wait_for_reply", chat_id=chat, timeout_seconds=2, poll_seconds=0.5)
        box["progress"] = list(s.progress)

    run_session(device.env, body)
    assert "No reply" in str(box["text"])
    progress = box["progress"]
    assert isinstance(progress, list) and progress and all(total == 2 for _, total, _ in progress)
    assert [p for p, _, _ in progress] == sorted(p for p, _, _ in progress)
    assert json.loads(device.audit_lines()[-1])["status"] == "timeout"


# --- failures --------------------------------------------------------------------------------------------


def test_no_consent_names_the_setup_command_then_setup_fixes_it(device: Device) -> None:
    failed, text = run_session(device.env, lambda s: s.call("send_email", to=[colleague(device)], subject="s",
                                                             body="b"))
    assert failed and "Mail.Send" in text and "entraclaw setup --scope Mail.Send" in text and "AADSTS65001" in text
    done = device.setup("Mail.Send")  # the command the tool named (with setup's admin options)
    assert done.returncode == 0, done.stdout + done.stderr
    text = run_session(device.env, lambda s: s.ok("send_email", to=[colleague(device)], subject="Status",
                                                  body="All green"))
    assert "Mail sent" in text


def test_graph_403_is_a_tool_error_with_the_code_and_a_fix(device: Device) -> None:
    # A chat the Agent User is not in: the colleague and the second colleague talk without it.
    failed, text = run_session(device.env, lambda s: s.call("read_teams_messages", chat_id=device.foreign_chat))
    assert failed and "Forbidden" in text and "HTTP 403" in text and "Fix:" in text


# --- human consent -------------------------------------------------------------------------------------------


def _fabrikam(device: Device) -> str:
    text = run_session(device.env, lambda s: s.ok("find_user", query="jordan.miller@fabrikam.example"))
    match = re.search(r"tenant ([0-9a-f-]{36})", text)
    assert match, text
    return match.group(1)


@pytest.mark.parametrize(
    ("answer", "status", "word"),
    [(None, "refused", "elicitation"), (refuse("decline"), "declined", "declined"),
     (refuse("cancel"), "cancelled", "dismissed"), (accept(False), "declined", "declined")],
)
def test_external_first_message_without_a_yes_is_not_sent(device: Device, answer, status: str, word: str) -> None:
    tenant = _fabrikam(device)
    box: dict[str, object] = {}

    async def body(s: Session) -> None:
        chat = chat_id_of(await s.ok("create_chat", members=[f"jordan.miller@fabrikam.example|{tenant}"],
                                     topic=None))
        box["send"] = await s.call("send_teams_message", chat_id=chat, text="Secret roadmap")
        box["read"] = await s.ok("read_teams_messages", chat_id=chat)
        box["asked"] = list(s.elicitations)

    run_session(device.env, body, answer=answer)
    failed, text = box["send"]  # type: ignore[misc]
    assert failed and word in text and "ENTRACLAW_MCP_CONSENT" in text and "Secret roadmap" not in str(box["read"])
    record = json.loads([line for line in device.audit_lines() if "send_teams_message" in line][-1])
    assert record["status"] == status and record["consent"]["rule"] == "external_first_message"
    assert bool(box["asked"]) == (answer is not None)


def test_consent_timeout_is_its_own_outcome(device: Device) -> None:
    tenant = _fabrikam(device)
    env = {**device.env, "ENTRACLAW_MCP_CONSENT_TIMEOUT": "1"}

    async def body(s: Session) -> tuple[bool, str]:
        chat = chat_id_of(await s.ok("create_chat", members=[f"jordan.miller@fabrikam.example|{tenant}"]))
        return await s.call("send_teams_message", chat_id=chat, text="hello?")

    failed, text = run_session(env, body, answer=never_answer())
    assert failed and "no answer came within 1 s" in text
    assert json.loads(device.audit_lines()[-1])["consent"]["outcome"] == "timeout"


def test_consent_accepted_sends_and_is_remembered_for_that_chat(device: Device) -> None:
    tenant = _fabrikam(device)
    box: dict[str, object] = {}

    async def body(s: Session) -> None:
        chat = chat_id_of(await s.ok("create_chat", members=[f"jordan.miller@fabrikam.example|{tenant}"]))
        box["first"] = await s.ok("send_teams_message", chat_id=chat, text="Hello Jordan")
        box["second"] = await s.ok("send_teams_message", chat_id=chat, text="One more thing")
        box["asked"] = list(s.elicitations)

    run_session(device.env, body, answer=accept())
    assert "Sent" in str(box["first"]) and "Sent" in str(box["second"])
    asked = box["asked"]
    assert isinstance(asked, list) and len(asked) == 1 and "jordan.miller@fabrikam.example" in asked[0]


def test_group_chat_and_adding_a_member_ask_first_then_happen(device: Device) -> None:
    guest = f"alex.wilber_fabrikam.example#EXT#@{device.domain}"
    box: dict[str, object] = {}

    async def body(s: Session) -> None:
        created = await s.ok("create_chat", members=[colleague(device), f"lee.gu@{device.domain}"], topic="Release")
        chat = chat_id_of(created)
        box["created"] = created
        box["added"] = await s.ok("add_chat_member", chat_id=chat, member=guest)
        box["members"] = await s.ok("list_chat_members", chat_id=chat)
        box["asked"] = list(s.elicitations)

    run_session(device.env, body, answer=accept())
    assert "group" in str(box["created"]) and "Release" in str(box["created"])
    assert "Added" in str(box["added"]) and "4 member(s)" in str(box["members"])
    assert "EXTERNAL" in str(box["members"])  # the guest
    asked = box["asked"]
    assert isinstance(asked, list) and len(asked) == 2 and "add_chat_member" not in asked[0]
    assert guest in asked[1]
    record = json.loads([line for line in device.audit_lines() if '"add_chat_member"' in line][-1])
    assert record["status"] == "ok" and record["consent"] == {"rule": "add_chat_member", "outcome": "accepted",
                                                              "approver": "elicitation"}


def test_mail_to_an_external_domain_needs_a_yes(device: Device) -> None:
    failed, text = run_session(device.env, lambda s: s.call("send_email", to=["eve@contoso.example"], subject="x",
                                                             body="y"), answer=refuse("decline"))
    assert failed and "external mail" in text


# --- the audit trail -------------------------------------------------------------------------------------------


def test_audit_trail_has_every_call_and_no_secret_or_body(device: Device) -> None:
    lines = device.audit_lines()
    assert len(lines) > 10
    raw = "\n".join(lines)
    assert not JWT_LIKE.search(raw)
    for secret_ish in ("Build is green", "Secret roadmap", "All green", "BEGIN", "client_assertion"):
        assert secret_ish not in raw
    records = [json.loads(line) for line in lines]
    sent = [r for r in records if r["tool"] == "send_teams_message" and r["status"] == "ok"]
    assert sent and all(set(r["arguments"]["text"]) == {"sha256", "length"} for r in sent)
    assert all(r.get("graph_request_ids") for r in sent)
    out = subprocess.run([sys.executable, "-m", "entraclaw", "audit", "--tool", "send_teams_message", "--last", "2"],
                         capture_output=True, text=True, env=device.env, timeout=60)
    assert out.returncode == 0 and out.stdout.count("send_teams_message") == 2
    via_tool = run_session(device.env, lambda s: s.ok("audit_log", last=3))
    assert "3 record(s)" in via_tool


# --- client configuration through setup, doctor ------------------------------------------------------------


def test_setup_writes_the_client_config_as_its_last_step_and_doctor_checks_it(device: Device, tmp_path: Path) -> None:
    done = device.setup(*mcp_helpers.SCOPES, mcp_config="claude", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    entry = json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]["entraclaw"]
    assert entry["command"] == server_command()[0] and entry["env"]["ENTRACLAW_HOME"] == str(device.home)
    out = subprocess.run([sys.executable, "-m", "entraclaw", "doctor", "--no-smoke-test", "--json"],
                         capture_output=True, text=True, env=device.env, timeout=120)
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert checks["MCP config (claude)"]["status"] == "ok", checks
