"""Issue 13, item 4: the admin sign-in asks for what the Agent ID APIs need and refuses what they refuse.

Real tenant (upstream microsoft/entraclaw docs/runbooks/hard-won-learnings.md, Learning #1): a token
carrying ``Directory.AccessAsUser.All`` gets 403 on every Agent ID API. The refusal happens when the
token arrives, before any Graph request, on every sign-in path (they share ``GraphAuth.token``).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from entraclaw.errors import AdminSignInRefusedError
from entraclaw.provisioning.auth import (
    DELEGATED_ADMIN_SCOPES,
    GRAPH_RESOURCE,
    AzureCliAuth,
    DeviceCodeAuth,
    StaticTokenAuth,
)
from entraclaw.provisioning.graph import GraphClient
from provisioning_helpers import Tenant, directory_counts, emulator_tenant, run_cli

REFUSED = "Directory.AccessAsUser.All"


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    yield from emulator_tenant()


def _device_code(tenant: Tenant, scopes: tuple[str, ...] = DELEGATED_ADMIN_SCOPES) -> DeviceCodeAuth:
    tenant.emu.auto_approve = True
    return DeviceCodeAuth(
        authority=tenant.endpoints.authority,
        client_id=tenant.admin.client_id,
        session=tenant.endpoints.session(),
        scopes=scopes,
        echo=lambda _line: None,
        microsoft_authority=False,
    )


def test_device_code_asks_for_add_remove_creds(tenant: Tenant) -> None:
    # https://learn.microsoft.com/graph/api/agentidentityblueprint-addkey : least privileged
    # delegated permission AgentIdentityBlueprint.AddRemoveCreds.All.
    assert f"{GRAPH_RESOURCE}/AgentIdentityBlueprint.AddRemoveCreds.All" in DELEGATED_ADMIN_SCOPES
    token = _device_code(tenant).token()
    scp = jwt.decode(token, options={"verify_signature": False})["scp"].split()
    assert "AgentIdentityBlueprint.AddRemoveCreds.All" in scp and REFUSED not in scp


def test_device_code_token_with_directory_access_as_user_is_refused_before_any_request(tenant: Tenant) -> None:
    auth = _device_code(tenant, (*DELEGATED_ADMIN_SCOPES, f"{GRAPH_RESOURCE}/{REFUSED}"))
    graph = GraphClient(tenant.endpoints.graph_url, auth, session=tenant.endpoints.session())
    with pytest.raises(AdminSignInRefusedError) as info:
        graph.me()
    assert REFUSED in info.value.message and "403" in info.value.message
    assert "--admin-app-id" in info.value.remedy and "--admin-client-id" in info.value.remedy
    assert graph.requests_made == 0


def _token(scp: str) -> str:
    return jwt.encode({"scp": scp, "exp": int(time.time()) + 3600}, "k" * 32, algorithm="HS256")


def test_azure_cli_token_with_directory_access_as_user_is_refused() -> None:
    def runner(argv: list[str]) -> subprocess.CompletedProcess[str]:
        body = {"accessToken": _token(f"{REFUSED} User.Read"), "expires_on": int(time.time()) + 3600}
        return subprocess.CompletedProcess(argv, 0, json.dumps(body), "")

    with pytest.raises(AdminSignInRefusedError) as info:
        AzureCliAuth(tenant="t", az="/usr/bin/az", runner=runner).token()
    assert "Azure CLI" in info.value.message


def test_any_other_sign_in_is_checked_too() -> None:
    with pytest.raises(AdminSignInRefusedError):
        StaticTokenAuth(_token(REFUSED)).token()
    assert StaticTokenAuth(_token("User.Read")).token()


def test_setup_with_an_azure_cli_token_stops_before_any_write(tenant: Tenant, tmp_path: Path) -> None:
    """Through the real CLI: an `az` that hands out a Directory.AccessAsUser.All token."""
    fake = tmp_path / "bin" / "az"
    fake.parent.mkdir()
    body = {"accessToken": _token(f"{REFUSED} Application.ReadWrite.All"), "expires_on": int(time.time()) + 3600}
    fake.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(body))})\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    argv = [a for a in tenant.cli_args(tmp_path / "home")]
    cut = argv.index("--admin-app-id")
    del argv[cut : cut + 6]
    env = {"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    out = run_cli("setup", *argv, "--azure-cli", "--sponsor", tenant.admin.user_upn, env=env)
    assert out.returncode != 0
    assert REFUSED in out.stderr and "--admin-app-id" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert directory_counts(tenant.emu)["blueprints"] == 0
