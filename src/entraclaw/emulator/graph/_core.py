"""What every Graph resource family shares: the request, the caller, errors, permission checks, $filter, paging.

Error body, as Graph documents it (https://learn.microsoft.com/graph/errors):
``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from entraclaw.emulator.tenant import DirectoryUser, Tenant

if TYPE_CHECKING:
    from entraclaw.emulator.graph import GraphService

__all__ = [
    "Caller",
    "GraphError",
    "GraphResponse",
    "Request",
    "addressed",
    "agent_id_write_guard",
    "bad_request",
    "bind_ids",
    "bind_sponsors",
    "created",
    "denied",
    "entity",
    "method_not_allowed",
    "no_segment",
    "not_found",
    "page",
    "parse_filter",
    "query_filter",
    "require",
    "require_display_name",
    "require_graph_resource",
    "require_principal",
    "stamp",
]

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_APPID_KEY = re.compile(r"^\(appId='([0-9a-fA-F-]{36})'\)$")
DEFAULT_PAGE = 100
MAX_PAGE = 999


@dataclass
class GraphResponse:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def not_found(key: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
    )


def denied(detail: str = "") -> GraphError:
    # Graph's text for a missing permission; the emulator appends which permission it looked for.
    message = "Insufficient privileges to complete the operation."
    return GraphError(403, "Authorization_RequestDenied", f"{message} {detail}".strip())


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    return GraphError(400, code, message)


def no_segment(segment: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def method_not_allowed(method: str, where: str) -> GraphError:
    return GraphError(405, "Request_BadRequest", f"Method {method} is not allowed on {where}.")


def stamp(seconds: float) -> str:
    """Graph's ``createdDateTime`` form for a tenant clock reading."""
    return _dt.datetime.fromtimestamp(max(seconds, 0.0), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Caller:
    """Who a verified Graph access token speaks for."""

    claims: dict[str, Any]
    app_id: str
    sp_id: str | None  # the calling client's service principal object id
    user_id: str | None  # delegated tokens: the signed-in user's object id
    roles: frozenset[str]
    scopes: frozenset[str]
    person: DirectoryUser | None

    @property
    def delegated(self) -> bool:
        return self.user_id is not None

    @property
    def ids(self) -> frozenset[str]:
        """The directory ids that make the caller an owner: the user, or the app (by app id and SP id)."""
        if self.user_id is not None:
            return frozenset({self.user_id})
        return frozenset(i for i in (self.app_id, self.sp_id) if i)

    def has(self, *permissions: str) -> bool:
        held = self.scopes if self.delegated else self.roles
        return bool(held & set(permissions))

    def owns(self, owners: Iterable[str]) -> bool:
        return bool(self.ids & set(owners))

    @property
    def creator(self) -> str:
        """The owner Graph records for what this caller creates: the signed-in user, else the app's principal."""
        return self.user_id or self.sp_id or self.app_id

    @property
    def admin(self) -> bool:
        """A delegated caller holding a directory role (the seeded admin); agent users never do."""
        return self.person is not None and bool(self.person.roles)


def require(
    caller: Caller,
    *,
    app: Sequence[str],
    delegated: Sequence[str],
    owners: Iterable[str] | None = None,
    owned_app: Sequence[str] = (),
    owned_delegated: Sequence[str] = (),
) -> None:
    """Pass when the caller holds one of the permissions the doc page lists for its token type.

    Delegated callers also need a directory role (Graph combines the scope with the signed-in
    user's role) unless they own the target. ``owned_*`` permissions count only when the caller
    is among ``owners`` (Application.ReadWrite.OwnedBy and the like).
    """
    owner = owners is not None and caller.owns(owners)
    if caller.delegated:
        if caller.has(*delegated) and (caller.admin or owner):
            return
        if owner and caller.has(*owned_delegated):
            return
        wanted = delegated
    else:
        if caller.has(*app):
            return
        if owner and caller.has(*owned_app):
            return
        wanted = app
    kind = "delegated scope" if caller.delegated else "application role"
    raise denied(f"The call needs the {kind} {' or '.join(wanted)}" + (" (or ownership)." if owned_app else "."))


def agent_id_write_guard(caller: Caller) -> None:
    """Entra ignores Agent ID permissions next to Directory.AccessAsUser.All / Directory.ReadWrite.All.

    Documented as a known issue on every Agent ID write page (rbac-agentid-apis-write include, e.g.
    https://learn.microsoft.com/graph/api/agentidentityblueprint-post): "If the client is granted
    either the Directory.AccessAsUser.All or Directory.ReadWrite.All permission, the client's
    permissions to create, update, and delete Agent IDs are ignored, which can cause requests to
    fail with 403 Forbidden error." The error code is not given (docs silent); Graph's generic
    Authorization_RequestDenied is used.
    """
    held = caller.scopes | caller.roles
    blocked = sorted(held & {"Directory.AccessAsUser.All", "Directory.ReadWrite.All"})
    if blocked:
        raise GraphError(
            403,
            "Authorization_RequestDenied",
            f"Insufficient privileges to complete the operation. The token carries {', '.join(blocked)}, so Entra "
            "ignores its Agent ID permissions: request a token without it.",
        )


@dataclass
class Request:
    method: str
    segments: list[str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    graph_url: str
    path: str

    def json(self) -> dict[str, Any]:
        if "json" not in self.headers.get("content-type", "").lower():
            raise GraphError(415, "BadRequest", "Content-Type must be application/json.")
        try:
            payload = json.loads(self.body or b"null")
        except ValueError as exc:
            raise bad_request("Unable to read JSON request payload.", "BadRequest") from exc
        if not isinstance(payload, dict):
            raise bad_request("Unable to read JSON request payload: expected an object.", "BadRequest")
        return payload

    @property
    def select(self) -> set[str]:
        return {s.strip() for s in self.query.get("$select", "").split(",") if s.strip()}


@dataclass
class Context:
    """What a family handler gets: the request, the caller, the tenant and the service."""

    req: Request
    caller: Caller
    tenant: Tenant
    service: GraphService
    now: Callable[[], float]


def metadata_url(ctx: Context, context_path: str) -> str:
    """The ``@odata.context`` URL Graph gives a response about ``context_path`` (``users``, ``applications/<cast>``)."""
    return f"{ctx.req.graph_url}/$metadata#{context_path}"


def entity(ctx: Context, context_path: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as one entity of ``context_path`` (``users``, ``servicePrincipals``...), led by its @odata.context."""
    return {"@odata.context": metadata_url(ctx, f"{context_path}/$entity"), **body}


def created(ctx: Context, collection: str, object_id: str, body: dict[str, Any]) -> GraphResponse:
    """201 with the new object and the Location Graph sends for it."""
    return GraphResponse(201, body, {"Location": f"{ctx.req.graph_url}/{collection}/{object_id}"})


def require_display_name(payload: Mapping[str, Any]) -> str:
    name = payload.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("Property 'displayName' is required and must be a non-empty string.")
    return name.strip()


def bind_sponsors(ctx: Context, payload: Mapping[str, Any], *, required_by: str | None) -> list[str]:
    """The ``sponsors@odata.bind`` user ids, each a user of the tenant; at least one when ``required_by`` names who."""
    sponsors = bind_ids(payload, "sponsors", ("users", "groups"))
    if required_by is not None and not sponsors:
        raise bad_request(
            f"{required_by} needs at least one sponsor: set 'sponsors@odata.bind' to "
            f"['{ctx.req.graph_url}/users/<user id>']."
        )
    for oid in sponsors:
        if ctx.tenant.person(oid) is None and ctx.tenant.user(oid) is None:
            raise bad_request(f"Sponsor '{oid}' is not a user in tenant {ctx.tenant.tenant_id}.")
    return sponsors


def require_principal(ctx: Context, object_id: str, prop: str) -> None:
    """``object_id`` (the payload's ``prop``) is a service principal or an Agent Identity of the tenant."""
    tenant = ctx.tenant
    if tenant.service_principal(object_id) is None and tenant.agent_identity_by_object_id(object_id) is None:
        raise bad_request(f"{prop} '{object_id}' is not a service principal in tenant {tenant.tenant_id}.")


def require_graph_resource(ctx: Context, resource_id: str, published: str) -> None:
    """Microsoft Graph's principal is the only resource the emulator publishes ``published`` (roles, scopes) for."""
    graph_sp_id = ctx.tenant.graph_sp.object_id
    if resource_id != graph_sp_id:
        raise bad_request(
            f"resourceId '{resource_id}' is not a resource the emulator publishes {published} for; use Microsoft "
            f"Graph's service principal {graph_sp_id}."
        )


_T = TypeVar("_T")


def addressed(
    ctx: Context,
    keyed: tuple[str, str] | None,
    by_app_id: Callable[[str, bool], _T | None],
    by_id: Callable[[str, bool], _T | None],
) -> tuple[str, _T, list[str]]:
    """The object ``/<collection>/{id}`` or ``/<collection>(appId='..')`` names, its key and the segments after it.

    Writes may address an object that has not propagated yet (the caller just made it); reads 404
    until it has. A malformed id is a 404 naming the segment, as Graph answers.
    """
    seg = ctx.req.segments
    include_hidden = ctx.req.method != "GET"
    if keyed is not None:
        key, rest, target = keyed[1], seg[1:], by_app_id(keyed[1], include_hidden)
    else:
        key, rest = seg[1].lower(), seg[2:]
        if not GUID_RE.match(key):
            raise not_found(seg[1])
        target = by_id(key, include_hidden)
    if target is None:
        raise not_found(key)
    return key, target, rest


def split_key(segment: str, collection: str) -> tuple[str, str] | None:
    """``applications(appId='x')`` -> ("appId", x); None for other segments."""
    if not segment.startswith(collection):
        return None
    match = _APPID_KEY.match(segment[len(collection) :])
    return ("appId", match.group(1).lower()) if match else None


def parse_filter(text: str, allowed: Mapping[str, str], resource: str) -> list[tuple[str, str | None]]:
    """``a eq 'x' and b eq 'y'`` -> [(a, x), (b, y)]; only ``eq`` on the listed properties.

    ``allowed`` maps a Graph property name (matched case-insensitively) to the key the caller
    compares. Graph answers other clauses with Request_UnsupportedQuery (400).
    """
    clauses: list[tuple[str, str | None]] = []
    if not text.strip():
        return clauses
    by_lower = {k.lower(): v for k, v in allowed.items()}
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = re.fullmatch(r"\s*([A-Za-z]+)\s+eq\s+(?:'((?:[^']|'')*)'|(null))\s*", part)
        if match is None:
            raise bad_request(f"Invalid filter clause: '{part.strip()}'.", "BadRequest")
        prop = match.group(1)
        key = by_lower.get(prop.lower())
        if key is None:
            raise bad_request(
                f"Unsupported or invalid query filter clause specified for property '{prop}' of resource '{resource}'.",
                "Request_UnsupportedQuery",
            )
        value = None if match.group(3) else match.group(2).replace("''", "'")
        clauses.append((key, value))
    return clauses


def query_filter(ctx: Context, resource: str, *properties: str) -> list[tuple[str, str | None]]:
    """The request's ``$filter`` over ``properties``, each compared under its own Graph name."""
    return parse_filter(ctx.req.query.get("$filter", ""), {name: name for name in properties}, resource)


def matches(item: Mapping[str, Any], clauses: Sequence[tuple[str, str | None]]) -> bool:
    for key, value in clauses:
        have = item.get(key)
        if value is None:
            if have is not None:
                return False
        elif not isinstance(have, str) or have.lower() != value.lower():
            return False
    return True


def page(
    ctx: Context,
    items: list[dict[str, Any]],
    context_path: str,
    *,
    default: int = DEFAULT_PAGE,
    maximum: int = MAX_PAGE,
    link: str = "$skiptoken",
    code: str = "Request_BadRequest",
) -> GraphResponse:
    """One page of ``items`` of ``context_path``: honours ``$top`` and the paging token, links the next page.

    ``link`` is the token the next link carries: ``$skiptoken`` (opaque, directory and Teams APIs)
    or ``$skip`` (an item count, as Outlook's message lists use).
    """
    query = ctx.req.query
    try:
        top = int(query.get("$top", default))
    except ValueError:
        raise bad_request(f"Invalid $top value '{query.get('$top')}'.", "BadRequest") from None
    if not 1 <= top <= maximum:
        raise bad_request(f"Invalid page size specified: '{top}'. Must be between 1 and {maximum} inclusive.", code)
    offset = 0
    token = query.get(link)
    if token:
        try:
            if link == "$skip":
                offset = int(token)
                if offset < 0:
                    raise ValueError(token)
            else:
                offset = int(base64.urlsafe_b64decode(token.encode() + b"==").decode().removeprefix("o:"))
        except (ValueError, UnicodeDecodeError):
            raise bad_request(f"The {link} is invalid: it was not issued by this service.", "BadRequest") from None
    body: dict[str, Any] = {"@odata.context": metadata_url(ctx, context_path), "value": items[offset : offset + top]}
    if offset + top < len(items):
        # The token is opaque to clients, as Graph's is; the rest of the query travels in the link.
        nxt = {k: v for k, v in query.items() if k != link}
        if link == "$skip":
            nxt["$skip"] = str(offset + top)
        else:
            nxt[link] = base64.urlsafe_b64encode(f"o:{offset + top}".encode()).decode().rstrip("=")
        # '$' stays literal, as in Graph's links (?$top=3&$skip=3).
        body["@odata.nextLink"] = f"{ctx.req.graph_url}{ctx.req.path}?{urlencode(nxt, safe='$')}"
    return GraphResponse(200, body)


def bind_ids(payload: Mapping[str, Any], name: str, kinds: Sequence[str]) -> list[str]:
    """The object ids in ``name@odata.bind`` (URLs ending in /<kind>/<id>, or bare ids)."""
    raw = payload.get(f"{name}@odata.bind")
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise bad_request(f"'{name}@odata.bind' must be an array of object URLs.")
    ids: list[str] = []
    for url in raw:
        tail = url.rstrip("/").split("/")
        oid = tail[-1]
        if not GUID_RE.match(oid) or (len(tail) > 1 and tail[-2] not in kinds and tail[-2] != "directoryObjects"):
            raise bad_request(f"'{name}@odata.bind' entry '{url}' is not a URL of one of: {', '.join(kinds)}.")
        ids.append(oid.lower())
    return ids


def new_guid() -> str:
    return str(uuid.uuid4())
