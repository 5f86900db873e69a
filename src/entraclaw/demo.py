"""``entraclaw demo``: an agent becomes an Entra Agent User, end to end, on this machine.

The demo starts the local Entra + Graph emulator in-process and does what a
real setup does, through the same client code:

1. make the Blueprint's key and certificate (a CNG key through
   :mod:`entraclaw.cng` on Windows when the native module is there; a PEM key
   otherwise);
2. register the certificate on the Blueprint with Graph
   ``PATCH /v1.0/applications/{id}`` as a provisioner app would;
3. create the Agent Identity and the Agent User, grant consent;
4. run Hops 1-3 with :class:`~entraclaw.auth.credential.AgentUserCredential`;
5. call Graph ``/v1.0/me`` as the Agent User.

Each step is recorded in a :class:`DemoTrace` (text or JSON). Tokens are
described by their claims and verified against the tenant's signing key; no
token is ever printed.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from entraclaw.auth._b64 import b64url_decode
from entraclaw.auth.adapters import client_assertion_callable
from entraclaw.auth.certgen import generate_rsa_key, self_signed_certificate
from entraclaw.auth.credential import AgentUserCredential
from entraclaw.auth.exchange import MsalExchanger
from entraclaw.auth.jwt_claims import claims_summary
from entraclaw.auth.signer import Algorithm, PemSigner, Signer, verify_signature
from entraclaw.errors import EntraclawError, GraphRequestError

__all__ = [
    "GRAPH_DEFAULT_SCOPE",
    "DemoTenant",
    "DemoTrace",
    "blueprint_key",
    "call_graph",
    "provision_emulator_tenant",
    "run_demo",
]

GRAPH = "https://graph.microsoft.com"
GRAPH_DEFAULT_SCOPE = f"{GRAPH}/.default"
DEFAULT_UPN = "agent-user@entraclaw-demo.example"
_HOP_NAMES = {1: "T1", 2: "T2", 3: "T3"}


@dataclass
class DemoTrace:
    """The steps of a run; ``echo`` prints each as it happens (text mode)."""

    echo: Callable[[str], None] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)

    def step(self, title: str, **details: Any) -> None:
        entry = {"step": len(self.steps) + 1, "title": title, **details}
        self.steps.append(entry)
        if self.echo is not None:
            self.echo(f"[{entry['step']}] {title}")
            for name, value in details.items():
                self.echo(f"      {name:<18} {_text(value)}")


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _iso(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class BlueprintKey:
    signer: Signer
    certificate: x509.Certificate
    kind: str  # "CNG TPM", "CNG software", "PEM (software)"
    note: str | None = None
    cleanup: Callable[[], None] | None = None


def blueprint_key(common_name: str, *, use_cng: bool | None = None) -> BlueprintKey:
    """A fresh key + self-signed certificate: CNG on Windows with the native module, PEM otherwise.

    ``use_cng=None`` decides by platform (Windows with the real ``entraclaw._cng``);
    ``True`` uses whichever native backend is loaded (the Linux stand-in in tests).
    A CNG failure falls back to PEM with the reason in ``note``.
    """
    note = None
    if use_cng is None:
        use_cng = sys.platform == "win32"
    if use_cng:
        try:
            from entraclaw import cng

            if cng.backend() == "cng" or (cng.native_available() and sys.platform != "win32"):
                provisioned = cng.create_certificate(common_name)
                handle = cng.CngKeyHandle(provisioned.thumbprint)
                signer = handle.as_signer()

                def cleanup() -> None:
                    handle.close()
                    cng.delete_certificate(provisioned.thumbprint)

                kind = "CNG TPM" if provisioned.hardware else "CNG software KSP"
                return BlueprintKey(signer, provisioned.certificate, kind, provisioned.tpm_fallback_reason, cleanup)
            note = f"entraclaw._cng is not available (backend: {cng.backend()}); using a PEM key"
        except EntraclawError as exc:
            note = f"CNG key creation failed ({exc.message}); using a PEM key"
    key = generate_rsa_key()
    cert = self_signed_certificate(key, common_name)
    return BlueprintKey(PemSigner(key, cert), cert, "PEM (software, in memory)", note)


def _graph_error(response: requests.Response, what: str, url: str) -> GraphRequestError:
    try:
        document = response.json()
    except ValueError:
        document = None
    error = document.get("error", {}) if isinstance(document, dict) else {}
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    inner = error.get("innerError", {}) if isinstance(error, dict) else {}
    request_id = inner.get("request-id") if isinstance(inner, dict) else None
    return GraphRequestError(
        f"Graph {what} ({url}) failed: HTTP {response.status_code} {code or ''} {message or ''}".rstrip() + ".",
        remedy="Check the token's audience and permissions (scp for /me, roles for /applications).",
        http_status=response.status_code,
        code=code,
        request_id=request_id,
        url=url,
    )


def call_graph(
    session: requests.Session, method: str, url: str, token: str, *, what: str, json_body: Any = None
) -> dict[str, Any]:
    """One Graph request with a bearer token; errors become :class:`GraphRequestError`."""
    try:
        response = session.request(
            method, url, headers={"Authorization": f"Bearer {token}"}, json=json_body, timeout=30
        )
    except requests.exceptions.RequestException as exc:
        raise GraphRequestError(
            f"Graph {what} ({url}) got no answer ({type(exc).__name__}).",
            remedy="Check that the Graph endpoint is reachable.",
            http_status=None,
            code=None,
            request_id=None,
            url=url,
        ) from None
    if response.status_code >= 400:
        raise _graph_error(response, what, url)
    if response.status_code == 204 or not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        # Never quote the body: it may be a half-sent token.
        raise GraphRequestError(
            f"Graph {what} ({url}) answered HTTP {response.status_code} with a body that is not JSON "
            f"({len(response.content)} bytes).",
            remedy="Check that the Graph URL points at Microsoft Graph (or the emulator) and not at a proxy page.",
            http_status=response.status_code,
            code="invalid_response",
            request_id=response.headers.get("request-id") or response.headers.get("x-ms-request-id"),
            url=url,
        ) from None
    return body if isinstance(body, dict) else {"value": body}


@dataclass
class DemoTenant:
    """What :func:`provision_emulator_tenant` created, for the credential."""

    authority: str
    blueprint_app_id: str
    blueprint_object_id: str
    agent_identity_app_id: str
    agent_user_id: str
    agent_user_upn: str
    key: BlueprintKey


def provision_emulator_tenant(
    emu: Any, trace: DemoTrace, *, upn: str = DEFAULT_UPN, use_cng: bool | None = None
) -> DemoTenant:
    """Blueprint (certificate uploaded through Graph), Agent Identity, Agent User and consent."""
    tenant = emu.tenant
    suffix = uuid.uuid4().hex[:8]

    # The provisioner is the app a real setup uses to manage Blueprints
    # (Application.ReadWrite.OwnedBy); its key stays in this process.
    prov_key = generate_rsa_key()
    prov_cert = self_signed_certificate(prov_key, f"entraclaw-demo-provisioner-{suffix}")
    provisioner = tenant.add_application("entraclaw demo provisioner", [prov_cert])
    tenant.grant_app_roles(provisioner.app_id, GRAPH, ["Application.ReadWrite.OwnedBy"])
    blueprint = tenant.add_blueprint("entraclaw demo Blueprint", owners=[provisioner.app_id])
    trace.step(
        "Tenant: Blueprint application created (no key registered yet)",
        tenant=emu.tenant_id,
        blueprint_app=blueprint.app_id,
        object_id=blueprint.object_id,
    )

    key = blueprint_key(f"entraclaw-demo-blueprint-{suffix}", use_cng=use_cng)
    try:
        details: dict[str, Any] = {
            "key": key.signer.key_description,
            "storage": key.kind,
            "x5t#S256": key.signer.x5t_s256,
            "sha1": key.signer.sha1_thumbprint,
        }
        if key.note:
            details["note"] = key.note
        trace.step("Blueprint key and self-signed certificate created on this machine", **details)

        session = emu.session()
        exchanger = MsalExchanger(emu.authority, session=session)
        prov_assertion = client_assertion_callable(
            PemSigner(prov_key, prov_cert), provisioner.app_id, exchanger.token_endpoint
        )
        prov_token = exchanger.client_credentials(
            hop=None, client_id=provisioner.app_id, scopes=[GRAPH_DEFAULT_SCOPE], client_assertion=prov_assertion
        )["access_token"]
        der = key.certificate.public_bytes(serialization.Encoding.DER)
        url = f"{emu.graph_url}/applications/{blueprint.object_id}"
        call_graph(
            session,
            "PATCH",
            url,
            prov_token,
            what="PATCH keyCredentials",
            json_body={
                "keyCredentials": [
                    {
                        "type": "AsymmetricX509Cert",
                        "usage": "Verify",
                        "key": base64.b64encode(der).decode("ascii"),
                        "displayName": f"CN=entraclaw-demo-blueprint-{suffix}",
                    }
                ]
            },
        )
        registered = call_graph(
            session, "GET", f"{url}?$select=keyCredentials", prov_token, what="GET keyCredentials"
        ).get("keyCredentials", [])
        trace.step(
            "Certificate registered on the Blueprint via Graph PATCH /v1.0/applications/{id}",
            provisioner_app=provisioner.app_id,
            key_credentials=len(registered),
            custom_key_id=registered[0].get("customKeyIdentifier") if registered else None,
        )

        identity = tenant.add_agent_identity(blueprint.app_id, "entraclaw demo Agent Identity")
        user = tenant.add_agent_user(identity.app_id, upn, "entraclaw demo Agent User")
        tenant.grant_consent(identity.app_id, GRAPH, ["User.Read"])
        trace.step(
            "Agent Identity and Agent User created, consent granted",
            agent_identity=identity.app_id,
            agent_user=user.object_id,
            upn=user.upn,
            consent="User.Read on Microsoft Graph",
        )
    except BaseException:
        # The key may be a real certificate + key in the user's store: never leave it behind
        # when provisioning stops half-way (the caller's cleanup only covers a returned tenant).
        if key.cleanup is not None:
            key.cleanup()
        raise
    return DemoTenant(
        authority=emu.authority,
        blueprint_app_id=blueprint.app_id,
        blueprint_object_id=blueprint.object_id,
        agent_identity_app_id=identity.app_id,
        agent_user_id=user.object_id,
        agent_user_upn=user.upn,
        key=key,
    )


def _verified(token: str, emu: Any) -> str:
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(b64url_decode(header_b64))
    algorithm = header.get("alg")
    ok = algorithm in ("RS256", "PS256") and verify_signature(
        emu.signing_public_key, b64url_decode(signature_b64), f"{header_b64}.{payload_b64}".encode("ascii"), algorithm
    )
    if not ok:
        raise GraphRequestError(
            f"A token from {emu.authority} does not verify against the tenant signing key (kid {header.get('kid')}).",
            remedy="The emulator's signing key changed mid-run; restart the demo.",
            http_status=None,
            code="invalid_signature",
            request_id=None,
            url=emu.authority,
        )
    return f"{algorithm}, tenant signing key kid={header.get('kid')}"


def hop_details(hop: int, client_id: str, token: str, expires_on: float, emu: Any | None) -> dict[str, Any]:
    """What the trace says about a token: claims that matter and its expiry, never the token."""
    claims = claims_summary(token)
    details: dict[str, Any] = {
        "client": client_id,
        "token": _HOP_NAMES.get(hop, "token"),
        "audience": claims.get("aud"),
        "idtyp": claims.get("idtyp"),
        "oid": claims.get("oid"),
    }
    if "upn" in claims:
        details["upn"] = claims["upn"]
    if "scp" in claims:
        details["scp"] = claims["scp"]
    if "roles" in claims:
        details["roles"] = claims["roles"]
    details["expires"] = f"{_iso(expires_on)} (in {int(expires_on - time.time())} s)"
    if emu is not None:
        details["signature"] = _verified(token, emu)
    return details


def run_demo(
    trace: DemoTrace | None = None,
    *,
    algorithm: Algorithm = "RS256",
    upn: str | None = None,
    use_cng: bool | None = None,
) -> DemoTrace:
    """Run the whole demo into ``trace``; raises :class:`EntraclawError` on the first failure.

    ``upn`` makes Hop 3 name the Agent User by UPN (``username``) instead of
    object id. The trace keeps the steps done before a failure.
    """
    from entraclaw.emulator import Emulator

    trace = trace if trace is not None else DemoTrace()
    with Emulator() as emu:
        trace.step("Local Entra + Graph emulator started", authority=emu.authority, graph=emu.graph_url)
        demo = provision_emulator_tenant(emu, trace, upn=upn or DEFAULT_UPN, use_cng=use_cng)
        try:
            credential = AgentUserCredential(
                tenant=demo.authority,
                blueprint_app_id=demo.blueprint_app_id,
                agent_identity_app_id=demo.agent_identity_app_id,
                agent_user_id=None if upn else demo.agent_user_id,
                agent_user_upn=demo.agent_user_upn if upn else None,
                signer=demo.key.signer,
                algorithm=algorithm,
                session=emu.session(),
            )
            chain = credential.acquire_chain([GRAPH_DEFAULT_SCOPE])
            assert chain.t3 is not None
            trace.step(
                f"Hop 1: Blueprint signs a client assertion ({algorithm}) -> T1 (fmi_path = Agent Identity)",
                **hop_details(1, demo.blueprint_app_id, chain.t1.token, chain.t1.expires_on, emu),
            )
            trace.step(
                "Hop 2: Agent Identity presents T1 -> T2",
                **hop_details(2, demo.agent_identity_app_id, chain.t2.token, chain.t2.expires_on, emu),
            )
            who = f"username={demo.agent_user_upn}" if upn else f"user_id={demo.agent_user_id}"
            trace.step(
                f"Hop 3: user_fic with T1 + T2 for the Agent User ({who}) -> T3",
                **hop_details(3, demo.agent_identity_app_id, chain.t3.token, chain.t3.expires_on, emu),
            )
            before = emu.stats.count()
            again = credential.get_token(GRAPH_DEFAULT_SCOPE)
            cached = again.token == chain.t3.token and emu.stats.count() == before
            me = call_graph(emu.session(), "GET", f"{emu.graph_url}/me", again.token, what="GET /me")
            if me.get("id") != demo.agent_user_id:
                raise GraphRequestError(
                    f"/me answered for {me.get('id')}, not the Agent User {demo.agent_user_id}.",
                    remedy="The token is for the wrong user; check the Agent User id.",
                    http_status=200,
                    code="wrong_user",
                    request_id=None,
                    url=f"{emu.graph_url}/me",
                )
            trace.step(
                "Graph GET /v1.0/me as the Agent User",
                id=me.get("id"),
                userPrincipalName=me.get("userPrincipalName"),
                displayName=me.get("displayName"),
                token_from_cache=cached,
                token_requests=emu.stats.count(),
            )
        finally:
            if demo.key.cleanup is not None:
                demo.key.cleanup()
    return trace
