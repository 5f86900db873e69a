"""``/users`` (Agent Users and the seeded admin) and ``/me``.

Endpoints and the doc page each follows:

- ``POST /users/microsoft.graph.agentUser`` and ``POST /users`` with
  ``"@odata.type": "microsoft.graph.agentUser"`` —
  https://learn.microsoft.com/graph/api/agentuser-post?view=graph-rest-1.0 : 201; required
  ``accountEnabled``, ``displayName``, ``mailNickname``, ``userPrincipalName`` (its domain must be
  one of the tenant's verified domains) and ``identityParentId`` (the Agent Identity's object id);
  "an identityParentId already linked to another agentUser returns a 400 Bad Request error";
  app roles / scp AgentIdUser.ReadWrite.IdentityParentedBy (the caller is the parent's Blueprint
  or owns the parent), AgentIdUser.ReadWrite.All, User.ReadWrite.All.
- ``GET /users`` (+ ``$filter`` userPrincipalName / displayName / id / identityParentId eq,
  ``$top``), ``GET /users/microsoft.graph.agentUser``, ``GET|DELETE /users/{id | userPrincipalName}``
  — https://learn.microsoft.com/graph/api/user-list , user-get, agentuser-get, agentuser-delete
  (204): User.Read.All, User.ReadWrite.All, AgentIdUser.ReadWrite.All, Directory.Read.All; delete
  AgentIdUser.ReadWrite.All / User.ReadWrite.All (IdentityParentedBy for the caller's own).
- ``GET /me`` — https://learn.microsoft.com/graph/api/user-get : delegated only (an app token gets
  400 "/me request is only valid with delegated authentication flow.").

Reads (list, get, /me) answer the default property subset user-get documents (agentuser-list /
agentuser-get: "only a default subset"), or exactly what ``$select`` names; ``identityParentId`` and
``mailNickname`` are not in it. The create answer carries every property (docs silent on its shape).

Docs silent: the error code and text for an unverified UPN domain and a taken UPN (Graph's usual
Request_BadRequest texts are used), and creating plain (non-agent) users, which the emulator does
not support (400).
"""

from __future__ import annotations

import re
from typing import Any

from entraclaw.emulator.graph._core import (
    GUID_RE,
    Context,
    GraphError,
    GraphResponse,
    agent_id_write_guard,
    bad_request,
    created,
    entity,
    matches,
    method_not_allowed,
    no_segment,
    not_found,
    page,
    query_filter,
    require,
)
from entraclaw.emulator.graph.propagation import refuse_if_propagating
from entraclaw.emulator.tenant import AgentUser, DirectoryUser

__all__ = ["handle", "handle_me"]

AGENT_USER = "microsoft.graph.agentUser"
_READ = ("User.Read.All", "User.ReadWrite.All", "AgentIdUser.ReadWrite.All", "Directory.Read.All")
_WRITE = ("AgentIdUser.ReadWrite.All", "User.ReadWrite.All")
_UPN_CHARS = re.compile(r"^[A-Za-z0-9'.\-_!#^~]+@[A-Za-z0-9.\-]+$")
_REQUIRED = ("accountEnabled", "displayName", "mailNickname", "userPrincipalName", "identityParentId")


# https://learn.microsoft.com/graph/api/user-get , agentuser-get , agentuser-list: "By default, only a
# subset of properties is returned"; others only when $select names them. The default set is user-get's.
DEFAULT_PROPERTIES = frozenset(
    {
        "businessPhones",
        "displayName",
        "givenName",
        "id",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
    }
)


def user_json(user: AgentUser | DirectoryUser, select: set[str] | frozenset[str] | None = None) -> dict[str, Any]:
    """The user as Graph answers a read: the default subset, or exactly ``select`` (None: every property)."""
    body: dict[str, Any] = {}
    if isinstance(user, AgentUser):
        body["@odata.type"] = f"#{AGENT_USER}"
    full: dict[str, Any] = {
        "id": user.object_id,
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": None,
        "jobTitle": None,
        "mail": user.upn if isinstance(user, AgentUser) else None,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": None,
        "userPrincipalName": user.upn,
    }
    if isinstance(user, AgentUser):
        full["mailNickname"] = user.mail_nickname
        full["identityParentId"] = user.identity_parent_id
    body.update({k: v for k, v in full.items() if select is None or k in select})
    return body


def _read_select(ctx: Context) -> frozenset[str]:
    return frozenset(ctx.req.select) or DEFAULT_PROPERTIES


def handle_me(ctx: Context) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/user-get (GET /me: delegated only)
    if ctx.req.method != "GET" or len(ctx.req.segments) != 1:
        raise method_not_allowed(ctx.req.method, "/me")
    caller = ctx.caller
    if not caller.delegated:
        raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
    user: AgentUser | DirectoryUser | None = ctx.tenant.user(caller.user_id or "") or caller.person
    if user is None:
        raise not_found(str(caller.user_id))
    body = entity(ctx, "users", user_json(user, _read_select(ctx)))
    if isinstance(user, AgentUser) and "mail" in body:
        # /me answered the Agent User before Agent ID typing was modelled; keep its mail as before.
        body["mail"] = None
    return GraphResponse(200, body)


