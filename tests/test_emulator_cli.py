"""``entraclaw emulator serve`` as a real subprocess: prints its coordinates, serves, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest
import requests

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signal semantics (SIGTERM)")


def _start(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = dict(os.environ)
    env.pop("REQUESTS_CA_BUNDLE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "entraclaw", "emulator", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    info: dict[str, str] = {}
    timer = threading.Timer(60, proc.kill)  # a hung child must not hang the suite
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ready"):
                break
            key, _, value = line.strip().partition(" ")
            info[key] = value.strip()
    finally:
        timer.cancel()
    assert "base_url" in info, proc.stderr.read() if proc.stderr else ""
    return proc, info


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_prints_url_serves_discovery_and_exits_on_sigterm(tmp_path):
    state = tmp_path / "state.json"
    proc, info = _start("--port", "0", "--state", str(state))
    try:
        assert info["base_url"].startswith("https://127.0.0.1:")
        with requests.Session() as s:
            s.trust_env = False
            r = s.get(
                f"{info['base_url']}/{info['tenant_id']}/v2.0/.well-known/openid-configuration",
                verify=info["ca_path"],
                timeout=10,
            )
        assert r.status_code == 200
        assert r.json()["token_endpoint"] == info["token_endpoint"]
        assert state.exists()  # saved at start, so other processes can read the tenant at once
    finally:
        code = _stop(proc)
    assert code == 0
    saved = json.loads(state.read_text())
    assert saved["tenant_id"] == info["tenant_id"]

    # A restart from the same state keeps the tenant and the CA.
    ca_out = tmp_path / "ca.pem"
    proc2, info2 = _start("--state", str(state), "--ca-out", str(ca_out))
    try:
        assert info2["tenant_id"] == info["tenant_id"]
        assert info2["ca_path"] == str(ca_out)
        assert ca_out.read_text() == saved["ca"]["cert_pem"]
    finally:
        assert _stop(proc2) == 0


def test_serve_refuses_non_loopback_host():
    proc = subprocess.run(
        [sys.executable, "-m", "entraclaw", "emulator", "serve", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "0.0.0.0" in proc.stderr and "loopback" in proc.stderr


def test_serve_reports_damaged_state(tmp_path):
    bad = tmp_path / "state.json"
    bad.write_text("{nope")
    proc = subprocess.run(
        [sys.executable, "-m", "entraclaw", "emulator", "serve", "--state", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert str(bad) in proc.stderr and "Fix:" in proc.stderr


def test_serve_reports_a_tenant_id_that_is_not_a_guid():
    proc = subprocess.run(
        [sys.executable, "-m", "entraclaw", "emulator", "serve", "--tenant-id", "contoso"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "'contoso'" in proc.stderr and "GUID" in proc.stderr and "Fix:" in proc.stderr
