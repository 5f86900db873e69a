"""Unit tests of the agent's pieces that need no server: audit trail, consent policy, client configs."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from entraclaw.errors import ConfigurationError
from entraclaw.mcp import client_config as cc
from entraclaw.mcp.audit import AuditFilter, AuditLog, reduce_arguments
from entraclaw.mcp.consent import RULES, load_policy

JWTISH = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJlLW5vdC1yZWFs"


# --- audit ---------------------------------------------------------------------------------------


def test_audit_reduces_bodies_to_hash_and_length_and_redacts_tokens(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append({"tool": "send_teams_message", "status": "ok",
                "arguments": reduce_arguments({"chat_id": "19:abc", "text": "hello " + JWTISH, "note": JWTISH})})
    raw = (tmp_path / "audit.jsonl").read_text()
    assert JWTISH not in raw and "hello" not in raw
    record = json.loads(raw)
    assert record["arguments"]["text"]["length"] == len("hello " + JWTISH)
    assert len(record["arguments"]["text"]["sha256"]) == 64
    assert record["arguments"]["note"] == "[redacted]" and record["arguments"]["chat_id"] == "19:abc"
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(tmp_path / "audit.jsonl").st_mode) == 0o600


def test_audit_recreates_a_removed_state_dir_owner_only_and_keeps_appending(tmp_path: Path) -> None:
    # The log opens the file first and looks at the directory only when that fails: a state directory
    # removed under a running server comes back owner-only, the file owner-only whatever the umask.
    state = tmp_path / "state"
    log = AuditLog(state / "audit.jsonl")
    log.append({"tool": "whoami", "status": "ok"})
    shutil.rmtree(state)
    old_umask = os.umask(0)
    try:
        log.append({"tool": "list_chats", "status": "ok"})
        log.append({"tool": "list_chats", "status": "error"})
    finally:
        os.umask(old_umask)
    assert [r["status"] for r in log.read()] == ["ok", "error"]
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(state / "audit.jsonl").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700


def test_audit_rotates_by_size_and_reads_across_files(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=2048, keep=2)
    for i in range(60):
        log.append({"tool": "list_chats", "status": "ok" if i % 2 else "error", "n": i, "pad": "x" * 40})
    assert (tmp_path / "audit.jsonl.1").exists() and (tmp_path / "audit.jsonl.2").exists()
    assert not (tmp_path / "audit.jsonl.3").exists()
    for path in log.files_oldest_first():
        assert path.stat().st_size <= 2048
    numbers = [r["n"] for r in log.read()]
    assert numbers == sorted(numbers) and numbers[-1] == 59  # oldest first, nothing reordered
    assert [r["n"] for r in log.read(AuditFilter(status="error", last=2))] == [56, 58]


def test_audit_skips_a_torn_last_line_and_counts_it(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append({"tool": "whoami", "status": "ok"})
    with open(tmp_path / "audit.jsonl", "ab") as handle:
        handle.write(b'{"tool": "who')  # a writer killed mid-line (not possible with one write, but a disk can)
    assert [r["tool"] for r in log.read()] == ["whoami"] and log.skipped == 1
    log.append({"tool": "list_chats", "status": "ok"})


def test_audit_appends_from_many_processes_interleave_whole_lines(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom entraclaw.mcp.audit import AuditLog\n"
        "log = AuditLog(sys.argv[1], max_bytes=20000, keep=50)\n"
        "for i in range(100): log.append({'tool': 'p' + sys.argv[2], 'status': 'ok', 'i': i, 'pad': 'y' * 100})\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "audit.jsonl"), str(n)]) for n in range(3)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=20000, keep=50)
    records = log.read()
    assert log.skipped == 0 and len(records) == 300
    for n in range(3):
        assert [r["i"] for r in records if r["tool"] == f"p{n}"] == list(range(100))


def test_audit_cli_filters(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    for tool, status in (("whoami", "ok"), ("send_email", "declined"), ("send_email", "ok")):
        log.append({"tool": tool, "status": status})
    env = {**os.environ, "ENTRACLAW_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "entraclaw", "audit", "--tool", "send_email", "--json"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["status"] for line in out.stdout.splitlines()] == ["declined", "ok"]
    out = subprocess.run([sys.executable, "-m", "entraclaw", "audit", "--since", "yesterday"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1 and "--since" in out.stderr and "Fix:" in out.stderr


# --- consent policy ----------------------------------------------------------------------------------


def test_consent_policy_defaults_env_file_and_errors(tmp_path: Path) -> None:
    policy = load_policy(agent_upn="agent@contoso.com", environ={}, home=tmp_path)
    assert policy.rules == frozenset(RULES) and policy.timeout == 120
    assert policy.is_internal_address("bob@Contoso.com") and not policy.is_internal_address("eve@fabrikam.com")
    (tmp_path / ".env").write_text("ENTRACLAW_MCP_CONSENT=external_mail\nENTRACLAW_MCP_INTERNAL_DOMAINS=fabrikam.com\n")
    policy = load_policy(agent_upn="agent@contoso.com", environ={}, home=tmp_path)
    assert policy.rules == {"external_mail"} and policy.is_internal_address("eve@fabrikam.com")
    # The process environment wins over .env, as for every other setting.
    assert load_policy(agent_upn=None, environ={"ENTRACLAW_MCP_CONSENT": "none"}, home=tmp_path).rules == frozenset()
    with pytest.raises(ConfigurationError) as caught:
        load_policy(agent_upn=None, environ={"ENTRACLAW_MCP_CONSENT": "external_mail,everything"}, home=tmp_path)
    assert "everything" in caught.value.message and "external_first_message" in caught.value.remedy
    with pytest.raises(ConfigurationError):
        load_policy(agent_upn=None, environ={"ENTRACLAW_MCP_CONSENT_TIMEOUT": "soon"}, home=tmp_path)


def test_consent_policy_remembers_approved_chats(tmp_path: Path) -> None:
    policy = load_policy(agent_upn=None, environ={}, home=tmp_path)
    assert not policy.already_approved("19:x")
    policy.remember("19:x")
    assert load_policy(agent_upn=None, environ={}, home=tmp_path).already_approved("19:x")


# --- client configs ------------------------------------------------------------------------------------

VSCODE_WITH_COMMENTS = """{
  // servers this team uses
  "servers": {
    "github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"}, /* keep me */
  },
  "inputs": [],
}
"""


def test_vscode_merge_keeps_comments_other_servers_and_trailing_commas(tmp_path: Path) -> None:
    target = cc.targets("vscode", project_dir=tmp_path)[0]
    target.path.parent.mkdir()
    target.path.write_text(VSCODE_WITH_COMMENTS)
    change = cc.plan_change(target, "/opt/venv/bin/entraclaw-mcp", [], {})
    assert change.action == "update"
    assert "// servers this team uses" in change.new_text and "/* keep me */" in change.new_text
    document = cc.parse_jsonc(change.new_text, target.path)
    assert document["servers"]["github"]["url"] == "https://api.githubcopilot.com/mcp/"
    assert document["servers"]["entraclaw"] == {"type": "stdio", "command": "/opt/venv/bin/entraclaw-mcp", "args": []}
    backup = cc.write_change(change, home=tmp_path / "state")
    assert backup is not None and backup.read_text() == VSCODE_WITH_COMMENTS
    # Again with a moved command: only our entry's value changes.
    again = cc.plan_change(target, "/new/bin/entraclaw-mcp", [], {})
    assert again.new_text.replace("/new/bin", "/opt/venv/bin") == change.new_text
    assert cc.plan_change(target, "/opt/venv/bin/entraclaw-mcp", [], {}).action == "unchanged"


@pytest.mark.parametrize("client", ["claude", "copilot"])
def test_claude_and_copilot_entries_have_their_documented_shape(tmp_path: Path, client: str) -> None:
    target = cc.targets(client, project_dir=tmp_path, environ={"COPILOT_HOME": str(tmp_path / "copilot")})[0]
    target.path.parent.mkdir(parents=True, exist_ok=True)
    target.path.write_text(json.dumps({"mcpServers": {"other": {"command": "x"}}, "theme": "dark"}, indent=2))
    cc.write_change(cc.plan_change(target, "C:\\venv\\Scripts\\entraclaw-mcp.exe", [], {"ENTRACLAW_HOME": "D:\\s"}),
                    home=tmp_path / "state")
    document = json.loads(target.path.read_text())
    assert document["theme"] == "dark" and document["mcpServers"]["other"] == {"command": "x"}
    entry = document["mcpServers"]["entraclaw"]
    assert entry["command"] == "C:\\venv\\Scripts\\entraclaw-mcp.exe" and entry["env"] == {"ENTRACLAW_HOME": "D:\\s"}
    if client == "copilot":
        assert entry["type"] == "local" and entry["tools"] == ["*"]
        assert target.path == tmp_path / "copilot" / "mcp-config.json"
    else:
        assert entry["type"] == "stdio" and target.path == tmp_path / ".mcp.json"


def test_a_file_that_is_not_a_json_object_is_refused_and_left_alone(tmp_path: Path) -> None:
    target = cc.targets("claude", project_dir=tmp_path)[0]
    target.path.write_text("[1, 2")
    with pytest.raises(ConfigurationError) as caught:
        cc.plan_change(target, "/x/entraclaw-mcp", [], {})
    assert str(target.path) in caught.value.message and "entraclaw mcp-config --client" in caught.value.remedy
    assert target.path.read_text() == "[1, 2"


def test_recorded_configs_refresh_when_the_command_moved_and_doctor_sees_them(tmp_path: Path) -> None:
    state = tmp_path / "state"
    target = cc.targets("claude", project_dir=tmp_path)[0]
    cc.write_change(cc.plan_change(target, str(tmp_path / "gone" / "entraclaw-mcp"), [], {}), home=state)
    [(client, ok, detail)] = cc.check_recorded(state)
    assert client == "claude" and not ok and "does not exist" in detail
    changes = cc.refresh_recorded(state)
    assert [c.target.client for c in changes] == ["claude"]
    command, _args = cc.server_command()
    assert json.loads(target.path.read_text())["mcpServers"]["entraclaw"]["command"] == command
    assert cc.refresh_recorded(state) == []  # nothing moved since
    [(_, ok, _)] = cc.check_recorded(state)
    assert ok == Path(command).is_file()


def test_mcp_config_cli_dry_run_writes_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "ENTRACLAW_HOME": str(tmp_path / "state"), "COPILOT_HOME": str(tmp_path / "copilot")}
    out = subprocess.run([sys.executable, "-m", "entraclaw", "mcp-config", "--dry-run", "--project-dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "claude: would create" in out.stdout and "copilot: would create" in out.stdout
    assert not any(tmp_path.rglob("*.json"))
    out = subprocess.run([sys.executable, "-m", "entraclaw", "mcp-config", "--client", "vscode", "--project-dir",
                          str(tmp_path)], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    entry = cc.parse_jsonc((tmp_path / ".vscode" / "mcp.json").read_text(), tmp_path)["servers"]["entraclaw"]
    assert entry["env"] == {"ENTRACLAW_HOME": str(tmp_path / "state")} and Path(entry["command"]).is_absolute()


@pytest.mark.parametrize("step", ["write:temp-written", "write:replaced", "mcp-config:backed-up", "mcp-config:written"])
def test_mcp_config_killed_at_any_step_leaves_a_whole_file_and_the_rerun_converges(tmp_path: Path, step: str) -> None:
    vscode = tmp_path / ".vscode" / "mcp.json"
    vscode.parent.mkdir()
    vscode.write_text(VSCODE_WITH_COMMENTS)
    env = {**os.environ, "ENTRACLAW_HOME": str(tmp_path / "state"), "ENTRACLAW_TEST_CRASH_AT": step}
    argv = [sys.executable, "-m", "entraclaw", "mcp-config", "--client", "vscode", "--project-dir", str(tmp_path)]
    killed = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert killed.returncode != 0  # it died at the step
    after = vscode.read_text()
    assert after == VSCODE_WITH_COMMENTS or "entraclaw" in cc.parse_jsonc(after, vscode)["servers"]
    env.pop("ENTRACLAW_TEST_CRASH_AT")
    rerun = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    document = cc.parse_jsonc(vscode.read_text(), vscode)
    assert set(document["servers"]) == {"github", "entraclaw"} and "/* keep me */" in vscode.read_text()
    assert [c for c, _, _ in cc.check_recorded(tmp_path / "state")] == ["vscode"]
    assert not [p for p in vscode.parent.iterdir() if ".entraclaw-tmp-" in p.name]
