"""``entraclaw emulator serve`` as the agent's peer: the seeded people it prints, a colleague who answers
(--auto-reply and the /emulator control routes), throttling armed from another process, and chats and
mail that survive a restart on the same state file. Everything over HTTPS with the printed CA."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import requests

from emulator_helpers import GRAPH, JWT_BEARER, hop2_form, hop3_form, make_assertion, make_cert, serve, stop_serve
from entraclaw.config import make_session

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals (SIGTERM)")


def _agent_token(s: requests.Session, info: dict[str, str], scopes: str) -> tuple[str, str]:
    """Set up an Agent User over Graph as the printed admin, consent ``scopes``, run Hops 1-3: (T3, its id)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from emulator_helpers import Cert, key_item

    key = serialization.load_pem_private_key(Path(info["admin_key"]).read_bytes(), password=None)
    admin = Cert(key, x509.load_pem_x509_certificate(Path(info["admin_cert"]).read_bytes()))  # type: ignore[arg-type]
    tok = info["token_endpoint"]

    def post_token(form: dict[str, str]) -> str:
        r = s.post(tok, data=form, timeout=10)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def cc(app_id: str, cert: Cert, scope: str, **extra: str) -> dict[str, str]:
        return {
            "client_id": app_id,
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": make_assertion(cert, app_id, tok),
            **extra,
        }

    admin_token = post_token(cc(info["admin_app_id"], admin, f"{GRAPH}/.default"))
    g = info["graph_url"]
    auth = {"Authorization": f"Bearer {admin_token}"}
    sponsor = [f"{g}/users/{info['admin_user_id']}"]
    cert = make_cert(21)

    def created(path: str, body: dict) -> dict:
        r = s.post(g + path, json=body, headers=auth, timeout=10)
        assert r.status_code == 201, r.text
        return dict(r.json())

    bp = created(
        "/applications/microsoft.graph.agentIdentityBlueprint", {"displayName": "bp", "sponsors@odata.bind": sponsor}
    )
    assert (
        s.patch(f"{g}/applications/{bp['id']}", json={"keyCredentials": [key_item(cert)]}, headers=auth).status_code
        == 204
    )
    created("/servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal", {"appId": bp["appId"]})
    ai = created(
        "/servicePrincipals/microsoft.graph.agentIdentity",
        {"displayName": "ai", "agentIdentityBlueprintId": bp["appId"], "sponsors@odata.bind": sponsor},
    )
    domain = info["colleague_user"].split("@", 1)[1]
    au = created(
        "/users/microsoft.graph.agentUser",
        {
            "accountEnabled": True,
            "displayName": "Agent",
            "mailNickname": "agent",
            "userPrincipalName": f"agent@{domain}",
            "identityParentId": ai["id"],
        },
    )
    graph_sp = s.get(
        f"{g}/servicePrincipals",
        params={"$filter": "appId eq '00000003-0000-0000-c000-000000000000'"},
        headers=auth,
        timeout=10,
    ).json()["value"][0]["id"]
    created(
        "/oauth2PermissionGrants",
        {
            "clientId": ai["id"],
            "consentType": "Principal",
            "principalId": au["id"],
            "resourceId": graph_sp,
            "scope": scopes,
            # Graph refuses a grant without them (issue 13, upstream Learning #10).
            "startTime": "2026-01-01T00:00:00Z",
            "expiryTime": "2036-01-01T00:00:00Z",
        },
    )
    t1 = post_token(cc(bp["appId"], cert, "api://AzureADTokenExchange/.default", fmi_path=ai["appId"]))
    t2 = post_token(hop2_form(ai["appId"], t1))
    return post_token(hop3_form(ai["appId"], t1, t2, au["id"])), str(au["id"])


