"""The Microsoft Graph v1.0 subset the Agent ID setup uses, one module per resource family.

- :mod:`.applications`: Blueprints and applications, ``addKey`` / ``removeKey``, ``keyCredentials``;
- :mod:`.service_principals`: Blueprint principals, Agent Identities, ``appRoleAssignments``;
- :mod:`.users`: Agent Users and ``/me``;
- :mod:`.grants`: ``oauth2PermissionGrants`` (delegated consent);
- :mod:`.domains`: ``/domains``;
- :mod:`.chats`: Teams chats, chat members, chat messages (``/chats``, ``/me/chats``);
- :mod:`.mail`: ``sendMail`` and message lists (``/me/messages``, ``/me/mailFolders/{f}/messages``).

What the agent's tools call (issue 15). Scope = the least-privileged delegated permission of the
doc page's "Permissions" table; any higher one it lists also passes. Missing scope: 403 in Graph's
error shape (Teams: ``Forbidden``; Outlook: ``ErrorAccessDenied``; directory:
``Authorization_RequestDenied``).

======  ==========================================  ========================================
method  path                                        scope (least privileged)
======  ==========================================  ========================================
POST    /chats                                      Chat.Create
GET     /me/chats, /users/{id}/chats, /chats        Chat.ReadBasic   ($top<=50, $expand=members)
GET     /chats/{id}                                 Chat.ReadBasic
GET     /chats/{id}/members                         ChatMember.Read (or Chat.ReadBasic)
POST    /chats/{id}/members                         ChatMember.ReadWrite   (201 + Location)
POST    /chats/{id}/messages                        ChatMessage.Send   (text/html, mentions)
GET     /chats/{id}/messages                        Chat.Read   ($top<=50, newest first,
                                                    $filter lastModifiedDateTime gt|lt with
                                                    $orderby=lastModifiedDateTime desc)
GET     /users/{id | upn}, /users?$filter=          User.ReadBasic.All (self: User.Read);
        mail eq '..' / userPrincipalName eq '..'    guest UPNs carry #EXT# (send it as %23EXT%23)
POST    /me/sendMail                                Mail.Send   (202, no body)
GET     /me/messages, /me/mailFolders/{f}/messages  Mail.ReadBasic (bodies need Mail.Read);
                                                    $filter isRead / receivedDateTime, $top,
                                                    $select, Prefer: outlook.body-content-type="text"
GET     /{domain}/v2.0/.well-known/openid-configuration   (no token) the tenant of a domain:
                                                    issuer https://<emulator>/{tenant id}/v2.0
======  ==========================================  ========================================

Seeded people (``Emulator.people``, made on first use; ``serve`` prints them as ``colleague_user``,
``colleague_id``, ``colleague2_user``, ``guest_user``, ``guest_user_id``, ``external_tenant`` (domain
and id), ``external_user`` and ``control_url``): the colleague
``megan.bowen@<default domain>`` (internal member with a mailbox: the one who replies), a second
colleague ``lee.gu@...`` for group chats, the guest ``alex.wilber_fabrikam.example#EXT#@<domain>``
(userType Guest, mail alex.wilber@fabrikam.example, chat role ``guest``) and, in the second tenant
``fabrikam.example`` (its own tenant id, served by OpenID discovery), ``jordan.miller@fabrikam.example``
with no account here: a federated chat member (``tenantId`` = that tenant, role ``owner``).

Making the colleague reply: ``emu.workspace.add_rule(AutoReply(colleague_id, "Got it: {text}",
delay=2))`` (every later message to it in a chat it is in, or mail to it, is answered after 2 s of
emulator clock), ``serve --auto-reply TEXT [--auto-reply-delay S]`` for the same from the command
line, or over HTTPS on the emulator (loopback, no token; :mod:`entraclaw.emulator.control`):
``POST /emulator/chats/{chat id}/messages`` {"from": upn, "content": "...", "contentType": "text"},
``POST /emulator/mail`` {"from", "to": [..], "subject", "content"}, ``POST /emulator/auto-replies``
{"from", "text", "delay", "channel": chat|mail|both}, ``POST /emulator/faults`` {"kind": "429"|"5xx",
"path": "/v1.0/chats/*/messages", "count", "retry_after", "status"}, ``GET /emulator/outbound``.

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
from urllib.parse import unquote

from entraclaw.emulator import jwt_codec
from entraclaw.emulator.graph import (
    app_limits,
    applications,
    chats,
    domains,
    grants,
    mail,
    service_principals,
    users,
)
from entraclaw.emulator.graph._core import (
    Caller,
    Context,
    GraphError,
    GraphResponse,
    Request,
    no_segment,
    not_found,
)
from entraclaw.emulator.issuer import TokenIssuer
from entraclaw.emulator.realm import Realm
from entraclaw.emulator.tenant import GRAPH_APP_ID, GRAPH_RESOURCE, Tenant
from entraclaw.emulator.workspace import Workspace

__all__ = ["VERSIONS", "GraphError", "GraphResponse", "GraphService", "is_graph_path"]

#: The Graph versions served. The Agent ID APIs began on beta and upstream still calls them there
#: (evidence #12: AIB:360, EAU:68); both serve the same resources here.
VERSIONS = ("v1.0", "beta")


def is_graph_path(path: str) -> bool:
    """True for ``/v1.0/...`` and ``/beta/...``: a Graph request rather than a token endpoint one."""
    return any(path.startswith(f"/{v}/") for v in VERSIONS)


log = logging.getLogger("entraclaw.emulator")

_USER_SCOPED = frozenset({"chats", "messages", "mailFolders", "sendMail"})


def _user_scoped(ctx: Context, user_key: str | None, rest: list[str]) -> GraphResponse:
    """``/me/<rest>`` (``user_key`` None) or ``/users/{id | upn}/<rest>``: the chat and mail families."""
    if user_key is None:
        if not ctx.caller.delegated:
            raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        key = ctx.caller.user_id or ""
    else:
        key = unquote(user_key)
    found = ctx.service.workspace.directory_user(key)
    if found is None:
        raise not_found(key)
    if rest[0] == "chats":
        return chats.handle_user_chats(ctx, found, rest[1:])
    return mail.handle_user_mail(ctx, found, rest)


def _me(ctx: Context) -> GraphResponse:
    seg = ctx.req.segments
    if len(seg) > 1 and seg[1] in _USER_SCOPED:
        return _user_scoped(ctx, None, seg[1:])
    return users.handle_me(ctx)


def _users(ctx: Context) -> GraphResponse:
    seg = ctx.req.segments
    if len(seg) > 2 and seg[2] in _USER_SCOPED:
        return _user_scoped(ctx, seg[1], seg[2:])
    return users.handle(ctx)


_FAMILIES: dict[str, Callable[[Context], GraphResponse]] = {
    "applications": applications.handle,
    "servicePrincipals": service_principals.handle,
    "users": _users,
    "me": _me,
    "chats": chats.handle,
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
        *,
        workspace: Workspace | None = None,
    ) -> None:
        self.tenant = tenant
        #: Chats, mailboxes, seeded colleagues and the external tenant (what the agent's tools use).
        self.workspace = workspace if workspace is not None else Workspace(tenant, clock)
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
