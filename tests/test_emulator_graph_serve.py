"""``entraclaw emulator serve`` owns its state: another process writes over Graph as the printed admin, serve is
SIGKILLed, and the restarted server still has the object; a second serve on the same state is refused."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from emulator_helpers import cli_env, run_cli, serve, stop_serve
from entraclaw.config import make_session

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals (SIGKILL)")

# The second process: only requests, PyJWT and the files serve printed; no entraclaw import.
_CLIENT = textwrap.dedent(
    """
    import json, sys, time, uuid
    import jwt, requests
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    info = json.loads(sys.argv[1])
    cert = x509.load_pem_x509_certificate(open(info["admin_cert"], "rb").read())
    key = serialization.load_pem_private_key(open(info["admin_key"], "rb").read(), password=None)
    import base64
    x5t = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
    now = int(time.time())
    assertion = jwt.encode(
        {"aud": info["token_endpoint"], "iss": info["admin_app_id"], "sub": info["admin_app_id"],
         "jti": str(uuid.uuid4()), "nbf": now, "iat": now, "exp": now + 600},
        key, algorithm="RS256", headers={"x5t#S256": x5t},
    )
    s = requests.Session()
    s.trust_env = False
    s.verify = info["ca_bundle"]
    token = s.post(info["token_endpoint"], data={
        "client_id": info["admin_app_id"], "grant_type": "client_credentials",
        "scope": "https://graph.microsoft.com/.default",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion}).json()["access_token"]
    auth = {"Authorization": "Bearer " + token}
    if len(sys.argv) > 2:  # find an object by appId instead of creating one
        r = s.get(info["graph_url"] + "/applications", headers=auth,
                  params={"$filter": "appId eq '" + sys.argv[2] + "'"})
        assert r.status_code == 200, r.text
        print(json.dumps(r.json()["value"]))
        sys.exit(0)
    r = s.post(info["graph_url"] + "/applications/microsoft.graph.agentIdentityBlueprint",
               headers={"Authorization": "Bearer " + token},
               json={"displayName": "made by another process",
                     "sponsors@odata.bind": [info["graph_url"] + "/users/" + info["admin_user_id"]]})
    assert r.status_code == 201, r.text
    print(json.dumps(r.json()))
    """
)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_second_process_writes_survive_sigkill_and_the_lock_refuses_a_second_server(tmp_path):
    state = tmp_path / "s.json"
    proc, info = serve("--state", str(state), "--auto-approve", expect="admin_app_id")
    try:
        assert info["ca_bundle"] == str(tmp_path / "s.json.ca.pem")
        assert info["admin_cert"] == str(tmp_path / "s.json.admin-cert.pem")
        assert info["admin_user"].startswith("admin@") and info["admin_client_id"]
        assert info["authority"] == f"{info['base_url']}/{info['tenant_id']}"
        for name in ("admin_key", "admin_cert"):
            assert stat.S_IMODE(os.stat(info[name]).st_mode) == 0o600
        client = subprocess.run(
            [sys.executable, "-c", _CLIENT, json.dumps(info)], capture_output=True, text=True, env=cli_env(), timeout=60
        )
        assert client.returncode == 0, client.stderr
        made = json.loads(client.stdout)

        # The server owns the state file: a second serve on it is refused, naming the file and the pid.
        second = run_cli("serve", "--state", str(state))
        assert second.returncode == 1
        assert str(state) in second.stderr and f"pid {proc.pid}" in second.stderr and "Fix:" in second.stderr
    finally:
        _kill(proc)  # no chance to save at exit: the write must already be on disk

    ca_before = (tmp_path / "s.json.ca.pem").read_bytes()
    proc2, info2 = serve("--state", str(state), expect="admin_app_id")
    try:
        assert info2["tenant_id"] == info["tenant_id"] and info2["admin_app_id"] == info["admin_app_id"]
        assert info2["ca_bundle"] == info["ca_bundle"] and (tmp_path / "s.json.ca.pem").read_bytes() == ca_before
        saved = json.loads(state.read_text())
        assert made["appId"] in {a["appId"] for a in saved["tenant"]["applications"]}
        # And the restarted server serves it over Graph, to the same admin, over the same CA file.
        found = subprocess.run(
            [sys.executable, "-c", _CLIENT, json.dumps(info2), made["appId"]],
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=60,
        )
        assert found.returncode == 0, found.stderr
        assert [a["id"] for a in json.loads(found.stdout)] == [made["id"]]
    finally:
        assert stop_serve(proc2) == 0


def test_device_code_approved_from_another_process(tmp_path):
    proc, info = serve("--state", str(tmp_path / "s.json"), expect="admin_app_id")
    try:
        assert "approve" in info["admin_auth"]
        with make_session(info["ca_bundle"]) as s:
            flow = s.post(
                f"{info['authority']}/oauth2/v2.0/devicecode",
                data={"client_id": info["admin_client_id"], "scope": "User.Read openid"},
            ).json()
            poll = {
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": info["admin_client_id"],
                "device_code": flow["device_code"],
            }
            assert s.post(info["token_endpoint"], data=poll).json()["error"] == "authorization_pending"
            approve = run_cli("approve", flow["user_code"], "--url", info["base_url"], "--ca-bundle", info["ca_bundle"])
            assert approve.returncode == 0, approve.stderr
            token = s.post(info["token_endpoint"], data=poll)
            assert token.status_code == 200, token.text
            assert "id_token" in token.json()
            again = run_cli("approve", flow["user_code"], "--url", info["base_url"], "--ca-bundle", info["ca_bundle"])
            assert again.returncode == 1 and flow["user_code"] in again.stderr and "Fix:" in again.stderr
    finally:
        assert stop_serve(proc) == 0
