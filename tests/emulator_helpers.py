"""Fixtures and helpers for the emulator tests: a seeded tenant, assertion builders, Entra error checks.

Assertions are built with PyJWT (independent of entraclaw's own encoder) unless
a test says otherwise; every token the emulator issues is verified with PyJWT
against ``emu.signing_public_key``.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from entraclaw.auth.certgen import generate_rsa_key, private_key_to_pem, self_signed_certificate
from entraclaw.auth.thumbprint import compute_cert_thumbprint, compute_sha1_thumbprint
from entraclaw.emulator import Emulator
from entraclaw.emulator.tenant import AgentIdentity, AgentUser, Application

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"
EXCHANGE_AUD = "fb60f99c-7a34-4190-8149-302f77469936"
GRAPH = "https://graph.microsoft.com"
GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Cert:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return private_key_to_pem(self.key)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def x5t_s256(self) -> str:
        return compute_cert_thumbprint(self.der)

    @property
    def x5t(self) -> str:
        import base64

        return base64.urlsafe_b64encode(bytes.fromhex(compute_sha1_thumbprint(self.der))).rstrip(b"=").decode()


_KEYS: list[rsa.RSAPrivateKey] = []


def _key(index: int) -> rsa.RSAPrivateKey:
    # RSA keygen is the slowest thing in these tests; share keys across the session.
    while len(_KEYS) <= index:
        _KEYS.append(generate_rsa_key())
    return _KEYS[index]


def make_cert(
    index: int = 0, *, cn: str = "blueprint", days: int = 365, not_before: _dt.datetime | None = None
) -> Cert:
    key = _key(index)
    return Cert(key, self_signed_certificate(key, f"{cn}-{index}", days=days, not_before=not_before))


@dataclass
class Seeded:
    emu: Emulator
    cert: Cert
    other_cert: Cert
    bp: Application
    ai: AgentIdentity
    au: AgentUser
    bp2: Application
    ai2: AgentIdentity
    au2: AgentUser

    # --- requests ----------------------------------------------------------------------

    def post_token(self, data: dict[str, str], headers: dict[str, str] | None = None) -> requests.Response:
        return post_token(self.emu, data, headers)

    def assertion(self, client_id: str | None = None, cert: Cert | None = None, **kw: Any) -> str:
        return make_assertion(
            cert or self.cert, client_id or self.bp.app_id, self.emu.token_endpoint, now=self.emu.clock(), **kw
        )

    def hop1_form(self, assertion: str | None = None, **extra: str) -> dict[str, str]:
        form = hop1_form(self.bp.app_id, assertion if assertion is not None else self.assertion(), self.ai.app_id)
        form.update(extra)
        return form

    def t1(self, ai: AgentIdentity | None = None, bp: Application | None = None, cert: Cert | None = None) -> str:
        ai, bp = ai or self.ai, bp or self.bp
        form = self.hop1_form(self.assertion(bp.app_id, cert), client_id=bp.app_id, fmi_path=ai.app_id)
        r = self.post_token(form)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def hop2_form(self, t1: str, ai: AgentIdentity | None = None, **extra: str) -> dict[str, str]:
        form = hop2_form((ai or self.ai).app_id, t1)
        form.update(extra)
        return form

    def t2(self, t1: str | None = None, ai: AgentIdentity | None = None) -> str:
        r = self.post_token(self.hop2_form(t1 or self.t1(ai), ai))
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def hop3_form(
        self, t1: str, t2: str, ai: AgentIdentity | None = None, *, msal_style: bool = True, **extra: str
    ) -> dict[str, str]:
        form = {
            "client_id": (ai or self.ai).app_id,
            "grant_type": "user_fic",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": t1,
            "user_federated_identity_credential": t2,
        }
        if msal_style:
            form.update(
                scope=f"{GRAPH}/.default openid profile offline_access", user_id=self.au.object_id, client_info="1"
            )
        else:
            form.update(scope=f"{GRAPH}/.default", user_id=self.au.object_id, requested_token_use="on_behalf_of")
        form.update(extra)
        return form

    def graph_app_token(self, app: Application, cert: Cert) -> str:
        return app_token(self.emu, app.app_id, cert)


# --- token requests ------------------------------------------------------------------------------


def post_token(emu: Emulator, data: dict[str, str], headers: dict[str, str] | None = None) -> requests.Response:
    with emu.session() as s:
        return s.post(emu.token_endpoint, data=data, headers=headers or {}, timeout=10)


def hop1_form(bp_app_id: str, assertion: str, fmi_path: str) -> dict[str, str]:
    """Hop 1: the Blueprint's certificate assertion, asking for T1 for the Agent Identity ``fmi_path``."""
    return {
        "client_id": bp_app_id,
        "grant_type": "client_credentials",
        "scope": EXCHANGE_SCOPE,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
        "fmi_path": fmi_path,
    }


