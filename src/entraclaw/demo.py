"""``entraclaw demo``: an agent becomes an Entra Agent User, end to end, on this machine.

The demo starts the local Entra + Graph emulator in-process and runs
``entraclaw setup`` against it through the same code a real tenant gets
(:class:`entraclaw.provisioning.setup.Setup` over Graph, signed in as the
emulator's provisioner app), with its state in a temporary directory:

1. Blueprint and its principal, created through Graph;
2. the Blueprint's key and certificate on this machine (a CNG key through
   :mod:`entraclaw.cng` on Windows when the native module is there; a PEM key
   otherwise), registered with Graph ``PATCH /v1.0/applications/{id}``;
3. the Agent Identity, the Agent User and consent, through Graph;
4. Hops 1-3 with :class:`~entraclaw.auth.credential.AgentUserCredential`;
5. Graph ``/v1.0/me`` as the Agent User.

Each step is recorded in a :class:`DemoTrace` (text or JSON). Tokens are
described by their claims and verified against the tenant's signing key; no
token is ever printed.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography import x509

from entraclaw.auth._b64 import b64url_decode
from entraclaw.auth.certgen import generate_rsa_key, self_signed_certificate
from entraclaw.auth.credential import AgentUserCredential
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
    #: The temporary state directory (.env, key file): the MCP server of the last step runs on it.
    home: Path | None = None


_STEP_TITLES = {
    "blueprint": "Blueprint application (Graph POST /v1.0/applications/microsoft.graph.agentIdentityBlueprint)",
    "blueprint_principal": (
        "Blueprint principal (Graph POST /v1.0/servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal)"
    ),
    "certificate": "Certificate registered on the Blueprint via Graph PATCH /v1.0/applications/{id}",
    "agent_identity": "Agent Identity (Graph POST /v1.0/servicePrincipals/microsoft.graph.agentIdentity)",
    "agent_user": "Agent User (Graph POST /v1.0/users/microsoft.graph.agentUser)",
    "consent": "Consent for the Agent User (Graph POST /v1.0/oauth2PermissionGrants)",
    "config": "Device config written (temporary state directory)",
}
_STORAGE = {"tpm": "CNG TPM", "software_ksp": "CNG software KSP", "pem": "PEM (software, temporary key file)"}


#: What the demo consents: /me, and what its last step's Teams tools need (least-privileged each).
DEMO_SCOPES = ("User.Read", "Chat.Create", "Chat.ReadBasic", "Chat.Read", "ChatMessage.Send")


def provision_emulator_tenant(
    emu: Any,
    trace: DemoTrace,
    *,
    upn: str | None = None,
    use_cng: bool | None = None,
    scopes: tuple[str, ...] = DEMO_SCOPES,
) -> DemoTenant:
    """``entraclaw setup`` against the running emulator, as its admin; the steps go into ``trace``.

    ``upn`` None names the Agent User ``entraclaw-agent@<the tenant's default domain>``.
    The state (journal, config, a PEM key file) lives in a temporary directory
    removed by ``DemoTenant.key.cleanup``, which also deletes a CNG key.
    """
    from entraclaw.provisioning.auth import ClientCertificateAuth
    from entraclaw.provisioning.context import Endpoints
    from entraclaw.provisioning.graph import GraphClient
    from entraclaw.provisioning.keys import KeyStorage, delete_device_key, open_device_key
    from entraclaw.provisioning.setup import PlanStep, Setup, SetupOptions

    admin = emu.admin
    endpoints = Endpoints(
        tenant_id=emu.tenant_id, authority_host=emu.base_url, graph_url=emu.graph_url, ca_bundle=emu.ca_bundle_path
    )
    graph = GraphClient(
        endpoints.graph_url,
        ClientCertificateAuth(
            authority=endpoints.authority,
            client_id=admin.app_id,
            signer=PemSigner(admin.key, admin.cert),
            session=endpoints.session(),
        ),
        session=endpoints.session(),
    )
    trace.step(
        "Admin signs in to Graph as the tenant's provisioner app (client certificate)",
        tenant=emu.tenant_id,
        admin_app=admin.app_id,
        sponsor=admin.user_upn,
    )
    home = Path(tempfile.mkdtemp(prefix="entraclaw-demo-"))
    storage: KeyStorage = "cng" if _cng_wanted(use_cng) else "file"
    options = SetupOptions(
        endpoints=endpoints,
        key_storage=storage,
        state_dir=home,
        sponsor_ids=(admin.user_id,),
        agent_user_upn=upn,
        scopes=scopes,
        smoke_test=False,
        propagation_timeout=60.0,
    )
    setup: Setup

    def on_step(step: PlanStep) -> None:
        if step.step == "key" and setup.key is not None:
            key = setup.key
            details: dict[str, Any] = {
                "key": key.signer.key_description,
                "storage": _STORAGE.get(key.provider, key.provider),
                "x5t#S256": key.x5t_s256,
                "sha1": key.sha1,
            }
            if key.warning:
                details["note"] = key.warning
            trace.step("Blueprint key and self-signed certificate created on this machine", **details)
        elif step.step in _STEP_TITLES:
            trace.step(_STEP_TITLES[step.step], action=step.action, detail=step.detail)

    setup = Setup(options, graph, echo=lambda _line: None, on_step=on_step)

    def cleanup() -> None:
        if setup.key is not None:
            setup.key.close()
            delete_device_key(setup.key.key_ref)
        shutil.rmtree(home, ignore_errors=True)

    try:
        result = setup.run()
        values = result.config
        device = open_device_key(values["ENTRACLAW_KEY_REF"])
    except BaseException:
        # The key may be a real certificate + key in the user's store: never leave it behind
        # when provisioning stops half-way (the caller's cleanup only covers a returned tenant).
        cleanup()
        raise
    key = BlueprintKey(
        device.signer, device.certificate, _STORAGE.get(device.provider, device.provider), device.warning, cleanup
    )
    return DemoTenant(
        authority=emu.authority,
        blueprint_app_id=values["ENTRACLAW_BLUEPRINT_APP_ID"],
        blueprint_object_id=values["ENTRACLAW_BLUEPRINT_OBJECT_ID"],
        agent_identity_app_id=values["ENTRACLAW_AGENT_IDENTITY_ID"],
        agent_user_id=values["ENTRACLAW_AGENT_USER_ID"],
        agent_user_upn=values["ENTRACLAW_AGENT_USER_UPN"],
        key=key,
        home=home,
    )


def _cng_wanted(use_cng: bool | None) -> bool:
    """CNG on Windows with the real module; ``True`` takes whichever native backend is loaded (the stand-in)."""
    from entraclaw import cng

    if use_cng is None:
        return sys.platform == "win32" and cng.backend() == "cng"
    return bool(use_cng) and cng.native_available()


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
    mcp: bool = True,
) -> DemoTrace:
    """Run the whole demo into ``trace``; raises :class:`EntraclawError` on the first failure.

    ``upn`` makes Hop 3 name the Agent User by UPN (``username``) instead of
    object id: ``""`` for the default ``entraclaw-agent@<tenant domain>``, or a
    UPN in a verified domain of the tenant. The trace keeps the steps done
    before a failure.
    """
    from entraclaw.emulator import Emulator

    trace = trace if trace is not None else DemoTrace()
    with Emulator() as emu:
        trace.step("Local Entra + Graph emulator started", authority=emu.authority, graph=emu.graph_url)
        demo = provision_emulator_tenant(emu, trace, upn=upn or None, use_cng=use_cng)
        try:
            credential = AgentUserCredential(
                tenant=demo.authority,
                blueprint_app_id=demo.blueprint_app_id,
                agent_identity_app_id=demo.agent_identity_app_id,
                agent_user_id=None if upn is not None else demo.agent_user_id,
                agent_user_upn=demo.agent_user_upn if upn is not None else None,
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
            who = f"username={demo.agent_user_upn}" if upn is not None else f"user_id={demo.agent_user_id}"
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
            if mcp:
                _mcp_step(emu, demo, trace)
        finally:
            if demo.key.cleanup is not None:
                demo.key.cleanup()
    return trace


def _mcp_step(emu: Any, demo: DemoTenant, trace: DemoTrace) -> None:
    """The agent itself: entraclaw-mcp, started by the MCP SDK's client, sends and reads a Teams message."""
    import os

    from entraclaw.mcp.probe import teams_round_trip

    colleague = emu.people.colleague
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env["ENTRACLAW_HOME"] = str(demo.home)
    run = teams_round_trip(env, colleague.upn, "Hello from the entraclaw demo agent")
    timings = ", ".join(f"{tool} {seconds * 1000:.0f} ms" for tool, _, seconds in run.steps)
    last = run.steps[-1][1].splitlines()
    trace.step(
        "MCP: entraclaw-mcp over stdio (MCP SDK client) sends and reads a Teams message as the Agent User",
        server_started=f"{run.server_start_seconds:.2f} s",
        chat=f"1:1 with {colleague.upn} ({run.chat_id})",
        sent=run.steps[1][1],
        read_back=last[1] if len(last) > 1 else last[0],
        tool_calls=timings,
    )