def handle(ctx: Context) -> GraphResponse:
    seg = ctx.req.segments
    method = ctx.req.method
    if seg[0] != "users":
        raise no_segment(seg[0])
    if len(seg) == 1 or (len(seg) == 2 and seg[1] == AGENT_USER):
        typed = len(seg) == 2
        if method == "GET":
            return _list(ctx, agents_only=typed)
        if method == "POST":
            return _create(ctx, typed=typed)
        raise _method(method)
    key = seg[1]
    hidden_ok = method != "GET"
    user: AgentUser | DirectoryUser | None
    if GUID_RE.match(key):
        user = ctx.tenant.user(key.lower(), include_hidden=hidden_ok) or ctx.tenant.person(key.lower())
    else:
        user = ctx.tenant.user_by_upn(key, include_hidden=hidden_ok) or ctx.tenant.person_by_upn(key)
    if user is None:
        raise not_found(key)
    rest = seg[2:]
    if rest and rest[0] == AGENT_USER:
        if not isinstance(user, AgentUser):
            raise not_found(key)
        rest = rest[1:]
    if rest:
        raise no_segment(rest[0])
    if method == "GET":
        require(ctx.caller, app=_READ, delegated=(*_READ, "User.ReadBasic.All"))
        return GraphResponse(200, entity(ctx, "users", user_json(user, _read_select(ctx))))
    if method == "DELETE":
        if not isinstance(user, AgentUser):
            raise GraphError(403, "Authorization_RequestDenied", "The emulator does not delete its seeded users.")
        agent_id_write_guard(ctx.caller)
        _authorize_parented(ctx, user.agent_identity_app_id)
        ctx.tenant.delete_user(user.object_id)
        return GraphResponse(204, None)
    raise _method(method)


def _method(method: str) -> GraphError:
    return method_not_allowed(method, "users")


def _authorize_parented(ctx: Context, identity_app_id: str) -> None:
    """AgentIdUser.ReadWrite.IdentityParentedBy covers users whose parent the caller's Blueprint made or owns."""
    identity = ctx.tenant.agent_identity(identity_app_id)
    owners: set[str] = set()
    if identity is not None:
        owners = {*identity.owners}
        blueprint = ctx.tenant.application(identity.blueprint_app_id)
        if blueprint is not None:
            owners |= {blueprint.app_id}
    require(
        ctx.caller,
        app=_WRITE,
        delegated=_WRITE,
        owners=owners,
        owned_app=("AgentIdUser.ReadWrite.IdentityParentedBy",),
        owned_delegated=("AgentIdUser.ReadWrite.IdentityParentedBy",),
    )


def _list(ctx: Context, *, agents_only: bool) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/user-list ; https://learn.microsoft.com/graph/api/agentuser-list
    require(ctx.caller, app=_READ, delegated=(*_READ, "User.ReadBasic.All"))
    clauses = query_filter(ctx, "user", "userPrincipalName", "displayName", "id", "identityParentId", "mailNickname")
    people: list[AgentUser | DirectoryUser] = [] if agents_only else list(ctx.tenant.people)
    candidates: list[AgentUser | DirectoryUser] = [
        *people,
        *(u for u in ctx.tenant.agent_users if ctx.tenant.visible(u)),
    ]
    # $filter sees every property; the answer carries the default subset or what $select names.
    shown = _read_select(ctx)
    items = [user_json(u, shown) for u in candidates if matches(user_json(u), clauses)]
    cast = f"/{AGENT_USER}" if agents_only else ""
    return page(ctx, items, f"users{cast}")


def _create(ctx: Context, *, typed: bool) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/agentuser-post?view=graph-rest-1.0 (201)
    payload = ctx.req.json()
    kind = str(payload.get("@odata.type", "")).lstrip("#").lower()
    if not typed and kind != AGENT_USER.lower():
        raise bad_request(
            "The emulator creates agent users only: POST /users/microsoft.graph.agentUser or set "
            "'@odata.type': 'microsoft.graph.agentUser'."
        )
    caller = ctx.caller
    agent_id_write_guard(caller)
    missing = [name for name in _REQUIRED if payload.get(name) in (None, "")]
    if missing:
        raise bad_request(f"Property '{missing[0]}' is required to create an agent user.")
    if not isinstance(payload["accountEnabled"], bool):
        raise bad_request("Property 'accountEnabled' must be true or false.")
    parent_id = str(payload["identityParentId"]).lower()
    identity = ctx.tenant.agent_identity_by_object_id(parent_id) if GUID_RE.match(parent_id) else None
    if identity is None:
        raise bad_request(f"identityParentId '{parent_id}' is not an agent identity in tenant {ctx.tenant.tenant_id}.")
    refuse_if_propagating(ctx, identity, parent_id)
    _authorize_parented(ctx, identity.app_id)
    if any(u.identity_parent_id == identity.object_id for u in ctx.tenant.agent_users):
        raise bad_request(f"Agent identity {identity.object_id} is already the identity parent of another agent user.")
    upn = str(payload["userPrincipalName"])
    if not _UPN_CHARS.match(upn):
        raise bad_request(f"Property userPrincipalName '{upn}' is invalid.")
    domain = upn.rsplit("@", 1)[1].lower()
    if not any(d.name == domain and d.is_verified for d in ctx.tenant.domains):
        raise bad_request(
            "The domain portion of the userPrincipalName property is invalid. You must use one of the verified "
            f"domain names in your organization ({', '.join(d.name for d in ctx.tenant.domains if d.is_verified)})."
        )
    if ctx.tenant.user_by_upn(upn) is not None or ctx.tenant.person_by_upn(upn) is not None:
        raise bad_request("Another object with the same value for property userPrincipalName already exists.")
    user = ctx.tenant.add_agent_user(
        identity.app_id,
        upn,
        str(payload["displayName"]),
        mail_nickname=str(payload["mailNickname"]),
        account_enabled=payload["accountEnabled"],
        over_graph=True,
    )
    return created(ctx, "users", user.object_id, entity(ctx, "users", user_json(user)))