def hop2_form(identity_app_id: str, t1: str) -> dict[str, str]:
    """Hop 2: the Agent Identity presents T1, asking for T2."""
    return {
        "client_id": identity_app_id,
        "grant_type": "client_credentials",
        "scope": EXCHANGE_SCOPE,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": t1,
    }


def hop3_form(identity_app_id: str, t1: str, t2: str, user_id: str) -> dict[str, str]:
    """Hop 3 (user_fic): the Agent Identity presents T1 and T2, asking for T3 of ``user_id`` for Graph."""
    return {
        "client_id": identity_app_id,
        "grant_type": "user_fic",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": t1,
        "user_federated_identity_credential": t2,
        "scope": f"{GRAPH}/.default",
        "user_id": user_id,
    }


def hop1(emu: Emulator, bp_app_id: str, cert: Cert, fmi_path: str) -> requests.Response:
    assertion = make_assertion(cert, bp_app_id, emu.token_endpoint, now=emu.clock())
    return post_token(emu, hop1_form(bp_app_id, assertion, fmi_path))


def hop2(emu: Emulator, identity_app_id: str, t1: str) -> requests.Response:
    return post_token(emu, hop2_form(identity_app_id, t1))


def client_credentials(emu: Emulator, app_id: str, cert: Cert) -> requests.Response:
    """An app-only Graph token request for ``app_id`` (client credentials with a certificate assertion)."""
    form = {
        "client_id": app_id,
        "grant_type": "client_credentials",
        "scope": f"{GRAPH}/.default",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": make_assertion(cert, app_id, emu.token_endpoint, now=emu.clock()),
    }
    return post_token(emu, form)


def make_assertion(
    cert: Cert,
    client_id: str,
    audience: str,
    *,
    now: float | None = None,
    lifetime: int = 600,
    nbf_offset: int = 0,
    alg: str = "RS256",
    thumbprint: str = "S256",
    claims: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    headers: dict[str, Any] | None = None,
    signing_key: rsa.RSAPrivateKey | None = None,
) -> str:
    """A client assertion signed with PyJWT; every part can be bent for negative tests."""
    issued = int(time.time() if now is None else now)
    body: dict[str, Any] = {
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "iat": issued,
        "nbf": issued + nbf_offset,
        "exp": issued + nbf_offset + lifetime,
    }
    body.update(claims or {})
    for name in drop:
        body.pop(name, None)
    head: dict[str, Any] = {"typ": "JWT"}
    if thumbprint in ("S256", "both"):
        head["x5t#S256"] = cert.x5t_s256
    if thumbprint in ("x5t", "both"):
        head["x5t"] = cert.x5t
    head.update(headers or {})
    return jwt.encode(body, signing_key or cert.key, algorithm=alg, headers=head)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """A running, empty emulator of the test's own."""
    with Emulator() as e:
        yield e


def seed(emu: Emulator) -> Seeded:
    cert, other = make_cert(0), make_cert(1)
    bp = emu.tenant.add_blueprint("Blueprint A", certificates=[cert.cert])
    ai = emu.tenant.add_agent_identity(bp.app_id, "Agent Identity A")
    au = emu.tenant.add_agent_user(ai.app_id, "agent-a@contoso.test", "Agent A")
    emu.tenant.grant_consent(ai.app_id, resource=GRAPH, scopes=["User.Read"])
    bp2 = emu.tenant.add_blueprint("Blueprint B", certificates=[other.cert])
    ai2 = emu.tenant.add_agent_identity(bp2.app_id, "Agent Identity B")
    au2 = emu.tenant.add_agent_user(ai2.app_id, "agent-b@contoso.test", "Agent B")
    emu.tenant.grant_consent(ai2.app_id, resource=GRAPH, scopes=["User.Read"])
    return Seeded(emu, cert, other, bp, ai, au, bp2, ai2, au2)


@pytest.fixture(scope="module")
def seeded() -> Iterator[Seeded]:
    """One running, seeded emulator per test module (tests must not change its tenant)."""
    with Emulator() as emu:
        yield seed(emu)


@pytest.fixture
def fresh() -> Iterator[Seeded]:
    """A seeded emulator of the test's own, for tests that change keys, consent, clock or faults."""
    with Emulator() as emu:
        yield seed(emu)


@pytest.fixture
def world() -> Iterator[tuple[Seeded, str]]:
    """A seeded emulator of the test's own with its workspace (colleagues, the guest, the external tenant)
    and a T3 of Agent User A for the chat, mail and user-lookup scopes (a module may define its own ``world``)."""
    with Emulator() as emu:
        s = seed(emu)
        emu.people  # noqa: B018 - seeds the colleagues, the guest and the external tenant
        yield s, agent_user_token(s)


