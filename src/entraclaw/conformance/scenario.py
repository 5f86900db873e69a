"""The conformance scenarios: the provisioning and token flow, and the failures on purpose.

``full`` creates a throwaway Blueprint (a random display name), registers a certificate,
creates its principal, an Agent Identity and an Agent User, grants consent, runs Hops 1-3 and
``/me``, asks for each documented failure once, and deletes everything it made (also when a
step fails). ``read-only`` writes nothing: lookups and refusals only.

Every request goes through :meth:`Run.call`, which records the *last* attempt of a step as a
sanitized :class:`~entraclaw.conformance.transcript.Entry`; an attempt refused because an
object created moments ago has not propagated yet is retried (the same rule setup uses) and
not recorded, so a transcript does not depend on replication timing.

The requests are spelled out here rather than taken from :mod:`entraclaw.provisioning.graph`
because a conformance run must send the exact request under test, including the wrong ones.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from cryptography.hazmat.primitives import serialization

from entraclaw.auth.assertion import build_client_assertion
from entraclaw.auth.certgen import generate_rsa_key, self_signed_certificate
from entraclaw.auth.signer import PemSigner
from entraclaw.auth.thumbprint import compute_cert_thumbprint
from entraclaw.conformance.transcript import Entry, Transcript
from entraclaw.errors import ConfigurationError, GraphRequestError
from entraclaw.provisioning.auth import GraphAuth
from entraclaw.provisioning.context import Endpoints
from entraclaw.provisioning.proofs import PROOF_AUDIENCE, build_proof
from entraclaw.provisioning.propagation import is_propagation_error

__all__ = ["SCENARIOS", "Run", "run_scenario"]

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Graph's own app id: the proof audience users report a 401 for (the pages name PROOF_AUDIENCE).
WRONG_PROOF_AUDIENCE = GRAPH_APP_ID
SCENARIOS = ("full", "read-only")


@dataclass
class Run:
    """One scenario run: where, as whom, and what it recorded."""

    endpoints: Endpoints
    auth: GraphAuth
    session: requests.Session
    propagation_timeout: float = 180.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    entries: list[Entry] = field(default_factory=list)
    waits: dict[str, int] = field(default_factory=dict)

    @property
    def token_endpoint(self) -> str:
        return f"{self.endpoints.authority}/oauth2/v2.0/token"

    def graph(self, path: str) -> str:
        return f"{self.endpoints.graph_url}/{path.lstrip('/')}"

    def call(
        self,
        step: str,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
        bearer: str | None = None,
        retry_propagation: bool = False,
    ) -> tuple[int, Any]:
        """Send one request of ``step``; record its answer; retry while it reads as propagation.

        ``form`` may be a callable: a retry then sends a new form (a client assertion's ``jti`` is single-use).
        """
        deadline = self.clock() + self.propagation_timeout
        delay = 1.0
        while True:
            headers = {"Accept": "application/json"}
            data = form() if callable(form) else form
            if data is None:
                headers["Authorization"] = f"Bearer {bearer or self.auth.token()}"
            try:
                response = self.session.request(
                    method, url, headers=headers, json=json_body, data=dict(data) if data else None, timeout=60
                )
            except requests.exceptions.RequestException as exc:
                raise GraphRequestError(
                    f"Conformance step {step} ({method} {url}) got no answer ({type(exc).__name__}).",
                    remedy="Check --authority-host, --graph-url and --ca-bundle, then run `entraclaw conformance` "
                    "again.",
                    http_status=None,
                    code=type(exc).__name__,
                    request_id=None,
                    url=url,
                ) from None
            try:
                body: Any = response.json() if response.content else None
            except ValueError:
                body = {"non_json_bytes": len(response.content)}
            status = response.status_code
            if retry_propagation and status >= 400 and self.clock() < deadline and _propagating(status, body):
                self.waits[step] = self.waits.get(step, 0) + 1
                self.sleep(delay)
                delay = min(delay * 2, 15.0)
                continue
            self.entries.append(Entry.from_exchange(step, method, url, form=data, status=status, body=body))
            return status, body

    def token(
        self,
        step: str,
        form: Mapping[str, str] | Callable[[], Mapping[str, str]],
        *,
        retry_propagation: bool = True,
    ) -> tuple[int, Any]:
        return self.call(step, "POST", self.token_endpoint, form=form, retry_propagation=retry_propagation)


def _propagating(status: int, body: Any) -> bool:
    # The same rule setup's bounded wait uses, applied to a raw answer.
    from entraclaw.conformance.transcript import error_code

    code = error_code(status, body)
    message = ""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            message = str(error.get("message") or "")
        else:
            message = str(body.get("error_description") or "")
    if code and code.startswith("AADSTS"):
        from entraclaw.errors import TokenExchangeError

        return is_propagation_error(TokenExchangeError(message, aadsts_code=int(code[6:])))
    return is_propagation_error(GraphRequestError(message, http_status=status, code=code, request_id=None, url=""))


@dataclass
class _Key:
    signer: PemSigner
    der: bytes

    @classmethod
    def new(cls, name: str) -> _Key:
        key = generate_rsa_key()
        cert = self_signed_certificate(key, name, days=2)
        return cls(PemSigner(key, cert), cert.public_bytes(serialization.Encoding.DER))

    @property
    def x5t_s256(self) -> str:
        return compute_cert_thumbprint(self.der)

    def key_credential(self, name: str) -> dict[str, Any]:
        return {
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "key": base64.b64encode(self.der).decode(),
            "displayName": name,
        }

    def assertion(self, client_id: str, audience: str) -> str:
        return build_client_assertion(
            private_key_pem=self.signer, cert_thumbprint=self.x5t_s256, client_id=client_id, token_endpoint=audience
        )


def _client_assertion_form(client_id: str, assertion: str, scope: str, **extra: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "scope": scope,
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
        **extra,
    }


def _read_only(run: Run) -> None:
    run.call("domains.list", "GET", run.graph("domains"))
    run.call("servicePrincipals.graph.find", "GET", run.graph(f"servicePrincipals?$filter=appId eq '{GRAPH_APP_ID}'"))
    run.call(
        "servicePrincipals.filter.unsupported",
        "GET",
        run.graph(f"servicePrincipals?$filter=agentIdentityBlueprintId eq '{uuid.uuid4()}'"),
    )
    stranger = _Key.new("entraclaw-conformance-stranger")
    unknown = str(uuid.uuid4())
    run.token(
        "hop1.unknown_client",
        _client_assertion_form(unknown, stranger.assertion(unknown, run.token_endpoint), GRAPH_SCOPE),
        retry_propagation=False,
    )
    run.token(
        "token.unsupported_grant",
        {"client_id": unknown, "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "scope": GRAPH_SCOPE},
        retry_propagation=False,
    )
    run.call("me.app_only", "GET", run.graph("me"))


def _full(run: Run, sponsors: list[str], cleanup: list[tuple[str, str]]) -> None:
    suffix = secrets.token_hex(4)
    bind = [run.graph(f"users/{quote(s)}") for s in sponsors]
    run.call("domains.list", "GET", run.graph("domains"))
    status, bp = run.call(
        "blueprint.create",
        "POST",
        run.graph("applications/microsoft.graph.agentIdentityBlueprint"),
        json_body={"displayName": f"entraclaw-conformance-{suffix}", "sponsors@odata.bind": bind},
    )
    if status != 201:
        return
    cleanup.append(("cleanup.blueprint", f"applications/{bp['id']}"))
    first, second = _Key.new("entraclaw-conformance-1"), _Key.new("entraclaw-conformance-2")
    run.call(
        "blueprint.keyCredentials.patch",
        "PATCH",
        run.graph(f"applications/{bp['id']}"),
        json_body={"keyCredentials": [first.key_credential("conformance 1")]},
        retry_propagation=True,
    )
    run.call("blueprint.keyCredentials.get", "GET", run.graph(f"applications/{bp['id']}?$select=keyCredentials"))
    status, principal = run.call(
        "blueprint.principal.create",
        "POST",
        run.graph("servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal"),
        json_body={"appId": bp["appId"]},
        retry_propagation=True,
    )
    if status == 201:
        cleanup.insert(0, ("cleanup.blueprintPrincipal", f"servicePrincipals/{principal['id']}"))
    add = {"keyCredential": second.key_credential("conformance 2"), "passwordCredential": None}
    run.call(
        "blueprint.addKey.wrong_audience",
        "POST",
        run.graph(f"applications/{bp['id']}/addKey"),
        json_body={
            "keyCredential": _Key.new("entraclaw-conformance-3").key_credential("conformance 3"),
            "passwordCredential": None,
            "proof": build_proof(first.signer, bp["id"], audience=WRONG_PROOF_AUDIENCE),
        },
    )
    status, added = run.call(
        "blueprint.addKey",
        "POST",
        run.graph(f"applications/{bp['id']}/addKey"),
        json_body={**add, "proof": build_proof(first.signer, bp["id"], audience=PROOF_AUDIENCE)},
    )
    if status == 200:
        run.call(
            "blueprint.removeKey",
            "POST",
            run.graph(f"applications/{bp['id']}/removeKey"),
            json_body={"keyId": added["keyId"], "proof": build_proof(first.signer, bp["id"], audience=PROOF_AUDIENCE)},
        )
    run.token(
        "hop1.wrong_audience",
        lambda: _client_assertion_form(
            bp["appId"], first.assertion(bp["appId"], "https://graph.microsoft.com"), EXCHANGE_SCOPE
        ),
        retry_propagation=False,
    )
    status, identity = run.call(
        "agentIdentity.create",
        "POST",
        run.graph("servicePrincipals/microsoft.graph.agentIdentity"),
        json_body={
            "displayName": f"entraclaw-conformance-identity-{suffix}",
            "agentIdentityBlueprintId": bp["appId"],
            "sponsors@odata.bind": bind,
        },
        retry_propagation=True,
    )
    if status != 201:
        return
    cleanup.insert(0, ("cleanup.agentIdentity", f"servicePrincipals/{identity['id']}"))
    identity_app_id = str(identity.get("appId") or identity["id"])
    run.call(
        "servicePrincipals.filter.unsupported",
        "GET",
        run.graph(f"servicePrincipals?$filter=agentIdentityBlueprintId eq '{bp['appId']}'"),
    )

    def hop1(step: str, scope: str, *, retry: bool = True, **extra: str) -> tuple[int, Any]:
        return run.token(
            step,
            lambda: _client_assertion_form(
                bp["appId"], first.assertion(bp["appId"], run.token_endpoint), scope, **extra
            ),
            retry_propagation=retry,
        )

    status, t1 = hop1("hop1", EXCHANGE_SCOPE, fmi_path=identity_app_id)
    if status != 200:
        return
    # Upstream's Learning #12: Hop 1 for a Graph token without fmi_path, then that token at Hop 2.
    _, t1_plain = hop1("hop1.graph_scope_no_fmi_path", GRAPH_SCOPE, retry=False)
    if isinstance(t1_plain, Mapping) and "access_token" in t1_plain:
        run.token(
            "hop2.t1_without_fmi_path",
            _client_assertion_form(identity_app_id, str(t1_plain["access_token"]), EXCHANGE_SCOPE),
            retry_propagation=False,
        )
    status, t2 = run.token(
        "hop2", _client_assertion_form(identity_app_id, str(t1["access_token"]), EXCHANGE_SCOPE)
    )
    if status != 200:
        return
    _, domains = run.call("domains.verified", "GET", run.graph("domains?$select=id,isVerified,isDefault"))
    domain = next(
        (d["id"] for d in (domains or {}).get("value", []) if d.get("isDefault") and d.get("isVerified")), None
    )
    upn = f"entraclaw-conformance-{suffix}@{domain}"
    status, user = run.call(
        "agentUser.create",
        "POST",
        run.graph("users/microsoft.graph.agentUser"),
        json_body={
            "@odata.type": "microsoft.graph.agentUser",
            "accountEnabled": True,
            "displayName": f"entraclaw conformance {suffix}",
            "mailNickname": f"entraclaw-conformance-{suffix}",
            "userPrincipalName": upn,
            "identityParentId": identity["id"],
        },
        retry_propagation=True,
    )
    if status != 201:
        return
    cleanup.insert(0, ("cleanup.agentUser", f"users/{user['id']}"))
    run.call(
        "agentUser.get",
        "GET",
        run.graph(f"users/{user['id']}?$select=id,userPrincipalName,displayName,identityParentId"),
        retry_propagation=True,
    )
    _, graph_sp = run.call(
        "servicePrincipals.graph.find", "GET", run.graph(f"servicePrincipals?$filter=appId eq '{GRAPH_APP_ID}'")
    )
    resource = next(iter((graph_sp or {}).get("value", [])), None)
    if resource is None:
        return
    grant = {
        "clientId": identity["id"],
        "consentType": "Principal",
        "principalId": user["id"],
        "resourceId": resource["id"],
        "scope": "User.Read openid profile email",
    }
    status, lenient = run.call("grant.missing_startTime", "POST", run.graph("oauth2PermissionGrants"), json_body=grant)
    if status == 201:  # accepted where a tenant refuses it: still deleted at the end
        cleanup.insert(0, ("cleanup.grant.missing_startTime", f"oauth2PermissionGrants/{lenient['id']}"))
    now = time.gmtime(run.clock())
    timed = {
        **grant,
        "startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
        "expiryTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.clock() + 86400)),
    }
    status, created = run.call(
        "grant.create", "POST", run.graph("oauth2PermissionGrants"), json_body=timed, retry_propagation=True
    )
    if status == 201:
        cleanup.insert(0, ("cleanup.grant", f"oauth2PermissionGrants/{created['id']}"))

    def hop3(step: str, scope: str, **extra: str) -> tuple[int, Any]:
        t1_now = str(t1["access_token"])
        form = {
            "client_id": identity_app_id,
            "scope": scope,
            "grant_type": "user_fic",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": t1_now,
            "user_federated_identity_credential": str(t2["access_token"]),
            "user_id": str(user["id"]),
            "requested_token_use": "on_behalf_of",
            **extra,
        }
        return run.token(step, form)

    status, t3 = hop3("hop3", "https://graph.microsoft.com/User.Read openid profile email")
    hop3("hop3.openid", "openid")
    if status != 200:
        return
    run.token(
        "hop3.jwt_bearer_with_t3",
        {
            "client_id": identity_app_id,
            "scope": GRAPH_SCOPE,
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": str(t1["access_token"]),
            "assertion": str(t3["access_token"]),
            "requested_token_use": "on_behalf_of",
        },
        retry_propagation=False,
    )
    run.call("graph.me", "GET", run.graph("me"), bearer=str(t3["access_token"]), retry_propagation=True)


def run_scenario(run: Run, scenario: str, *, sponsors: list[str] | None = None) -> Transcript:
    """Run ``scenario`` and return its sanitized transcript (``full`` deletes what it made, always)."""
    if scenario == "read-only":
        _read_only(run)
    elif scenario == "full":
        cleanup: list[tuple[str, str]] = []
        try:
            _full(run, list(sponsors or ()), cleanup)
        finally:
            for step, path in cleanup:
                run.call(step, "DELETE", run.graph(path))
    else:
        raise ConfigurationError(
            f"Unknown conformance scenario {scenario!r}.",
            remedy=f"Run `entraclaw conformance --record FILE` (full) or add --read-only; scenarios: {SCENARIOS}.",
        )
    return Transcript(scenario=scenario, kind="", entries=list(run.entries))
