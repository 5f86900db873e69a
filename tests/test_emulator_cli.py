"""``entraclaw emulator serve`` as a real subprocess: prints its coordinates, serves, stops on SIGTERM."""

from __future__ import annotations

import json
import sys

import pytest

from emulator_helpers import run_cli, serve, stop_serve
from entraclaw.config import make_session

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signal semantics (SIGTERM)")


def test_serve_prints_url_serves_discovery_and_exits_on_sigterm(tmp_path):
    state = tmp_path / "state.json"
    proc, info = serve("--port", "0", "--state", str(state))
    try:
        assert info["base_url"].startswith("https://127.0.0.1:")
        with make_session(info["ca_path"]) as s:
            r = s.get(
                f"{info['base_url']}/{info['tenant_id']}/v2.0/.well-known/openid-configuration",
                timeout=10,
            )
        assert r.status_code == 200
        assert r.json()["token_endpoint"] == info["token_endpoint"]
        assert state.exists()  # saved at start, so other processes can read the tenant at once
    finally:
        code = stop_serve(proc)
    assert code == 0
    saved = json.loads(state.read_text())
    assert saved["tenant_id"] == info["tenant_id"]

    # A restart from the same state keeps the tenant and the CA.
    ca_out = tmp_path / "ca.pem"
    proc2, info2 = serve("--state", str(state), "--ca-out", str(ca_out))
    try:
        assert info2["tenant_id"] == info["tenant_id"]
        assert info2["ca_path"] == str(ca_out)
        assert ca_out.read_text() == saved["ca"]["cert_pem"]
    finally:
        assert stop_serve(proc2) == 0


def test_serve_refuses_non_loopback_host():
    proc = run_cli("serve", "--host", "0.0.0.0")
    assert proc.returncode == 1
    assert "0.0.0.0" in proc.stderr and "loopback" in proc.stderr


def test_serve_reports_damaged_state(tmp_path):
    bad = tmp_path / "state.json"
    bad.write_text("{nope")
    proc = run_cli("serve", "--state", str(bad))
    assert proc.returncode == 1
    assert str(bad) in proc.stderr and "Fix:" in proc.stderr


def test_serve_reports_a_tenant_id_that_is_not_a_guid():
    proc = run_cli("serve", "--tenant-id", "contoso")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "'contoso'" in proc.stderr and "GUID" in proc.stderr and "Fix:" in proc.stderr