@pytest.fixture
def grant_body(fresh: Seeded) -> Callable[..., dict[str, Any]]:
    """A POST /oauth2PermissionGrants body for Agent User A's consent to Graph; keyword arguments replace
    properties, and a property given as None is left out."""

    def build(**over: Any) -> dict[str, Any]:
        body = {
            "clientId": fresh.ai.object_id,
            "consentType": "Principal",
            "principalId": fresh.au.object_id,
            "resourceId": fresh.emu.tenant.graph_sp.object_id,
            "scope": "User.Read Mail.Read",
            # Graph refuses a grant without them (upstream hard-won-learnings #10).
            "startTime": "2026-01-01T00:00:00Z",
            "expiryTime": "2036-01-01T00:00:00Z",
        }
        body.update(over)
        return {k: v for k, v in body.items() if v is not None}

    return build


def assert_sts_error(
    response: requests.Response,
    code: int,
    error: str,
    *,
    status: int | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """The response is Entra's error JSON for AADSTS``code``."""
    expected_status = status if status is not None else (401 if error == "invalid_client" else 400)
    assert response.status_code == expected_status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}: "), body["error_description"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", body["timestamp"])
    assert GUID_RE.match(body["trace_id"])
    if correlation_id is None:
        assert GUID_RE.match(body["correlation_id"])
    else:
        assert body["correlation_id"] == correlation_id
    assert f"Trace ID: {body['trace_id']}" in body["error_description"]
    assert f"Correlation ID: {body['correlation_id']}" in body["error_description"]
    return dict(body)


def verify_token(emu: Emulator, token: str, audience: str) -> dict[str, Any]:
    """Decode an emulator-issued token with PyJWT against the published signing key."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == emu.signing_key_id
    claims = jwt.decode(
        token,
        emu.signing_public_key,
        algorithms=["RS256"],
        audience=audience,
        issuer=emu.issuer,
        options={"require": ["exp", "nbf", "iat", "aud", "iss", "sub"]},
        leeway=0,
    )
    assert claims["tid"] == emu.tenant_id
    return dict(claims)


# --- Graph (Agent ID API) helpers --------------------------------------------------------------

GRAPH_APP = "00000003-0000-0000-c000-000000000000"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def admin_cert(emu: Emulator) -> Cert:
    admin = emu.admin
    return Cert(admin.key, admin.cert)


def app_token(emu: Emulator, app_id: str, cert: Cert) -> str:
    """An app-only Graph token for ``app_id`` (client credentials with a certificate assertion)."""
    r = client_credentials(emu, app_id, cert)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def admin_token(emu: Emulator) -> str:
    return app_token(emu, emu.admin.app_id, admin_cert(emu))


def device_token(emu: Emulator, scopes: str) -> str:
    """A delegated Graph token for the admin user through the raw device-code protocol."""
    admin = emu.admin
    with emu.session() as s:
        r = s.post(
            f"{emu.authority}/oauth2/v2.0/devicecode", data={"client_id": admin.client_id, "scope": scopes}, timeout=10
        )
        assert r.status_code == 200, r.text
        flow = r.json()
        ok = s.post(f"{emu.base_url}/devicelogin", data={"user_code": flow["user_code"]}, timeout=10)
        assert ok.status_code == 200, ok.text
        t = s.post(
            emu.token_endpoint,
            data={"grant_type": DEVICE_GRANT, "client_id": admin.client_id, "device_code": flow["device_code"]},
            timeout=10,
        )
    assert t.status_code == 200, t.text
    return str(t.json()["access_token"])


def graph_call(emu: Emulator, method: str, path: str, token: str | None = None, **kw: Any) -> requests.Response:
    headers = dict(kw.pop("headers", {}) or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = path if path.startswith("https://") else f"{emu.graph_url}{path}"
    with emu.session() as s:
        return s.request(method, url, headers=headers, timeout=10, **kw)


def assert_graph_error(r: requests.Response, status: int, code: str) -> dict[str, Any]:
    """Graph's error body: code, message and innerError with date, request-id and client-request-id."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    assert err["message"]
    assert set(err["innerError"]) == {"date", "request-id", "client-request-id"}
    assert GUID_RE.match(err["innerError"]["request-id"])
    return dict(err)


