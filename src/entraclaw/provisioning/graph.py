"""One small typed Microsoft Graph client for setup, rotate and doctor.

Only the calls provisioning needs, each with Graph v1.0's documented shape:

- Blueprint: ``POST /applications/microsoft.graph.agentIdentityBlueprint``
  (learn.microsoft.com/graph/api/agentidentityblueprint-post), ``GET``/``DELETE
  /applications/{id}``, ``$filter`` on ``appId`` / ``displayName``;
- Blueprint principal: ``POST /servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal``
  with ``appId`` (agentidentityblueprintprincipal-post);
- Agent Identity: ``POST /servicePrincipals/microsoft.graph.agentIdentity`` with
  ``agentIdentityBlueprintId`` = the Blueprint's app id (agentidentity-post);
- Agent User: ``POST /users/microsoft.graph.agentUser`` with ``identityParentId``
  = the Agent Identity's object id (agentuser-post);
- consent: ``POST /oauth2PermissionGrants`` (oauth2permissiongrant-post);
- ``GET /domains`` for the default verified domain;
- certificates: ``GET /applications/{id}?$select=keyCredentials``, ``PATCH``
  (replaces the whole list: application-update), ``addKey`` / ``removeKey``
  with a proof-of-possession JWT (application-addkey, application-removekey).

Transport rules: ``trust_env`` off (REQUESTS_CA_BUNDLE must not override the
configured trust), ``@odata.nextLink`` followed, 429/503 retried after
``Retry-After`` under the one bounded policy of :mod:`entraclaw.auth.retry`,
one 401 answered by a fresh token. A Graph error body becomes
:class:`~entraclaw.errors.GraphRequestError` with ``http_status``, ``code``,
``request_id`` and ``url``; the bearer token is never in it. Every request is
counted (``counts``) so tests and the bench can assert how many writes a run made.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from entraclaw.auth.msal_http import parse_retry_after
from entraclaw.auth.retry import TokenRetryPolicy
from entraclaw.auth.token_errors import redact
from entraclaw.errors import ConfigurationError, GraphRequestError
from entraclaw.platform.proxy import proxy_failure
from entraclaw.provisioning.auth import GraphAuth

__all__ = [
    "GRAPH_APP_ID",
    "GRAPH_RETRY_POLICY",
    "WRITE_METHODS",
    "AgentIdentityInfo",
    "AgentUserInfo",
    "BlueprintInfo",
    "GraphClient",
    "KeyCredentialInfo",
    "PermissionGrantInfo",
    "ServicePrincipalInfo",
]

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# Graph throttling: Retry-After is authoritative; the same bounded rule as the token endpoint.
GRAPH_RETRY_POLICY = TokenRetryPolicy(max_attempts=5, base_delay=0.5, max_delay=8.0, max_retry_after=60.0)
_RETRY_STATUS = frozenset({429, 503, 504})
_MAX_PAGES = 200


# agentuser-list / agentuser-get (learn.microsoft.com/graph/api/agentuser-list): reads return only a
# default subset; identityParentId is not in it, and without it a re-run mistakes its own user for a stranger's.
AGENT_USER_SELECT = "id,userPrincipalName,displayName,identityParentId"

# How long a consent grant is dated to last; Graph documents no ceiling (docs silent), ten years is far.
GRANT_LIFETIME = 10 * 365 * 86400


def _graph_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _odata_literal(value: str) -> str:
    # OData string literals double their single quotes.
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class BlueprintInfo:
    object_id: str
    app_id: str
    display_name: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> BlueprintInfo:
        return cls(str(body["id"]), str(body["appId"]), str(body.get("displayName") or ""))


@dataclass(frozen=True)
class ServicePrincipalInfo:
    object_id: str
    app_id: str
    display_name: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ServicePrincipalInfo:
        return cls(str(body["id"]), str(body.get("appId") or ""), str(body.get("displayName") or ""))


@dataclass(frozen=True)
class AgentIdentityInfo:
    object_id: str
    app_id: str
    display_name: str
    blueprint_app_id: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> AgentIdentityInfo:
        # An Agent Identity's appId is its object id (learn.microsoft.com/graph/api/resources/agentidentity);
        # an answer without appId must not become an empty fmi_path.
        return cls(
            str(body["id"]),
            str(body.get("appId") or body["id"]),
            str(body.get("displayName") or ""),
            str(body.get("agentIdentityBlueprintId") or ""),
        )


@dataclass(frozen=True)
class AgentUserInfo:
    object_id: str
    upn: str
    display_name: str
    identity_parent_id: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> AgentUserInfo:
        return cls(
            str(body["id"]),
            str(body.get("userPrincipalName") or ""),
            str(body.get("displayName") or ""),
            str(body.get("identityParentId") or ""),
        )


@dataclass(frozen=True)
class PermissionGrantInfo:
    grant_id: str
    client_id: str
    consent_type: str
    principal_id: str | None
    resource_id: str
    scopes: frozenset[str]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PermissionGrantInfo:
        return cls(
            str(body["id"]),
            str(body.get("clientId") or ""),
            str(body.get("consentType") or ""),
            str(body["principalId"]) if body.get("principalId") else None,
            str(body.get("resourceId") or ""),
            frozenset(str(body.get("scope") or "").split()),
        )


@dataclass(frozen=True)
class KeyCredentialInfo:
    """A ``keyCredentials`` entry. ``sha1`` is decoded from ``customKeyIdentifier`` (Graph keeps the
    certificate's SHA-1 thumbprint there) and is upper-case hex, as Windows shows thumbprints."""

    key_id: str
    display_name: str
    start: str | None
    end: str | None
    sha1: str | None
    key_b64: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> KeyCredentialInfo:
        import base64
        import binascii

        custom = body.get("customKeyIdentifier")
        sha1 = None
        if isinstance(custom, str) and custom:
            try:
                raw = base64.b64decode(custom, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) == 20:
                sha1 = raw.hex().upper()
            elif len(custom) == 40:
                sha1 = custom.upper()
        key = body.get("key")
        if sha1 is None and isinstance(key, str) and key:
            import hashlib

            try:
                sha1 = hashlib.sha1(base64.b64decode(key), usedforsecurity=False).hexdigest().upper()
            except (binascii.Error, ValueError):
                sha1 = None
        return cls(
            key_id=str(body.get("keyId") or ""),
            display_name=str(body.get("displayName") or ""),
            start=body.get("startDateTime"),
            end=body.get("endDateTime"),
            sha1=sha1,
            key_b64=key if isinstance(key, str) else None,
        )

    def valid_at(self, moment: float) -> bool:
        import datetime as _dt

        def parse(text: str | None) -> float | None:
            if not text:
                return None
            parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=_dt.timezone.utc)
            return parsed.timestamp()

        begins, ends = parse(self.start), parse(self.end)
        return (begins is None or begins <= moment) and (ends is None or moment <= ends)


