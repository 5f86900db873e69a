"""The Microsoft Graph v1.0 subset the Agent ID setup uses, one module per resource family.

- :mod:`.applications`: Blueprints and applications, ``addKey`` / ``removeKey``, ``keyCredentials``;
- :mod:`.service_principals`: Blueprint principals, Agent Identities, ``appRoleAssignments``;
- :mod:`.users`: Agent Users and ``/me``;
- :mod:`.grants`: ``oauth2PermissionGrants`` (delegated consent);
- :mod:`.domains`: ``/domains``.

Every call is authenticated here: a bearer token signed by this tenant, issued by it, for
Graph's audience and not expired (else 401 InvalidAuthenticationToken, as Graph answers).
The family then checks the permission the doc page lists: ``roles`` for app-only tokens,
``scp`` for delegated ones. Errors use Graph's body with ``innerError`` (date, request-id,
client-request-id). Objects created over Graph become readable after the tenant's
``propagation_delay`` (404 until then); writes are saved through ``on_write`` before the
response leaves, so a client that saw 2xx never loses the object to a crash of the server.
"""

from __future__ import annotations

import datetime as _dt
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from entraclaw.emulator import jwt_codec
from entraclaw.emulator.graph import app_limits, applications, domains, grants, service_principals, users
from entraclaw.emulator.graph._core import Caller, Context, GraphError, GraphResponse, Request, no_segment
from entraclaw.emulator.issuer import TokenIssuer
from entraclaw.emulator.tenant import GRAPH_APP_ID, GRAPH_RESOURCE, Tenant
from entraclaw.emulator.token_service import Realm

__all__ = ["VERSIONS", "GraphError", "GraphResponse", "GraphService", "is_graph_path"]

#: The Graph versions served. The Agent ID APIs began on beta and upstream still calls them there
#: (evidence #12: AIB:360, EAU:68); both serve the same resources here.
VERSIONS = ("v1.0", "beta")


def is_graph_path(path: str) -> bool:
    """True for ``/v1.0/...`` and ``/beta/...``: a Graph request rather than a token endpoint one."""
    return any(path.startswith(f"/{v}/") for v in VERSIONS)


log = logging.getLogger("entraclaw.emulator")

_FAMILIES: dict[str, Callable[[Context], GraphResponse]] = {
    "applications": applications.handle,
    "servicePrincipals": service_principals.handle,
    "users": users.handle,
    "me": users.handle_me,
    "oauth2PermissionGrants": grants.handle,
    "domains": domains.handle,
    "policies": app_limits.handle_policies,
}
_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def _unauthorized(message: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": 'Bearer realm=""'})


class GraphService:
    def __init__(
        self,
        tenant: Tenant,
        issuer: TokenIssuer,
        realm: Callable[[], Realm],
        clock: Callable[[], float],
        on_write: Callable[[], None] | None = None,
    ) -> None:
        self.tenant = tenant
        self.issuer = issuer
        self._realm = realm
        self._clock = clock
        #: Called after every successful write, before the response is sent (the emulator saves state).
        self.on_write = on_write
        #: Object-size limit and app management policy on keyCredentials (graph/app_limits.py).
        self.app_limits = app_limits.AppLimits()

    def handle(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> GraphResponse:
        request_id = str(uuid.uuid4())
        client_request_id = headers.get("client-request-id") or request_id
        try:
            result = self._route(method, path, query, headers, body)
        except GraphError as err:
            return self.error_response(err, request_id, client_request_id)
        except Exception:  # a bug must still answer like Graph does, and leave its trace in the log
            log.exception("Graph %s %s failed", method, path)
            crash = GraphError(500, "generalException", "An unspecified error occurred while processing the request.")
            return self.error_response(crash, request_id, client_request_id)
        if method in _WRITES and 200 <= result.status < 300 and self.on_write is not None:
            self.on_write()
        result.headers.setdefault("request-id", request_id)
        return result

    @staticmethod
    def error_response(err: GraphError, request_id: str, client_request_id: str | None = None) -> GraphResponse:
        """Graph's error body (https://learn.microsoft.com/graph/errors) for ``err``."""
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        payload = {
            "error": {
                "code": err.code,
                "message": err.message,
                "innerError": {
                    "date": stamp,
                    "request-id": request_id,
                    "client-request-id": client_request_id or request_id,
                },
            }
        }
        details = getattr(err, "details", None)
        if details:
            payload["error"]["details"] = details
        return GraphResponse(err.status, payload, {**err.headers, "request-id": request_id})

    def _route(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> GraphResponse:
        version = path.split("/", 2)[1]
        graph_url = f"{self._realm().base_url}/{version}"
        rest = path[len(version) + 1 :]
        segments = [s for s in rest.split("/") if s]
        family = None
        if segments:
            head = segments[0].split("(", 1)[0]
            family = _FAMILIES.get(head)
        if family is None:
            raise no_segment(segments[0] if segments else "")
        caller = self._bearer(headers)
        req = Request(method, segments, query, headers, body, graph_url, rest)
        return family(Context(req, caller, self.tenant, self, self._clock))

    # --- authentication ---------------------------------------------------------------

    def _bearer(self, headers: Mapping[str, str]) -> Caller:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("Access token is empty.")
        try:
            parsed = jwt_codec.parse(token.strip())
        except jwt_codec.MalformedJwt as exc:
            raise _unauthorized("CompactToken parsing failed with error code: 80049217") from exc
        if not self.issuer.verify(parsed):
            raise _unauthorized("Access token validation failure.")
        claims = parsed.claims
        realm = self._realm()
        if claims.get("iss") != realm.issuer:
            raise _unauthorized("Access token validation failure. Invalid issuer.")
        if claims.get("aud") not in (GRAPH_RESOURCE, GRAPH_APP_ID, GRAPH_RESOURCE + "/"):
            raise _unauthorized("Access token validation failure. Invalid audience.")
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        now = self._clock()
        if not isinstance(exp, (int, float)) or now > exp:
            raise _unauthorized("Lifetime validation failed, the token is expired.")
        if not isinstance(nbf, (int, float)) or now < nbf - 300:
            raise _unauthorized("Lifetime validation failed, the token is not yet valid.")
        return self._caller(claims)

    def _caller(self, claims: dict[str, Any]) -> Caller:
        app_id = str(claims.get("appid") or claims.get("azp") or "")
        delegated = claims.get("idtyp") == "user" or "scp" in claims
        user_id = str(claims.get("oid")) if delegated and claims.get("oid") else None
        roles = frozenset(claims.get("roles") or []) if not delegated else frozenset()
        scopes = frozenset(str(claims.get("scp", "")).split()) if delegated else frozenset()
        sp_id = self.tenant.client_sp_id(app_id) if app_id else None
        person = self.tenant.person(user_id) if user_id else None
        return Caller(claims, app_id, sp_id, user_id, roles, scopes, person)