def make_proof(
    cert: Cert,
    app_object_id: str,
    *,
    now: float,
    aud: str = "00000002-0000-0000-c000-000000000000",
    lifetime: int = 600,
    nbf_offset: int = 0,
    signing_key: rsa.RSAPrivateKey | None = None,
    thumbprint: str = "x5t",
    drop: tuple[str, ...] = (),
) -> str:
    """A proof-of-possession JWT for addKey/removeKey as Graph's rollkey page describes it."""
    nbf = int(now) + nbf_offset
    body: dict[str, Any] = {"aud": aud, "iss": app_object_id, "nbf": nbf, "exp": nbf + lifetime}
    for name in drop:
        body.pop(name, None)
    head: dict[str, Any] = {"typ": "JWT"}
    if thumbprint == "x5t":
        head["x5t"] = cert.x5t
    elif thumbprint == "kid":
        head["kid"] = cert.x5t
    else:
        head["x5t#S256"] = cert.x5t_s256
    return jwt.encode(body, signing_key or cert.key, algorithm="RS256", headers=head)


def sponsor_bind(emu: Emulator) -> list[str]:
    return [f"{emu.graph_url}/users/{emu.admin.user_id}"]


def key_item(cert: Cert) -> dict[str, Any]:
    import base64

    return {"type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(cert.der).decode()}


BLUEPRINTS = "/applications/microsoft.graph.agentIdentityBlueprint"
PRINCIPALS = "/servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal"
IDENTITIES = "/servicePrincipals/microsoft.graph.agentIdentity"


def graph_blueprint(
    emu: Emulator, token: str, *, name: str = "bp", cert: Cert | None = None, principal: bool = True
) -> dict[str, Any]:
    """A Blueprint made over Graph, with ``cert`` as its key and its Blueprint principal (under "principal")."""
    r = graph_call(emu, "POST", BLUEPRINTS, token, json={"displayName": name, "sponsors@odata.bind": sponsor_bind(emu)})
    assert r.status_code == 201, r.text
    bp = dict(r.json())
    if cert is not None:
        r = graph_call(emu, "PATCH", f"/applications/{bp['id']}", token, json={"keyCredentials": [key_item(cert)]})
        assert r.status_code == 204, r.text
    if principal:
        r = graph_call(emu, "POST", PRINCIPALS, token, json={"appId": bp["appId"]})
        assert r.status_code == 201, r.text
        bp["principal"] = r.json()
    return bp


def graph_identity(emu: Emulator, token: str, bp: dict[str, Any], name: str = "agent") -> requests.Response:
    """POST an Agent Identity of ``bp`` over Graph (the test checks the answer)."""
    body = {"displayName": name, "agentIdentityBlueprintId": bp["appId"], "sponsors@odata.bind": sponsor_bind(emu)}
    return graph_call(emu, "POST", IDENTITIES, token, json=body)


# --- `entraclaw emulator` as a subprocess ---------------------------------------------------------


def cli_env() -> dict[str, str]:
    """The environment without the CA overrides, which would win over the bundle the emulator printed."""
    env = dict(os.environ)
    env.pop("REQUESTS_CA_BUNDLE", None)
    env.pop("CURL_CA_BUNDLE", None)
    return env


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``entraclaw emulator <args>`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "entraclaw", "emulator", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )


def serve(
    *args: str, expect: str = "base_url", env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start ``entraclaw emulator serve <args>``; the ``key value`` lines it prints before ``ready``.

    ``env`` replaces :func:`cli_env` as the child's environment; ``cwd`` is its working directory.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "entraclaw", "emulator", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env() if env is None else env,
        cwd=cwd,
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
        else:
            proc.kill()
            raise AssertionError(f"serve ended before ready: {proc.stderr.read() if proc.stderr else ''}")
    finally:
        timer.cancel()
    assert expect in info, proc.stderr.read() if proc.stderr else ""
    return proc, info


def stop_serve(proc: subprocess.Popen[str]) -> int:
    """SIGTERM a served emulator and wait for its exit code (killed if it hangs)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


# --- the agent's tools: tokens for the Agent User with chosen scopes ---------------------------

CHAT_SCOPES = (
    "Chat.Create",
    "Chat.ReadBasic",
    "Chat.Read",
    "ChatMember.Read",
    "ChatMember.ReadWrite",
    "ChatMessage.Send",
)
MAIL_SCOPES = ("Mail.Send", "Mail.Read")


def agent_user_token(
    s: Seeded, scopes: tuple[str, ...] = (*CHAT_SCOPES, *MAIL_SCOPES, "User.ReadBasic.All"), *, second: bool = False
) -> str:
    """T3 for the seeded Agent User (``second``: Agent B) after consenting exactly ``scopes`` for its Agent Identity."""
    ai, bp, cert = (s.ai2, s.bp2, s.other_cert) if second else (s.ai, s.bp, s.cert)
    s.emu.tenant.revoke_consent(ai.app_id, resource=GRAPH)
    s.emu.tenant.grant_consent(ai.app_id, resource=GRAPH, scopes=scopes)
    t1 = s.t1(ai, bp, cert)
    form = s.hop3_form(t1, s.t2(t1, ai), ai, user_id=(s.au2 if second else s.au).object_id)
    r = s.post_token(form)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])
