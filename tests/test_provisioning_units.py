"""Graph client transport (paging, Retry-After, errors), admin auth seams, proofs, doctor."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from entraclaw.auth.certgen import generate_rsa_key, self_signed_certificate
from entraclaw.auth.signer import PemSigner
from entraclaw.auth.thumbprint import compute_sha1_thumbprint
from entraclaw.errors import ClientAssertionError, ConfigurationError, GraphRequestError
from entraclaw.provisioning.auth import AzureCliAuth, StaticTokenAuth
from entraclaw.provisioning.doctor import run_doctor
from entraclaw.provisioning.graph import GraphClient
from entraclaw.provisioning.proofs import PROOF_AUDIENCE, build_proof
from entraclaw.provisioning.state import read_device_config, write_device_config
from provisioning_helpers import Tenant, emulator_tenant


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    yield from emulator_tenant()


# --- proofs ----------------------------------------------------------------------------


def _signer() -> PemSigner:
    key = generate_rsa_key()
    return PemSigner(key, self_signed_certificate(key, "proof-test"))


def test_proof_claims_header_and_signature_verify_with_cryptography() -> None:
    signer = _signer()
    oid = "2f1d0c4e-0000-4000-8000-000000000001"
    token = build_proof(signer, oid, now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    sha1 = compute_sha1_thumbprint(signer.certificate.public_bytes(serialization.Encoding.DER))  # type: ignore[union-attr]
    assert header["alg"] == "RS256" and header["kid"] == sha1 and header["typ"] == "JWT"
    assert jwt.utils.base64url_decode(header["x5t"]).hex().upper() == sha1
    assert "=" not in token
    claims = jwt.decode(
        token,
        signer.public_key(),
        algorithms=["RS256"],
        audience=PROOF_AUDIENCE,
        options={"verify_exp": False, "verify_nbf": False},
    )
    assert claims["iss"] == oid and claims["exp"] - claims["nbf"] == 600


def test_proof_refuses_long_lifetimes_and_keys_without_certificates() -> None:
    with pytest.raises(ClientAssertionError):
        build_proof(_signer(), "x", lifetime=601)
    with pytest.raises(ClientAssertionError):
        build_proof(PemSigner(generate_rsa_key()), "x")


# --- azure cli ---------------------------------------------------------------------------


def test_azure_cli_missing_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigurationError) as info:
        AzureCliAuth().token()
    assert "Azure CLI" in info.value.message and "--device-code" in info.value.remedy


def test_azure_cli_json_is_parsed() -> None:
    payload = {"scp": "Application.ReadWrite.All User.Read"}
    body = jwt.encode(payload, "k" * 32, algorithm="HS256")
    seen: list[list[str]] = []

    def runner(argv: list[str]) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        out = json.dumps({"accessToken": body, "expires_on": int(time.time()) + 3600, "tenant": "t"})
        return subprocess.CompletedProcess(argv, 0, out, "")

    auth = AzureCliAuth(tenant="t", az="/usr/bin/az", runner=runner)
    assert auth.token() == body
    assert auth.token() == body and len(seen) == 1  # cached until near expiry
    assert seen[0][1:5] == ["account", "get-access-token", "--resource", "https://graph.microsoft.com"]

    def refused(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 1, "", "Please run 'az login'")

    failing = AzureCliAuth(az="/usr/bin/az", runner=refused)
    with pytest.raises(ConfigurationError) as info:
        failing.token()
    assert "az login" in info.value.remedy


# --- Graph transport ---------------------------------------------------------------------


def test_paging_follows_next_link(tenant: Tenant) -> None:
    graph = tenant.graph()
    for i in range(3):
        graph.create_blueprint(f"paged {i}", sponsor_ids=(tenant.admin.user_id,))
    graph.reset_counts()
    rows = list(graph.pages("applications", what="list", params={"$top": "1"}))
    assert len([r for r in rows if str(r.get("displayName", "")).startswith("paged")]) == 3
    assert graph.counts["GET"] >= 4


def test_retry_after_on_429_then_success_and_error_shape(tenant: Tenant) -> None:
    graph = tenant.graph()
    graph.default_domain()  # token fetched
    slept: list[float] = []
    graph._sleep = slept.append  # type: ignore[method-assign]
    tenant.emu.faults.inject("429", count=2, path="/v1.0/domains", retry_after=2)
    assert graph.default_domain()
    assert slept == [2.0, 2.0] and graph.counts["retries"] == 2
    with pytest.raises(GraphRequestError) as info:
        graph.request("GET", "applications/00000000-0000-0000-0000-000000000000", what="get missing")
    err = info.value
    assert err.http_status == 404  # type: ignore[attr-defined]
    assert err.code and err.request_id and err.url.endswith("00000000-0000-0000-0000-000000000000")  # type: ignore[attr-defined]
    assert "eyJ" not in str(err) and "Bearer" not in repr(err)


def test_bad_token_is_a_typed_401_without_the_token(tenant: Tenant) -> None:
    graph = GraphClient(tenant.endpoints.graph_url, StaticTokenAuth("not-a-token"), session=tenant.endpoints.session())
    with pytest.raises(GraphRequestError) as info:
        graph.default_domain()
    assert info.value.http_status == 401  # type: ignore[attr-defined]
    assert "not-a-token" not in str(info.value)


# --- doctor ------------------------------------------------------------------------------


def test_doctor_healthy_then_unhealthy(tenant: Tenant, tmp_path: Path) -> None:
    home = tmp_path / "d"
    tenant.setup(home).run()
    report = run_doctor(state_dir=home, admin_graph=tenant.graph())
    names = {c.name: c.status for c in report.checks}
    assert report.exit_code == 0, report.text()
    for name in (
        "key",
        "key provider",
        "certificate",
        "thumbprint",
        "registered",
        "clock skew",
        "consent",
        "hops 1-3 + /me",
        "stale certificates",
    ):
        assert names[name] == "ok", (name, report.text())
    assert json.loads(json.dumps(report.to_json()))["healthy"] is True
    # Without admin credentials registration is read from Hop 1.
    assert run_doctor(state_dir=home).exit_code == 0
    # A config naming another thumbprint is unhealthy, with a remedy naming a real command.
    write_device_config(home / ".env", {"ENTRACLAW_BLUEPRINT_CERT_SHA1": "0" * 40})
    bad = run_doctor(state_dir=home, smoke=False)
    assert bad.exit_code == 1
    failing = [c for c in bad.checks if c.status == "fail"]
    assert failing and "entraclaw rotate" in failing[0].remedy


def test_doctor_without_config_fails_and_unreachable_is_unknown(tmp_path: Path) -> None:
    assert run_doctor(state_dir=tmp_path).exit_code == 1
    write_device_config(
        tmp_path / ".env",
        {
            "ENTRACLAW_TENANT_ID": "11111111-1111-1111-1111-111111111111",
            "ENTRACLAW_AUTHORITY_HOST": "https://127.0.0.1:9",
            "ENTRACLAW_BLUEPRINT_APP_ID": "22222222-2222-2222-2222-222222222222",
            "ENTRACLAW_AGENT_IDENTITY_ID": "33333333-3333-3333-3333-333333333333",
            "ENTRACLAW_AGENT_USER_ID": "44444444-4444-4444-4444-444444444444",
            "ENTRACLAW_KEY_REF": f"file:{tmp_path / 'missing.pem'}",
            "ENTRACLAW_BLUEPRINT_CERT_SHA1": "A" * 40,
        },
    )
    assert read_device_config(tmp_path / ".env", environ={})["ENTRACLAW_AGENT_USER_ID"].startswith("4444")
    report = run_doctor(state_dir=tmp_path)
    statuses = {c.name: c.status for c in report.checks}
    assert statuses["key"] == "fail" and statuses["clock skew"] == "unknown"


def test_doctor_clean_stale_removes_unregistered_keys(tenant: Tenant, tmp_path: Path) -> None:
    home = tmp_path / "d"
    tenant.setup(home).run()
    config = read_device_config(home / ".env", environ={})
    from entraclaw.provisioning.keys import create_device_key

    stray = create_device_key(config["ENTRACLAW_BLUEPRINT_APP_ID"], "file", state_dir=home)
    stray.close()
    listed = run_doctor(state_dir=home, admin_graph=tenant.graph(), smoke=False)
    stale = next(c for c in listed.checks if c.name == "stale certificates")
    assert stale.status == "warn" and stray.sha1 in stale.detail and "--clean-stale" in stale.remedy
    cleaned = run_doctor(state_dir=home, admin_graph=tenant.graph(), smoke=False, clean_stale=True)
    assert next(c for c in cleaned.checks if c.name == "stale certificates").detail.startswith("removed 1")
    assert not Path(stray.key_ref.removeprefix("file:")).exists()
    assert Path(config["ENTRACLAW_KEY_REF"].removeprefix("file:")).exists()


# --- PowerShell wrappers ----------------------------------------------------------------------

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.mark.parametrize(("script", "command"), [("setup-windows.ps1", "setup"), ("deploy-windows.ps1", "rotate")])
def test_windows_wrappers_are_thin(script: str, command: str) -> None:
    text = (SCRIPTS / script).read_text(encoding="utf-8")
    assert f"-m entraclaw {command}" in text and "exit $LASTEXITCODE" in text
    # Process scope only; never the user's or the machine's policy.
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    policies = [line for line in lines if "Set-ExecutionPolicy" in line]
    assert policies and all("-Scope Process" in line for line in policies)
    # No tenant logic in PowerShell: no Graph or token calls, no certificate cmdlets.
    for forbidden in ("Invoke-RestMethod", "graph.microsoft.com", "New-SelfSignedCertificate", "keyCredentials"):
        assert forbidden not in text
    helper = (SCRIPTS / "entraclaw-venv.ps1").read_text(encoding="utf-8")
    assert "3.10" in helper and "py" in helper and "-m venv" in helper


# --- delegated admin ---------------------------------------------------------------------------


def test_device_code_admin_runs_setup_with_itself_as_sponsor(tenant: Tenant, tmp_path: Path) -> None:
    from entraclaw.provisioning.auth import DeviceCodeAuth
    from entraclaw.provisioning.setup import Setup

    tenant.emu.auto_approve = True
    shown: list[str] = []
    auth = DeviceCodeAuth(
        authority=tenant.endpoints.authority,
        client_id=tenant.admin.client_id,
        session=tenant.endpoints.session(),
        echo=shown.append,
        microsoft_authority=False,
    )
    graph = GraphClient(tenant.endpoints.graph_url, auth, session=tenant.endpoints.session())
    me = graph.me()
    assert me is not None and me.upn == tenant.admin.user_upn
    assert shown and "code" in shown[0].lower()
    result = Setup(tenant.options(tmp_path / "d", sponsor_ids=()), graph, echo=lambda _l: None).run()
    assert result.completed


# --- hints name what exists -------------------------------------------------------------------


def test_every_command_and_script_named_in_src_exists() -> None:
    import re

    from entraclaw.cli import build_parser

    src = Path(__file__).resolve().parent.parent / "src" / "entraclaw"
    text = "\n".join(p.read_text(encoding="utf-8") for p in src.rglob("*.py"))
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    commands = sub.choices  # type: ignore[attr-defined]
    for name, flag in set(re.findall(r"`entraclaw ([a-z]+)((?: --[a-z-]+)*)", text)):
        assert name in commands, f"`entraclaw {name}` is named in src/ but is not a command"
        known = {opt for action in commands[name]._actions for opt in action.option_strings}
        for option in flag.split():
            assert option in known, f"`entraclaw {name} {option}` is named in src/ but {name} has no {option}"
    for script in set(re.findall(r"scripts/([A-Za-z0-9_-]+\.(?:ps1|sh))", text)):
        assert (SCRIPTS / script).exists(), f"scripts/{script} is named in src/ but does not exist"


def test_cli_dry_run_prints_the_plan_and_writes_nothing(tenant: Tenant, tmp_path: Path) -> None:
    from provisioning_helpers import run_cli

    home = tmp_path / "d"
    out = run_cli("setup", *tenant.cli_args(home), "--sponsor", tenant.admin.user_upn, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "[blueprint] would create: entraclaw Agent Blueprint" in out.stdout
    assert "[smoke] would run" in out.stdout
    assert "no writes" in out.stdout
    assert not (home / ".env").exists() and not (home / "setup-journal.json").exists()


def _remedy_texts() -> Iterator[tuple[str, str]]:
    """(where, text) of every remedy in src/: ``remedy=`` arguments, f-strings and concatenations included.

    A placeholder becomes ``{}``, so a command or flag built at run time is seen (and refused) too.
    """
    import ast

    def text_of(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(text_of(part) or "{}" for part in node.values)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = text_of(node.left), text_of(node.right)
            return None if left is None and right is None else (left or "{}") + (right or "{}")
        if isinstance(node, ast.IfExp):
            return " ".join(t for t in (text_of(node.body), text_of(node.orelse)) if t)
        if isinstance(node, ast.BoolOp):
            return " ".join(t for t in (text_of(v) for v in node.values) if t)
        return None

    src = Path(__file__).resolve().parent.parent / "src" / "entraclaw"
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            values = [kw.value for kw in node.keywords if kw.arg == "remedy"]
            if isinstance(node.func, ast.Name) and node.func.id == "_Invalid" and len(node.args) > 1:
                values.append(node.args[1])  # entraclaw.config's problem tuples: (message, remedy)
            for value in values:
                text = text_of(value)
                if text is not None:
                    yield f"{path.relative_to(src)}:{node.lineno}", text


def test_every_command_a_remedy_names_exists_with_its_flags() -> None:
    import argparse
    import re

    from entraclaw.cli import build_parser

    def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    seen = 0
    # `entraclaw` then words and --flags (with their metavars) up to the end of the command.
    pattern = re.compile(r"\bentraclaw((?: (?:--)?[a-z{}][a-z0-9{}-]*| [A-Z_{}][A-Z0-9_{}]*)+)")
    for where, text in _remedy_texts():
        for match in pattern.finditer(text):
            words = match.group(1).split()
            parser, path = build_parser(), "entraclaw"
            # Prose ("another entraclaw process") is not a command; a backticked mention, one
            # with flags, or one whose first word is a command is, and is checked in full.
            quoted = text[max(0, match.start() - 1) : match.start()] == "`"
            if not (quoted or any(w.startswith("--") for w in words) or words[0] in subcommands(parser)):
                continue
            # Only the command path and flags: lower-case words after a flag, or an upper-case
            # metavar, are values (SCOPE, PATH).
            while words and not words[0].startswith("--"):
                choices = subcommands(parser)
                if not choices:
                    break
                word = words.pop(0)
                assert "{" not in word, f"{where}: a remedy builds the command name at run time: {text!r}"
                assert word in choices, f"{where}: `{path} {word}` is named in a remedy but is not a command"
                parser, path = choices[word], f"{path} {word}"
                seen += 1
            known = {opt for action in parser._actions for opt in action.option_strings}
            for word in words:
                if word.startswith("--"):
                    assert "{" not in word, f"{where}: a remedy builds a flag at run time: {text!r}"
                    assert word in known, f"{where}: `{path} {word}` is named in a remedy but {path} has no {word}"
    assert seen > 5  # the scan found the remedies that name commands


def test_propagation_wait_backs_off_by_the_retry_rule_and_gives_up_at_its_timeout() -> None:
    from entraclaw.provisioning.context import PropagationWait

    now = [0.0]
    slept: list[float] = []
    lines: list[str] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    def never_there() -> None:
        raise GraphRequestError(
            "Resource 'x' does not exist.", remedy="Wait.", http_status=404, code="Request_ResourceNotFound"
        )

    wait = PropagationWait(
        timeout=60.0, first_delay=1.0, max_delay=15.0, echo=lines.append, sleep=sleep, clock=lambda: now[0]
    )
    with pytest.raises(GraphRequestError):
        wait.run("the Agent Identity", never_there)
    # Doubling from first_delay, capped at max_delay, no jitter; the wait that would end past
    # the timeout is not started.
    assert slept == [1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
    assert wait.waits == len(lines) == 7 and "the Agent Identity" in lines[0]
