"""Helpers for the provisioning tests: an emulator with its admin, a Graph client as that admin, the CLI.

Setup runs through the same code a real tenant gets: the emulator's Graph
Agent ID API over HTTPS, the admin signing in with the provisioner app's
certificate files (``emu.admin``), keys in owner-only PEM files
(``--key-storage file``) so separate processes share them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from entraclaw.emulator import Emulator
from entraclaw.provisioning.auth import ClientCertificateAuth
from entraclaw.provisioning.context import Endpoints
from entraclaw.provisioning.graph import GraphClient
from entraclaw.provisioning.keys import open_device_key
from entraclaw.provisioning.setup import Setup, SetupOptions
from entraclaw.provisioning.smoke import ChainResult, run_chain
from entraclaw.provisioning.state import read_device_config

HAVE_GRAPH_AGENT_API = hasattr(Emulator, "admin")
needs_graph_api = pytest.mark.skipif(
    not HAVE_GRAPH_AGENT_API, reason="the emulator's Graph Agent ID API (stream graph-emu) has not landed"
)


@dataclass
class Tenant:
    emu: Emulator
    endpoints: Endpoints

    @property
    def admin(self) -> Any:
        return self.emu.admin

    def graph(self) -> GraphClient:
        admin = self.admin
        auth = ClientCertificateAuth.from_files(
            authority=self.endpoints.authority,
            client_id=admin.app_id,
            cert_path=admin.cert_path,
            key_path=admin.key_path,
            session=self.endpoints.session(),
        )
        return GraphClient(self.endpoints.graph_url, auth, session=self.endpoints.session())

    def options(self, home: Path, **overrides: Any) -> SetupOptions:
        values: dict[str, Any] = {
            "endpoints": self.endpoints,
            "key_storage": "file",
            "state_dir": home,
            "sponsor_ids": (self.admin.user_upn,),
            "propagation_timeout": 20.0,
        }
        values.update(overrides)
        return SetupOptions(**values)

    def setup(self, home: Path, *, echo: Any = None, **overrides: Any) -> Setup:
        lines: list[str] = []
        return Setup(self.options(home, **overrides), self.graph(), echo=echo or lines.append)

    def cli_args(self, home: Path) -> list[str]:
        admin = self.admin
        return [
            "--tenant", self.emu.tenant_id,
            "--authority-host", self.emu.base_url,
            "--graph-url", self.emu.graph_url,
            "--ca-bundle", self.endpoints.ca_bundle or "",
            "--admin-app-id", admin.app_id,
            "--admin-cert", admin.cert_path,
            "--admin-key", admin.key_path,
            "--state-dir", str(home),
        ]


def make_tenant(emu: Emulator) -> Tenant:
    endpoints = Endpoints(
        tenant_id=emu.tenant_id,
        authority_host=emu.base_url,
        graph_url=emu.graph_url,
        ca_bundle=emu.ca_bundle_path,
    )
    return Tenant(emu, endpoints)


def emulator_tenant() -> Iterator[Tenant]:
    """Body of each module's ``tenant`` fixture: a fresh emulator and its admin."""
    if not HAVE_GRAPH_AGENT_API:
        pytest.skip("the emulator's Graph Agent ID API (stream graph-emu) has not landed")
    with Emulator() as emu:
        yield make_tenant(emu)


def chain_from_config(home: Path) -> ChainResult:
    """Hops 1-3 and /me with whatever the device config names now (the device's view)."""
    config = read_device_config(home / ".env", environ={})
    from entraclaw.provisioning.rotate import endpoints_from_config

    key = open_device_key(config["ENTRACLAW_KEY_REF"])
    try:
        return run_chain(
            endpoints_from_config(config),
            blueprint_app_id=config["ENTRACLAW_BLUEPRINT_APP_ID"],
            agent_identity_app_id=config["ENTRACLAW_AGENT_IDENTITY_ID"],
            agent_user_id=config["ENTRACLAW_AGENT_USER_ID"],
            signer=key.signer,
        )
    finally:
        key.close()


def run_cli(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRACLAW_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "entraclaw", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )


def directory_counts(emu: Emulator, *, blueprint_name: str = "entraclaw Agent Blueprint") -> dict[str, int]:
    """How many of each object setup creates exist, read through Graph as the admin."""
    t = make_tenant(emu)
    graph = t.graph()
    blueprints = graph.find_blueprints(display_name=blueprint_name)
    identities = graph.find_agent_identities("entraclaw Agent Identity")
    principals = [graph.find_service_principal(b.app_id) for b in blueprints]
    agent_users = [u for u in (graph.find_agent_user(f"entraclaw-agent@{graph.default_domain()}"),) if u is not None]
    grants = [g for i in identities for g in graph.find_permission_grants(i.object_id)]
    return {
        "blueprints": len(blueprints),
        "principals": sum(1 for p in principals if p is not None),
        "agent_identities": len(identities),
        "agent_users": len(agent_users),
        "grants": len(grants),
    }


# --- `entraclaw setup` against `entraclaw emulator serve` in a subprocess --------------------------


def serve_env() -> dict[str, str]:
    """The environment for a served emulator: none of the caller's ENTRACLAW_* settings, and no
    REQUESTS_CA_BUNDLE (it would win over the bundle the emulator prints)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRACLAW_")}
    env.pop("REQUESTS_CA_BUNDLE", None)
    return env


def admin_argv(info: dict[str, str]) -> list[str]:
    """`entraclaw setup`'s endpoint and admin-credential flags for the emulator whose ``serve`` printed ``info``."""
    return [
        "--tenant", info["tenant_id"],
        "--authority-host", info["authority"].rsplit("/", 1)[0],
        "--graph-url", info["graph_url"],
        "--ca-bundle", info["ca_bundle"],
        "--admin-app-id", info["admin_app_id"],
        "--admin-cert", info["admin_cert"],
        "--admin-key", info["admin_key"],
    ]  # fmt: skip
