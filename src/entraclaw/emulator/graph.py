"""The Microsoft Graph subset: ``GET /v1.0/me`` and ``GET``/``PATCH /v1.0/applications/{id}``.

Authorisation, as Graph does it:

- ``/me`` needs a *delegated* token (T3: ``idtyp=user``); an app token gets
  Graph's 400 "only valid with delegated authentication flow".
- ``/applications/{object id}`` needs an *app* token for Graph (a registered
  app's ``client_credentials`` for ``https://graph.microsoft.com/.default``)
  whose ``roles`` hold ``Application.ReadWrite.All``, or
  ``Application.ReadWrite.OwnedBy`` with the caller among the target's owners
  (``Application.Read.All`` suffices for GET).
- ``keyCredentials[].key`` is returned only when ``$select`` names
  ``keyCredentials`` (Graph returns null otherwise); PATCH replaces the whole
  list. An item may omit ``key`` only to keep an existing credential by ``keyId``.

Errors use Graph's shape: ``{"error": {"code", "message", "innerError": {"date",
"request-id", "client-request-id"}}}``.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from entraclaw.emulator import jwt_codec
from entraclaw.emulator.issuer import TokenIssuer
from entraclaw.emulator.tenant import GRAPH_APP_ID, GRAPH_RESOURCE, Application, KeyCredential, Tenant
from entraclaw.emulator.token_service import Realm

__all__ = ["GraphResponse", "GraphService"]

_APP_PATH = re.compile(r"^/v1\.0/applications/([0-9a-fA-F-]{36})$")
_APP_BY_APPID_PATH = re.compile(r"^/v1\.0/applications\(appId='([0-9a-fA-F-]{36})'\)$")
_PATCHABLE = frozenset({"keyCredentials", "displayName"})
_READ_ROLES = frozenset({"Application.Read.All", "Application.ReadWrite.All"})


@dataclass
class GraphResponse:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


class _GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def _unauthorized(message: str) -> _GraphError:
    return _GraphError(401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": 'Bearer realm=""'})


class GraphService:
    def __init__(self, tenant: Tenant, issuer: TokenIssuer, realm: Callable[[], Realm], clock: Callable[[], float]):
        self.tenant = tenant
        self.issuer = issuer
        self._realm = realm
        self._clock = clock

    def handle(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> GraphResponse:
        request_id = str(uuid.uuid4())
        client_request_id = headers.get("client-request-id") or request_id
        try:
            return self._route(method, path, query, headers, body)
        except _GraphError as err:
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            payload = {
                "error": {
                    "code": err.code,
                    "message": err.message,
                    "innerError": {"date": stamp, "request-id": request_id, "client-request-id": client_request_id},
                }
            }
            return GraphResponse(err.status, payload, err.headers)

    def _route(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> GraphResponse:
        graph_url = f"{self._realm().base_url}/v1.0"
        if path == "/v1.0/me":
            if method != "GET":
                raise _GraphError(405, "Request_BadRequest", f"Method {method} is not allowed on /me.")
            claims = self._bearer(headers)
            if claims.get("idtyp") != "user":
                raise _GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
            user = self.tenant.user(str(claims.get("oid", "")))
            if user is None:
                raise _GraphError(404, "Request_ResourceNotFound", f"Resource '{claims.get('oid')}' does not exist.")
            return GraphResponse(
                200,
                {
                    "@odata.context": f"{graph_url}/$metadata#users/$entity",
                    "id": user.object_id,
                    "userPrincipalName": user.upn,
                    "displayName": user.display_name,
                    "mail": None,
                },
            )
        match = _APP_PATH.match(path)
        by_app_id = _APP_BY_APPID_PATH.match(path)
        if match or by_app_id:
            claims = self._bearer(headers)
            key = (match or by_app_id).group(1).lower()  # type: ignore[union-attr]
            app = self.tenant.application_by_object_id(key) if match else self.tenant.application(key)
            if app is None:
                raise _GraphError(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{key}' does not exist or one of its queried reference-property objects "
                    "are not present.",
                )
            if method == "GET":
                self._authorize(claims, app, write=False)
                return GraphResponse(200, self._application_json(app, query, graph_url))
            if method == "PATCH":
                self._authorize(claims, app, write=True)
                self._patch(app, headers, body)
                return GraphResponse(204, None)
            raise _GraphError(405, "Request_BadRequest", f"Method {method} is not allowed on applications.")
        raise _GraphError(400, "BadRequest", f"Resource not found for the segment '{path.rsplit('/', 1)[-1]}'.")

    # --- authentication ---------------------------------------------------------------

    def _bearer(self, headers: Mapping[str, str]) -> dict[str, Any]:
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
        return claims

    def _authorize(self, claims: dict[str, Any], app: Application, *, write: bool) -> None:
        roles = set(claims.get("roles") or []) if claims.get("idtyp") == "app" else set()
        caller = claims.get("appid")
        if "Application.ReadWrite.All" in roles:
            return
        if "Application.ReadWrite.OwnedBy" in roles and caller in app.owners:
            return
        if not write and roles & _READ_ROLES:
            return
        raise _GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")

    # --- applications -----------------------------------------------------------------

    @staticmethod
    def _application_json(app: Application, query: Mapping[str, str], graph_url: str) -> dict[str, Any]:
        select = {s.strip() for s in query.get("$select", "").split(",") if s.strip()}
        full: dict[str, Any] = {
            "id": app.object_id,
            "appId": app.app_id,
            "displayName": app.display_name,
            "keyCredentials": [c.to_graph(include_key="keyCredentials" in select) for c in app.key_credentials],
        }
        body: dict[str, Any] = {"@odata.context": f"{graph_url}/$metadata#applications/$entity"}
        body.update({k: v for k, v in full.items() if not select or k in select})
        return body

    def _patch(self, app: Application, headers: Mapping[str, str], body: bytes) -> None:
        if "json" not in headers.get("content-type", "").lower():
            raise _GraphError(415, "BadRequest", "Content-Type must be application/json.")
        try:
            payload = json.loads(body or b"null")
        except ValueError as exc:
            raise _GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc
        if not isinstance(payload, dict):
            raise _GraphError(400, "BadRequest", "Unable to read JSON request payload: expected an object.")
        unknown = sorted(set(payload) - _PATCHABLE)
        if unknown:
            raise _GraphError(
                400,
                "Request_BadRequest",
                f"Property '{unknown[0]}' does not exist on type 'microsoft.graph.application' or cannot be set here.",
            )
        if "keyCredentials" in payload:
            items = payload["keyCredentials"]
            if not isinstance(items, list):
                raise _GraphError(400, "Request_BadRequest", "keyCredentials must be an array.")
            existing = {c.key_id: c for c in app.key_credentials}
            creds: list[KeyCredential] = []
            for index, item in enumerate(items):
                keep = (
                    isinstance(item, dict)
                    and item.get("key") in (None, "")
                    and str(item.get("keyId", "")).lower() in existing
                )
                if keep:
                    creds.append(existing[str(item["keyId"]).lower()])
                    continue
                try:
                    creds.append(KeyCredential.from_graph(item))
                except ValueError as exc:
                    raise _GraphError(
                        400, "Request_BadRequest", f"Invalid value for keyCredentials[{index}] of {app.app_id}: {exc}."
                    ) from exc
            ids = [c.key_id for c in creds]
            if len(set(ids)) != len(ids):
                raise _GraphError(400, "Request_BadRequest", "keyCredentials contain a duplicate keyId.")
            self.tenant.set_key_credentials(app.object_id, creds)
        if "displayName" in payload:
            name = payload["displayName"]
            if not isinstance(name, str) or not name:
                raise _GraphError(400, "Request_BadRequest", "displayName must be a non-empty string.")
            app.display_name = name