def test_serve_colleague_replies_faults_and_state_survives_restart(tmp_path):
    state = tmp_path / "s.json"
    proc, info = serve(
        "--state", str(state), "--auto-reply", "Ack: {text}", "--auto-reply-delay", "1", expect="colleague_user"
    )
    try:
        assert "#EXT#@" in info["guest_user"] and info["external_user"].endswith("@fabrikam.example")
        domain, ext_tid = info["external_tenant"].split()
        with make_session(info["ca_bundle"]) as s:
            token, agent_id = _agent_token(s, info, "Chat.Create Chat.Read ChatMessage.Send Mail.Send Mail.Read")
            g, auth = info["graph_url"], {"Authorization": f"Bearer {token}"}
            people = s.get(f"{info['control_url']}/people", timeout=10).json()
            assert people["colleague"]["id"] == info["colleague_id"] and people["external_tenant"]["id"] == ext_tid
            doc = s.get(f"{info['base_url']}/{domain}/v2.0/.well-known/openid-configuration", timeout=10).json()
            assert doc["issuer"].rstrip("/").split("/")[-2] == ext_tid
            member = "#microsoft.graph.aadUserConversationMember"
            body = {
                "chatType": "oneOnOne",
                "members": [
                    {"@odata.type": member, "roles": ["owner"], "user@odata.bind": f"{GRAPH}/v1.0/users('{agent_id}')"},
                    {
                        "@odata.type": member,
                        "roles": ["owner"],
                        "user@odata.bind": f"{GRAPH}/v1.0/users('{info['colleague_user']}')",
                    },
                ],
            }
            chat = s.post(f"{g}/chats", json=body, headers=auth, timeout=10).json()
            url = f"{g}/chats/{chat['id']}/messages"
            assert s.post(url, json={"body": {"content": "status?"}}, headers=auth, timeout=10).status_code == 201
            deadline = time.monotonic() + 15
            while True:  # the reply is due 1 s (emulator clock = wall clock here) after the post
                newest = s.get(url, headers=auth, timeout=10).json()["value"][0]
                if newest["from"]["user"]["id"] == info["colleague_id"] or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert newest["body"]["content"] == "Ack: status?"
            said = s.post(
                f"{info['control_url']}/chats/{chat['id']}/messages",
                json={"from": info["colleague_user"], "content": "one more thing"},
                timeout=10,
            )
            assert said.status_code == 201
            assert s.get(url, headers=auth, timeout=10).json()["value"][0]["body"]["content"] == "one more thing"
            armed = s.post(
                f"{info['control_url']}/faults",
                json={"kind": "429", "path": "/v1.0/chats/*/messages", "count": 1, "retry_after": 4},
                timeout=10,
            )
            assert armed.status_code == 201, armed.text
            throttled = s.get(url, headers=auth, timeout=10)
            assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "4"
            assert throttled.json()["error"]["code"] == "TooManyRequests"
            mail = s.post(
                f"{info['control_url']}/mail",
                json={
                    "from": info["colleague_user"],
                    "to": [f"agent@{info['colleague_user'].split('@')[1]}"],
                    "subject": "Notes",
                    "content": "see attached",
                },
                timeout=10,
            )
            assert mail.status_code == 202 and mail.json() == {"delivered": 1}
            bad = s.post(f"{info['control_url']}/auto-replies", json={"from": "nobody@nowhere.example"}, timeout=10)
            assert bad.status_code == 404 and bad.json()["error"] == "invalid_request"
        assert stop_serve(proc) == 0
        proc, info = serve("--state", str(state), expect="colleague_user")
        with make_session(info["ca_bundle"]) as s:
            r = s.get(url, headers=auth, timeout=10)
            assert r.status_code == 200, r.text
            assert [m["body"]["content"] for m in r.json()["value"]][:2] == ["one more thing", "Ack: status?"]
            inbox = s.get(f"{g}/me/mailFolders/inbox/messages", headers=auth, timeout=10).json()["value"]
            assert [m["subject"] for m in inbox] == ["Notes"]
    finally:
        stop_serve(proc)