class GraphClient:
    """Graph v1.0 calls for provisioning; ``base_url`` is e.g. ``https://graph.microsoft.com/v1.0``."""

    def __init__(
        self,
        base_url: str,
        auth: GraphAuth,
        *,
        verify: str | bool = True,  # a CA bundle path (ENTRACLAW_CA_BUNDLE), or True for the default store
        session: requests.Session | None = None,
        retry_policy: TokenRetryPolicy = GRAPH_RETRY_POLICY,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        if session is None:
            from entraclaw.config import make_session

            session = make_session(verify if isinstance(verify, str) else None)
        self.session = session
        self.retry_policy = retry_policy
        self.timeout = timeout
        self._sleep = sleep
        self.counts: Counter[str] = Counter()  # "GET", "POST", ... and "retries"

    # --- accounting ---------------------------------------------------------------------

    @property
    def requests_made(self) -> int:
        return sum(n for k, n in self.counts.items() if k != "retries")

    @property
    def writes_made(self) -> int:
        return sum(self.counts[m] for m in WRITE_METHODS)

    def reset_counts(self) -> None:
        self.counts.clear()

    # --- transport ----------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if path.startswith("https://") or path.startswith("http://"):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One Graph call; returns the JSON body ({} for 204)."""
        url = self._url(path)
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            request_headers = {
                "Authorization": f"Bearer {self.auth.token()}",
                "client-request-id": str(uuid.uuid4()),
                "Accept": "application/json",
            }
            if headers:
                request_headers.update(headers)
            self.counts[method.upper()] += 1
            try:
                response = self.session.request(
                    method.upper(), url, headers=request_headers, json=json_body, params=params, timeout=self.timeout
                )
            except requests.exceptions.RequestException as exc:
                # A POST that timed out may have created the object: never resend it blindly
                # (setup's find-before-create on the next run adopts it instead).
                retryable = method.upper() != "POST" and isinstance(
                    exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
                )
                delay = self.retry_policy.delay_before(attempt, None) if retryable else None
                if delay is not None and not isinstance(exc, requests.exceptions.SSLError):
                    self.counts["retries"] += 1
                    self._sleep(delay)
                    continue
                failed = proxy_failure(exc)
                through = f" through the proxy {failed.proxy} (from {failed.source})" if failed is not None else ""
                raise GraphRequestError(
                    f"Graph {what} ({method.upper()} {url}) got no answer{through} ({type(exc).__name__}"
                    f"{': HTTP 407 Proxy Authentication Required' if failed and failed.auth_required else ''}).",
                    remedy=(
                        "Check that the Graph URL (ENTRACLAW_GRAPH_URL) is reachable and, for a private CA, "
                        "that ENTRACLAW_CA_BUNDLE names its certificate; behind a proxy set ENTRACLAW_PROXY "
                        "(--proxy; credentials as http://USER:PASSWORD@host:port) or HTTPS_PROXY / NO_PROXY."
                    ),
                    proxy=failed.proxy if failed is not None else None,
                    http_status=407 if failed is not None and failed.auth_required else None,
                    code=type(exc).__name__,
                    request_id=None,
                    url=url,
                ) from None
            status = response.status_code
            if status == 401 and not refreshed:
                # A token can expire between minting and use; one fresh token, never a loop.
                refreshed = True
                self.auth.invalidate()
                continue
            if status in _RETRY_STATUS and not (method.upper() == "POST" and status == 504):
                delay = self.retry_policy.delay_before(attempt, parse_retry_after(response.headers.get("Retry-After")))
                if delay is not None:
                    self.counts["retries"] += 1
                    self._sleep(delay)
                    continue
            if status >= 400:
                raise self._error(response, method.upper(), url, what)
            if status == 204 or not response.content:
                return {}
            try:
                body = response.json()
            except ValueError:
                raise GraphRequestError(
                    f"Graph {what} ({method.upper()} {url}) answered HTTP {status} with a body that is not JSON "
                    f"({len(response.content)} bytes).",
                    remedy="Check that ENTRACLAW_GRAPH_URL points at Microsoft Graph (or the emulator), not a proxy.",
                    http_status=status,
                    code="invalid_response",
                    request_id=response.headers.get("request-id"),
                    url=url,
                ) from None
            return body if isinstance(body, dict) else {"value": body}

    @staticmethod
    def _error(response: requests.Response, method: str, url: str, what: str) -> GraphRequestError:
        try:
            document = response.json()
        except ValueError:
            document = None
        error = document.get("error") if isinstance(document, dict) else None
        error = error if isinstance(error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), str) else None
        raw_message = error.get("message")
        message = raw_message if isinstance(raw_message, str) else ""
        inner = error.get("innerError")
        inner = inner if isinstance(inner, dict) else {}
        request_id = inner.get("request-id") or response.headers.get("request-id")
        status = response.status_code
        if status in (401, 403):
            remedy = (
                "The admin identity lacks the Graph permission for this call (see the API's permissions table), "
                "or its token is for another tenant; sign in with an identity that holds it and re-run."
            )
        elif status == 404:
            remedy = "The object is gone or not yet replicated; re-run `entraclaw setup`, which looks it up again."
        elif status in _RETRY_STATUS:
            remedy = "Graph stayed throttled or unavailable through every retry; wait a few minutes and re-run."
        else:
            remedy = "Check the request against the Graph API page named in the message and re-run."
        text = redact(message)[:300].rstrip(". ")
        return GraphRequestError(
            f"Graph {what} ({method} {url}) failed: HTTP {status} {code or ''}: {text}".rstrip(": ") + ".",
            remedy=remedy,
            http_status=status,
            code=code,
            request_id=str(request_id) if request_id else None,
            url=url,
        )

    def pages(self, path: str, *, what: str, params: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following ``@odata.nextLink``."""
        url: str | None = path
        query = params
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            body = self.request("GET", url, what=what, params=query)
            query = None  # nextLink carries the query itself
            items = body.get("value")
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict):
                        yield item
            link = body.get("@odata.nextLink")
            url = link if isinstance(link, str) and link else None
        raise GraphRequestError(
            f"Graph {what} ({path}) returned more than {_MAX_PAGES} pages.",
            remedy="Narrow the query; this is not expected for provisioning lookups.",
            http_status=None,
            code="too_many_pages",
            request_id=None,
            url=self._url(path),
        )

    def _filter(self, path: str, expression: str, *, what: str, select: str | None = None) -> list[dict[str, Any]]:
        params = {"$filter": expression, **({"$select": select} if select else {})}
        return list(self.pages(path, what=what, params=params))

    # --- Blueprint ------------------------------------------------------------------------

    def find_blueprints(self, *, display_name: str | None = None, app_id: str | None = None) -> list[BlueprintInfo]:
        if app_id is not None:
            expression = f"appId eq {_odata_literal(app_id)}"
        elif display_name is not None:
            expression = f"displayName eq {_odata_literal(display_name)}"
        else:
            raise ConfigurationError(
                "find_blueprints was called without display_name or app_id: there is nothing to look up.",
                remedy="Pass the Blueprint's app_id= (ENTRACLAW_BLUEPRINT_APP_ID) or its display_name=.",
            )
        rows = self._filter("applications", expression, what="find Blueprint")
        return [BlueprintInfo.from_json(row) for row in rows]

    def get_blueprint(self, object_id: str) -> BlueprintInfo | None:
        try:
            body = self.request("GET", f"applications/{quote(object_id)}", what="get Blueprint")
        except GraphRequestError as exc:
            if getattr(exc, "http_status", None) == 404:
                return None
            raise
        return BlueprintInfo.from_json(body)

    def create_blueprint(self, display_name: str, *, sponsor_ids: Sequence[str] = ()) -> BlueprintInfo:
        body: dict[str, Any] = {"displayName": display_name}
        if sponsor_ids:
            body["sponsors@odata.bind"] = [f"{self.base_url}/users/{s}" for s in sponsor_ids]
        created = self.request(
            "POST", "applications/microsoft.graph.agentIdentityBlueprint", what="create Blueprint", json_body=body
        )
        return BlueprintInfo.from_json(created)

    # --- service principals -----------------------------------------------------------------

    def find_service_principal(self, app_id: str) -> ServicePrincipalInfo | None:
        rows = self._filter("servicePrincipals", f"appId eq {_odata_literal(app_id)}", what="find service principal")
        return ServicePrincipalInfo.from_json(rows[0]) if rows else None

    def create_blueprint_principal(self, app_id: str) -> ServicePrincipalInfo:
        created = self.request(
            "POST",
            "servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal",
            what="create Blueprint principal",
            json_body={"appId": app_id},
        )
        return ServicePrincipalInfo.from_json(created)

    def find_agent_identities(self, display_name: str) -> list[AgentIdentityInfo]:
        rows = self._filter(
            "servicePrincipals/microsoft.graph.agentIdentity",
            f"displayName eq {_odata_literal(display_name)}",
            what="find Agent Identity",
        )
        return [AgentIdentityInfo.from_json(row) for row in rows]

    def get_agent_identity(self, object_id: str) -> AgentIdentityInfo | None:
        try:
            body = self.request(
                "GET", f"servicePrincipals/{quote(object_id)}/microsoft.graph.agentIdentity", what="get Agent Identity"
            )
        except GraphRequestError as exc:
            if getattr(exc, "http_status", None) == 404:
                return None
            raise
        return AgentIdentityInfo.from_json(body)

    def create_agent_identity(
        self, display_name: str, blueprint_app_id: str, *, sponsor_ids: Sequence[str] = ()
    ) -> AgentIdentityInfo:
        body: dict[str, Any] = {"displayName": display_name, "agentIdentityBlueprintId": blueprint_app_id}
        if sponsor_ids:
            body["sponsors@odata.bind"] = [f"{self.base_url}/users/{s}" for s in sponsor_ids]
        created = self.request(
            "POST", "servicePrincipals/microsoft.graph.agentIdentity", what="create Agent Identity", json_body=body
        )
        return AgentIdentityInfo.from_json(created)

    # --- users --------------------------------------------------------------------------------

    def find_user(self, upn: str) -> AgentUserInfo | None:
        """Any user (a person, an Agent User) by UPN."""
        rows = self._filter(
            "users", f"userPrincipalName eq {_odata_literal(upn)}", what="find user", select=AGENT_USER_SELECT
        )
        return AgentUserInfo.from_json(rows[0]) if rows else None

    def find_agent_user(self, upn: str) -> AgentUserInfo | None:
        """An Agent User by UPN; ``$select`` names ``identityParentId``, which reads leave out by default."""
        rows = self._filter(
            "users/microsoft.graph.agentUser",
            f"userPrincipalName eq {_odata_literal(upn)}",
            what="find Agent User",
            select=AGENT_USER_SELECT,
        )
        return AgentUserInfo.from_json(rows[0]) if rows else None

    def create_agent_user(
        self, upn: str, display_name: str, identity_parent_id: str, *, mail_nickname: str | None = None
    ) -> AgentUserInfo:
        body = {
            "@odata.type": "microsoft.graph.agentUser",
            "accountEnabled": True,
            "displayName": display_name,
            "mailNickname": mail_nickname or upn.split("@", 1)[0],
            "userPrincipalName": upn,
            "identityParentId": identity_parent_id,
        }
        created = self.request("POST", "users/microsoft.graph.agentUser", what="create Agent User", json_body=body)
        return AgentUserInfo.from_json(created)

    def me(self) -> AgentUserInfo | None:
        """The signed-in user (delegated tokens); None for an app-only token, which /me refuses."""
        try:
            body = self.request("GET", "me", what="GET /me")
        except GraphRequestError as exc:
            if getattr(exc, "http_status", None) in (400, 403, 404):
                return None
            raise
        return AgentUserInfo.from_json(body)

    def verified_domains(self) -> list[str]:
        return [str(row["id"]) for row in self.pages("domains", what="list domains") if row.get("isVerified")]

    def default_domain(self) -> str | None:
        """The tenant's default verified domain (``isDefault`` and ``isVerified``)."""
        fallback = None
        for row in self.pages("domains", what="list domains"):
            if row.get("isVerified") and row.get("isDefault"):
                return str(row["id"])
            if row.get("isVerified") and fallback is None:
                fallback = str(row["id"])
        return fallback

    # --- consent ------------------------------------------------------------------------------

    def find_permission_grants(self, client_id: str) -> list[PermissionGrantInfo]:
        rows = self._filter(
            "oauth2PermissionGrants", f"clientId eq {_odata_literal(client_id)}", what="find permission grants"
        )
        return [PermissionGrantInfo.from_json(row) for row in rows]

    def create_permission_grant(
        self, *, client_id: str, resource_id: str, scopes: Sequence[str], principal_id: str | None
    ) -> PermissionGrantInfo:
        now = time.time()
        body: dict[str, Any] = {
            "clientId": client_id,
            "consentType": "Principal" if principal_id else "AllPrincipals",
            "resourceId": resource_id,
            "scope": " ".join(scopes),
            # A real tenant refuses a grant without startTime: 400 "Missing property: startTime"
            # (upstream microsoft/entraclaw hard-won-learnings #10); expiryTime is sent beside it
            # (https://learn.microsoft.com/graph/api/resources/oauth2permissiongrant).
            "startTime": _graph_time(now),
            "expiryTime": _graph_time(now + GRANT_LIFETIME),
        }
        if principal_id:
            body["principalId"] = principal_id
        created = self.request("POST", "oauth2PermissionGrants", what="grant consent", json_body=body)
        return PermissionGrantInfo.from_json(created)

    def update_permission_grant(self, grant_id: str, scopes: Sequence[str]) -> None:
        self.request(
            "PATCH",
            f"oauth2PermissionGrants/{quote(grant_id)}",
            what="update consent",
            json_body={"scope": " ".join(scopes)},
        )

    # --- certificates -------------------------------------------------------------------------

    def key_credentials(self, object_id: str) -> list[KeyCredentialInfo]:
        body = self.request(
            "GET",
            f"applications/{quote(object_id)}",
            what="get keyCredentials",
            params={"$select": "id,appId,keyCredentials"},
        )
        items = body.get("keyCredentials") or []
        return [KeyCredentialInfo.from_json(item) for item in items if isinstance(item, dict)]

    def patch_key_credentials(self, object_id: str, credentials: Sequence[Mapping[str, Any]]) -> None:
        """Replace the whole list (Graph PATCH semantics): only for a Blueprint with no valid certificate."""
        self.request(
            "PATCH",
            f"applications/{quote(object_id)}",
            what="PATCH keyCredentials",
            json_body={"keyCredentials": list(credentials)},
        )

    def add_key(self, object_id: str, key_credential: Mapping[str, Any], proof: str) -> KeyCredentialInfo:
        body = self.request(
            "POST",
            f"applications/{quote(object_id)}/addKey",
            what="addKey",
            json_body={"keyCredential": dict(key_credential), "passwordCredential": None, "proof": proof},
        )
        return KeyCredentialInfo.from_json(body)

    def remove_key(self, object_id: str, key_id: str, proof: str) -> None:
        self.request(
            "POST",
            f"applications/{quote(object_id)}/removeKey",
            what="removeKey",
            json_body={"keyId": key_id, "proof": proof},
        )

    # --- deletion (rollback) ------------------------------------------------------------------

    def delete(self, collection: str, object_id: str) -> bool:
        """DELETE ``/{collection}/{id}``; False when it was already gone."""
        try:
            self.request("DELETE", f"{collection}/{quote(object_id)}", what=f"delete {collection} object")
        except GraphRequestError as exc:
            if getattr(exc, "http_status", None) == 404:
                return False
            raise
        return True
