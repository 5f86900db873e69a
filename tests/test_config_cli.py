"""``entraclaw token`` reads the one configuration: .env in ENTRACLAW_HOME, overridden by env and options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from credential_helpers import JWT_PREFIX_RE, JWT_RE, seed
from entraclaw.auth.certgen import private_key_to_pem
from entraclaw.emulator import Emulator
from entraclaw.platform.dotenv import update_env_file

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def _run(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRACLAW_") or k == "ENTRACLAW_REQUIRE"}
    full_env["ENTRACLAW_HOME"] = str(home)
    full_env["REQUESTS_CA_BUNDLE"] = os.devnull  # ignored by design; ENTRACLAW_CA_BUNDLE is the trust
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "entraclaw", *args], capture_output=True, text=True, timeout=120, env=full_env
    )


def test_token_from_the_env_file_with_scopes_from_config(tmp_path):
    with Emulator() as emu:
        seeded = seed(emu, upn=f"cli-{uuid.uuid4().hex[:8]}@contoso.example")
        home = tmp_path / "state"
        home.mkdir()
        (home / "blueprint.pem").write_bytes(private_key_to_pem(seeded.key))
        update_env_file(
            home / ".env",
            {
                "ENTRACLAW_TENANT_ID": emu.tenant_id,
                "ENTRACLAW_AUTHORITY_HOST": emu.base_url,
                "ENTRACLAW_BLUEPRINT_APP_ID": seeded.blueprint_app_id,
                "ENTRACLAW_AGENT_IDENTITY_ID": seeded.agent_identity_app_id,
                "ENTRACLAW_AGENT_USER_ID": seeded.agent_user_id,
                "ENTRACLAW_BLUEPRINT_CERT_X5T_S256": seeded.signer.x5t_s256,
                "ENTRACLAW_KEY_REF": "file:blueprint.pem",  # relative to the .env's directory
                "ENTRACLAW_SCOPES": GRAPH_SCOPE,
                "ENTRACLAW_CA_BUNDLE": emu.ca_bundle_path,
            },
        )
        out = _run("token", "--json", home=home)
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        assert summary["oid"] == seeded.agent_user_id and summary["idtyp"] == "user"
        # The process environment overrides the file: a UPN option wins over the object id in .env.
        by_upn = _run("token", "--json", "--upn", seeded.agent_user_upn, home=home)
        assert by_upn.returncode == 0, by_upn.stderr
        assert json.loads(by_upn.stdout)["oid"] == seeded.agent_user_id
        broken = _run("token", "--json", home=home, env={"ENTRACLAW_TENANT_ID": "not-a-guid"})
        assert broken.returncode == 1 and "ENTRACLAW_TENANT_ID (process environment)" in broken.stderr
        for text in (out.stdout, out.stderr, by_upn.stderr, broken.stderr):
            assert not JWT_RE.search(text) and not JWT_PREFIX_RE.search(text)


def test_every_problem_in_one_run(tmp_path):
    (tmp_path / ".env").write_text(
        "ENTRACLAW_TENANT_ID=contoso\nENTRACLAW_TENANT_ID=x\nENTRACLAW_BLUEPRINT_CERT_THUMBPRINT=Using TPM...\n"
    )
    out = _run("token", home=tmp_path)
    assert out.returncode == 1
    env_file = tmp_path / ".env"
    for expected in (
        f"{env_file} line 2",  # the duplicate
        f"ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT ({env_file} line 3)",
        f"ENTRACLAW_TENANT_ID ({env_file} line 1)",
        "ENTRACLAW_BLUEPRINT_APP_ID (not set)",
        "ENTRACLAW_KEY_REF (not set)",
        "--emulator",
    ):
        assert expected in out.stderr, expected
