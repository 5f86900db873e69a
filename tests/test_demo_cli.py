"""``entraclaw demo`` and ``entraclaw token`` as a user runs them: subprocesses, exit codes, no token in output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import jwt
import pytest

from credential_helpers import JWT_PREFIX_RE, JWT_RE

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    for name in list(full_env):
        if name.startswith("ENTRACLAW_") and name != "ENTRACLAW_REQUIRE":
            del full_env[name]
    # A state directory of its own: a .env in the real ~/.entraclaw must not leak into these runs.
    full_env["ENTRACLAW_HOME"] = tempfile.mkdtemp(prefix="entraclaw-cli-home-")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "entraclaw", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        check=False,
    )


def _assert_no_token(text: str) -> None:
    assert not JWT_RE.search(text), "a JWT was printed"
    assert not JWT_PREFIX_RE.search(text), "a JWT prefix was printed"


def test_demo_runs_and_prints_no_token():
    out = _run("demo")
    assert out.returncode == 0, out.stderr
    _assert_no_token(out.stdout + out.stderr)
    text = out.stdout
    for expected in ("Hop 1", "Hop 2", "Hop 3", "/v1.0/me", "idtyp", "user", "fb60f99c-7a34-4190-8149-302f77469936"):
        assert expected in text
    assert "PATCH /v1.0/applications" in text
    assert "tenant signing key" in text


def test_demo_json_parses_and_traces_every_hop():
    out = _run("demo", "--json", "--algorithm", "PS256")
    assert out.returncode == 0, out.stderr
    _assert_no_token(out.stdout + out.stderr)
    document = json.loads(out.stdout)
    assert document["ok"] is True
    steps = document["steps"]
    hops = [s for s in steps if s["title"].startswith("Hop")]
    assert [h["token"] for h in hops] == ["T1", "T2", "T3"]
    assert hops[0]["audience"] == hops[1]["audience"] == "fb60f99c-7a34-4190-8149-302f77469936"
    assert hops[2]["audience"] == "https://graph.microsoft.com" and hops[2]["idtyp"] == "user"
    assert "PS256" in hops[0]["title"]
    me = next(s for s in steps if s["title"] == "Graph GET /v1.0/me as the Agent User")
    assert me["id"] == hops[2]["oid"]
    assert me["token_from_cache"] is True
    # The demo ends with the agent itself: entraclaw-mcp, over stdio, sends and reads a Teams message.
    agent = steps[-1]
    assert agent["title"].startswith("MCP: entraclaw-mcp over stdio")
    assert "Sent to chat" in agent["sent"] and "Hello from the entraclaw demo agent" in agent["read_back"]
    assert "create_chat" in agent["tool_calls"] and "read_teams_messages" in agent["tool_calls"]


def test_demo_by_upn():
    # Setup names the Agent User in the tenant's default verified domain (a UPN elsewhere is refused).
    out = _run("demo", "--json", "--upn")
    assert out.returncode == 0, out.stderr
    steps = json.loads(out.stdout)["steps"]
    upn = steps[-2]["userPrincipalName"]
    assert upn.startswith("entraclaw-agent@") and upn.endswith(".onmicrosoft.com")
    assert f"username={upn}" in steps[-3]["title"]


def test_demo_refuses_a_upn_outside_the_tenant_domains():
    out = _run("demo", "--upn", "someone@agents.example")
    assert out.returncode != 0
    assert "agents.example" in out.stderr
    _assert_no_token(out.stdout + out.stderr)


def test_demo_failure_exits_nonzero_with_message():
    out = _run("demo", "--upn", "not-a-upn")
    assert out.returncode != 0
    assert "error" in out.stderr.lower() and "UPN" in out.stderr
    _assert_no_token(out.stdout + out.stderr)


def test_token_emulator_prints_claims_not_token():
    out = _run("token", "--emulator", "--scope", GRAPH_SCOPE)
    assert out.returncode == 0, out.stderr
    _assert_no_token(out.stdout + out.stderr)
    assert "idtyp       user" in out.stdout and "aud         https://graph.microsoft.com" in out.stdout


def test_token_json_summary():
    out = _run("token", "--emulator", "--scope", GRAPH_SCOPE, "--json", "--upn", "x@agents.example")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["idtyp"] == "user" and summary["upn"] == "x@agents.example"
    assert summary["refresh_on"] < summary["expires_on"]
    _assert_no_token(out.stdout)


def test_token_raw_prints_only_the_token():
    out = _run("token", "--emulator", "--scope", GRAPH_SCOPE, "--raw")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert out.stdout.count("\n") == 1 and JWT_RE.match(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["idtyp"] == "user"


def test_token_without_configuration_names_the_variable():
    out = _run("token", "--scope", GRAPH_SCOPE)
    assert out.returncode == 1
    assert "ENTRACLAW_TENANT_ID" in out.stderr and "--emulator" in out.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX: no CNG store to fall back to")
def test_token_needs_a_key_file_off_windows():
    env = {
        "ENTRACLAW_TENANT_ID": "11111111-1111-1111-1111-111111111111",
        "ENTRACLAW_BLUEPRINT_APP_ID": "22222222-2222-2222-2222-222222222222",
        "ENTRACLAW_AGENT_IDENTITY_ID": "33333333-3333-3333-3333-333333333333",
        "ENTRACLAW_AGENT_USER_ID": "44444444-4444-4444-4444-444444444444",
        "ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT": "A" * 43,
    }
    out = _run("token", "--scope", GRAPH_SCOPE, env=env)
    assert out.returncode == 1 and "--key-file" in out.stderr


def test_token_with_bad_thumbprint_in_env(tmp_path):
    from entraclaw.auth.certgen import generate_rsa_key, private_key_to_pem

    key_file = tmp_path / "bp.pem"
    key_file.write_bytes(private_key_to_pem(generate_rsa_key()))
    env = {
        "ENTRACLAW_TENANT_ID": "11111111-1111-1111-1111-111111111111",
        "ENTRACLAW_BLUEPRINT_APP_ID": "22222222-2222-2222-2222-222222222222",
        "ENTRACLAW_AGENT_IDENTITY_ID": "33333333-3333-3333-3333-333333333333",
        "ENTRACLAW_AGENT_USER_ID": "44444444-4444-4444-4444-444444444444",
        "ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT": "WARNING: something\nabc",
    }
    out = _run("token", "--scope", GRAPH_SCOPE, "--key-file", str(key_file), env=env)
    assert out.returncode == 1
    assert "ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT" in out.stderr and "x5t#S256" in out.stderr


def test_token_against_configured_tenant_from_env(tmp_path):
    # The real-tenant path (env configuration, PEM key file), pointed at the emulator through
    # ENTRACLAW_AUTHORITY_HOST; the child trusts the emulator CA through ENTRACLAW_CA_BUNDLE
    # (REQUESTS_CA_BUNDLE is ignored by design: it is set to an unrelated bundle here on purpose).
    from credential_helpers import seed
    from entraclaw.auth.certgen import private_key_to_pem
    from entraclaw.emulator import Emulator

    with Emulator() as emu:
        seeded = seed(emu)
        key_file = tmp_path / "bp.pem"
        key_file.write_bytes(private_key_to_pem(seeded.key))
        env = {
            "ENTRACLAW_TENANT_ID": emu.tenant_id,
            "ENTRACLAW_AUTHORITY_HOST": emu.base_url,
            "ENTRACLAW_BLUEPRINT_APP_ID": seeded.blueprint_app_id,
            "ENTRACLAW_AGENT_IDENTITY_ID": seeded.agent_identity_app_id,
            "ENTRACLAW_AGENT_USER_ID": seeded.agent_user_id,
            "ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT": seeded.signer.x5t_s256,
            "ENTRACLAW_CA_BUNDLE": emu.ca_bundle_path,
            "REQUESTS_CA_BUNDLE": os.devnull,
        }
        cache = tmp_path / "tokens.bin"
        args = (
            "token",
            "--scope",
            GRAPH_SCOPE,
            "--key-file",
            str(key_file),
            "--json",
            "--cache",
            str(cache),
            "--allow-plaintext-cache",
        )
        out = _run(*args, env=env)
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        assert summary["oid"] == seeded.agent_user_id and summary["idtyp"] == "user"
        assert emu.stats.count() == 3
        again = _run(*args, env=env)  # a second process: served from the shared cache
        assert again.returncode == 0, again.stderr
        assert emu.stats.count() == 3
        _assert_no_token(out.stdout + out.stderr + again.stdout + again.stderr)
