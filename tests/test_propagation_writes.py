"""Writes during propagation: the emulator answers as real Entra does, setup waits them out.

Sources: the Agent ID FAQ (``400 Object with id {id} not found`` for sequential creates), upstream
microsoft/entraclaw ``scripts/create_entra_agent_ids.py`` and ``docs/runbooks/hard-won-learnings.md``
(``Principal was not found``, ``AgentIdentity_AgentBlueprintPrincipalDoesNotExist``, ``does not exist``),
``docs/reference/agent-foundry-create-entra-agent-ids.py`` (``Permission being assigned was not found``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator_helpers import make_cert, serve, stop_serve
from entraclaw.auth.thumbprint import compute_sha1_thumbprint
from entraclaw.errors import GraphRequestError
from entraclaw.provisioning.fleet import register_by_patch
from entraclaw.provisioning.propagation import PropagationWait, is_propagation_error
from entraclaw.provisioning.setup import Setup
from provisioning_helpers import Tenant, admin_argv, chain_from_config, emulator_tenant, run_cli, serve_env


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    yield from emulator_tenant()


def _graph_error(status: int, code: str, text: str) -> GraphRequestError:
    return GraphRequestError(
        f"Graph call (POST https://graph.example/v1.0/x) failed: HTTP {status} {code}: {text}.",
        remedy="Re-run.",
        http_status=status,
        code=code,
    )


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("Request_BadRequest", "Object with id 6d0c2a77-0b7e-4f37-9a44-5d8c3c1f2e10 not found"),
        ("Request_BadRequest", "Principal was not found"),
        ("Request_BadRequest", "Permission being assigned was not found on application"),
        ("AgentIdentity_AgentBlueprintPrincipalDoesNotExist", "The required principal is missing"),
        ("Request_BadRequest", "The Agent Blueprint Principal for the Agent Blueprint does not exist"),
    ],
)
def test_the_one_rule_counts_every_propagation_answer_real_entra_gives(code: str, text: str) -> None:
    assert is_propagation_error(_graph_error(400, code, text))


@pytest.mark.parametrize(
    ("status", "code", "text"),
    [
        (400, "Request_BadRequest", "Property 'foo' does not exist on type 'microsoft.graph.application'"),
        (400, "Request_BadRequest", "Another object with the same value for property userPrincipalName already exists"),
        (403, "Authorization_RequestDenied", "Object with id x not found"),
    ],
)
def test_the_rule_does_not_wait_on_errors_that_do_not_heal(status: int, code: str, text: str) -> None:
    assert not is_propagation_error(_graph_error(status, code, text))


def _refused(call: object, text: str) -> GraphRequestError:
    with pytest.raises(GraphRequestError) as info:
        call()  # type: ignore[operator]
    assert info.value.http_status == 400, info.value  # type: ignore[attr-defined]
    assert text in str(info.value), info.value
    assert is_propagation_error(info.value)
    return info.value


def test_each_dependent_write_on_an_object_still_propagating_gets_entras_400(tenant: Tenant) -> None:
    emu = tenant.emu
    emu.propagation_delay = 30
    graph = tenant.graph()
    sponsor = tenant.admin.user_upn
    sponsor_id = graph.find_user(sponsor).object_id  # type: ignore[union-attr]
    bp = graph.create_blueprint("propagating", sponsor_ids=(sponsor_id,))
    # The first-run PATCH keyCredentials and the principal, right after the create.
    _refused(lambda: graph.patch_key_credentials(bp.object_id, []), f"Object with id {bp.object_id} not found")
    _refused(lambda: graph.create_blueprint_principal(bp.app_id), f"Object with id {bp.app_id} not found")
    emu.advance_clock(31)
    graph.patch_key_credentials(bp.object_id, [])
    graph.create_blueprint_principal(bp.app_id)
    _refused(
        lambda: graph.create_agent_identity("ai", bp.app_id, sponsor_ids=(sponsor_id,)),
        "AgentIdentity_AgentBlueprintPrincipalDoesNotExist",
    )
    emu.advance_clock(31)
    ai = graph.create_agent_identity("ai", bp.app_id, sponsor_ids=(sponsor_id,))
    upn = f"prop@{graph.default_domain()}"
    _refused(lambda: graph.create_agent_user(upn, "prop", ai.object_id), f"Object with id {ai.object_id} not found")
    emu.advance_clock(31)
    user = graph.create_agent_user(upn, "prop", ai.object_id)
    graph_sp = graph.find_service_principal("00000003-0000-0000-c000-000000000000")
    assert graph_sp is not None

    def grant() -> object:
        return graph.create_permission_grant(
            client_id=ai.object_id, resource_id=graph_sp.object_id, scopes=["User.Read"], principal_id=user.object_id
        )

    _refused(grant, "Principal was not found")
    emu.advance_clock(31)
    grant()


def test_setup_waits_out_every_dependent_write_with_a_30s_propagation_delay(tenant: Tenant, tmp_path: Path) -> None:
    # The setup's sleeps move the emulator's clock: Entra's 30 s lag without 30 s of wall time.
    tenant.emu.propagation_delay = 30
    lines: list[str] = []
    home = tmp_path / "d"
    setup = Setup(
        tenant.options(home, propagation_timeout=180.0),
        tenant.graph(),
        echo=lines.append,
        sleep=tenant.emu.advance_clock,
    )
    result = setup.run()
    assert result.completed, lines
    waits = result.waits
    # Each create under a new parent waited (the certificate PATCH comes after the principal's wait:
    # by then the Blueprint has propagated; the next test holds it back).
    for step in ("blueprint_principal", "agent_identity", "agent_user", "consent"):
        assert waits.get(step, 0) >= 1, (step, waits, lines)
    assert sum(waits.values()) == sum("to propagate" in line for line in lines)
    assert chain_from_config(home).me_upn


def test_the_first_run_patch_of_a_new_blueprints_certificate_waits_for_it(tenant: Tenant) -> None:
    cert = make_cert(0, cn="fresh")  # made first: nothing slow between the create and the PATCH
    tenant.emu.propagation_delay = 30
    graph = tenant.graph()
    sponsor_id = graph.find_user(tenant.admin.user_upn).object_id  # type: ignore[union-attr]
    bp = graph.create_blueprint("fresh", sponsor_ids=(sponsor_id,))
    body = {"type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(cert.der).decode()}
    lines: list[str] = []
    wait = PropagationWait(timeout=120, echo=lines.append, sleep=tenant.emu.advance_clock)
    sha1 = compute_sha1_thumbprint(cert.der)
    assert register_by_patch(graph, bp, body, sha1, wait=wait, contended=False, known=[]) == 1
    assert wait.retries["certificate"] >= 1 and any(f"Blueprint {bp.app_id}" in line for line in lines), lines
    assert [c.sha1 for c in graph.key_credentials(bp.object_id)] == [sha1]


@pytest.mark.slow
def test_cli_setup_against_serve_with_propagation_delay_30_converges_and_prints_its_waits(tmp_path: Path) -> None:
    proc, info = serve(
        "--state", str(tmp_path / "s.json"), "--propagation-delay", "30", env=serve_env(), cwd=tmp_path
    )  # fmt: skip
    try:
        argv = [
            *admin_argv(info),
            "--sponsor", info["admin_user"],
            "--key-storage", "file",
            "--propagation-timeout", "240",
        ]  # fmt: skip
        home = {"ENTRACLAW_HOME": str(tmp_path / "home")}
        done = run_cli("setup", *argv, env=home, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "waiting for" in done.stdout and "to propagate" in done.stdout, done.stdout
        summary = [line for line in done.stdout.splitlines() if line.startswith("propagation waits: ")]
        assert len(summary) == 1 and "agent_identity" in summary[0], done.stdout
        assert "Traceback" not in done.stderr
        assert run_cli("token", env=home).returncode == 0
    finally:
        stop_serve(proc)
