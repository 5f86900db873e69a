"""Issue 10's acceptance run, in three processes, from a fresh state directory.

1. ``entraclaw emulator serve --state s.json`` (prints the admin identity);
2. ``entraclaw setup`` against it as that admin, with ``ENTRACLAW_HOME`` a fresh
   directory and ``ENTRACLAW_CA_BUNDLE`` the printed CA;
3. ``entraclaw token`` and ``entraclaw doctor`` from the config setup wrote: green.
Then ``entraclaw rotate --force`` and ``entraclaw token`` again.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from emulator_helpers import serve
from provisioning_helpers import HAVE_GRAPH_AGENT_API, run_cli

pytestmark = pytest.mark.skipif(
    not HAVE_GRAPH_AGENT_API, reason="the emulator's Graph Agent ID API (stream graph-emu) has not landed"
)


def _serve(state: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    # No ENTRACLAW_* from the outer run: the served tenant is configured only by its state file.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRACLAW_")}
    return serve("--state", str(state), expect="admin_app_id", env=env)


@pytest.mark.parametrize("storage", ["file", "keystore"])
def test_serve_setup_token_doctor_rotate(tmp_path: Path, storage: str) -> None:
    if storage == "keystore":
        # The key in the real OS keystore (Secret Service), as `--key-storage auto` picks on Linux.
        from keystore_helpers import require_secret_service

        require_secret_service()
    proc, info = _serve(tmp_path / "s.json")
    try:
        for key in ("authority", "tenant_id", "graph_url", "ca_bundle", "admin_app_id", "admin_cert", "admin_key"):
            assert info.get(key), (key, info)
        home = tmp_path / "home"
        env = {"ENTRACLAW_HOME": str(home), "ENTRACLAW_CA_BUNDLE": info["ca_bundle"]}
        authority_host = info["authority"].rsplit("/", 1)[0]
        admin = [
            "--tenant",
            info["tenant_id"],
            "--authority-host",
            authority_host,
            "--graph-url",
            info["graph_url"],
            "--admin-app-id",
            info["admin_app_id"],
            "--admin-cert",
            info["admin_cert"],
            "--admin-key",
            info["admin_key"],
        ]
        storage_args = ["--key-storage", "file"] if storage == "file" else []
        setup = run_cli("setup", *admin, "--sponsor", info["admin_user"], *storage_args, env=env)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        assert "OK: setup complete" in setup.stdout
        lines = (home / ".env").read_text().splitlines()
        key_ref = next(line for line in lines if line.startswith("ENTRACLAW_KEY_REF"))
        assert key_ref.split("=", 1)[1].strip('"').startswith(f"{storage}:")
        assert "eyJ" not in setup.stdout + setup.stderr  # no token printed

        token = run_cli("token", "--scope", "https://graph.microsoft.com/.default", "--json", env=env)
        assert token.returncode == 0, token.stdout + token.stderr
        claims = json.loads(token.stdout)
        assert claims.get("idtyp") == "user" or claims.get("upn") or claims.get("oid"), claims

        doctor = run_cli("doctor", "--json", env=env)
        report = json.loads(doctor.stdout)
        assert doctor.returncode == 0, json.dumps(report, indent=2)
        assert report["healthy"] is True

        rotate = run_cli("rotate", *admin, "--force", env=env)
        assert rotate.returncode == 0, rotate.stdout + rotate.stderr
        assert "OK: rotated" in rotate.stdout
        again = run_cli("token", "--scope", "https://graph.microsoft.com/.default", "--json", env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert run_cli("doctor", env=env).returncode == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
