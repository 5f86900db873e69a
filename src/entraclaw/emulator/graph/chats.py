"""Teams chats: ``/chats``, ``/me/chats``, ``/users/{id}/chats``, their members and messages.

Endpoints, the doc page each follows, and the least-privileged delegated permissions its
"Permissions" table lists (least first; application permissions in brackets):

- ``POST /chats`` — https://learn.microsoft.com/graph/api/chat-post : Chat.Create, Chat.ReadWrite
  [Chat.Create]. 201 + the chat. oneOnOne takes exactly two members and no topic; "If a one-on-one
  chat already exists, this operation returns the existing chat". Every participant, the caller
  included, is listed; roles ``owner`` or ``guest``; in-tenant guests must be ``guest``, users of
  another tenant (``tenantId`` on the member: a federated chat) ``owner``.
- ``GET /chats``, ``/me/chats``, ``/users/{id}/chats`` — chat-list : Chat.ReadBasic, Chat.Read,
  Chat.ReadWrite [Chat.ReadBasic.All, Chat.Read.All, Chat.ReadWrite.All]; ``$top`` up to 50,
  ``$expand=members``, ``$filter`` chatType / topic eq.
- ``GET /chats/{id}`` — chat-get : Chat.ReadBasic, Chat.Read, Chat.ReadWrite.
- ``GET /chats/{id}/members`` — chat-list-members : Chat.ReadBasic, ChatMember.Read,
  ChatMember.ReadWrite, Chat.Read, Chat.ReadWrite.
- ``POST /chats/{id}/members`` — chat-post-members : ChatMember.ReadWrite, Chat.ReadWrite; 201 and a
  Location header naming the new membership.
- ``POST /chats/{id}/messages`` — chat-post-messages : ChatMessage.Send, Chat.ReadWrite,
  Group.ReadWrite.All [Teamwork.Migrate.All only: not modelled]. 201 + the chatMessage; ``body``
  text or html; ``mentions`` need ``<at id="N">`` tags in an html body.
- ``GET /chats/{id}/messages`` — chat-list-messages : Chat.Read, Chat.ReadWrite [Chat.Read.All,
  Chat.ReadWrite.All]; ``$top`` at most 50; ``$orderby`` lastModifiedDateTime (default) or
  createdDateTime, descending only; ``$filter`` lastModifiedDateTime gt/lt, createdDateTime lt,
  applied only when ``$orderby`` names the same property ("otherwise, the $filter query option is
  ignored").

A delegated caller reaches only chats it is a member of (403 Forbidden otherwise). A missing
scope is Teams' 403: code ``Forbidden``, "Missing scope permissions on the request. API requires
one of '...'. Scopes on the request '...'" (the text real tenants return, e.g.
https://github.com/telstrapurple/MSTeamsChatExporter/issues/9).
Docs silent: the default page size of chat and message lists (the emulator: 20), the status of a
repeated oneOnOne create (the emulator: 201 with the existing chat), the codes for an unknown chat
(404 NotFound) and a member that does not resolve (400 BadRequest).
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any
from urllib.parse import unquote

from entraclaw.emulator.graph._core import (
    Context,
    GraphError,
    GraphResponse,
    bad_request,
    entity,
    matches,
    method_not_allowed,
    no_segment,
    page,
    query_filter,
)
from entraclaw.emulator.tenant import AgentUser, DirectoryUser
from entraclaw.emulator.workspace import Chat, ChatMember, ChatMessage, Workspace

__all__ = ["handle", "handle_user_chats", "stamp_ms", "teams_require"]

CHAT_PAGE = 20
CHAT_MAX = 50
_AAD_MEMBER = "#microsoft.graph.aadUserConversationMember"
_BIND = re.compile(r"/users(?:\('([^']+)'\)|/([^/?]+))$")
_AT_TAG = re.compile(r"<at\s+id=\"?(\d+)\"?\s*>", re.IGNORECASE)
_READ_BASIC = ("Chat.ReadBasic", "Chat.Read", "Chat.ReadWrite")
_READ_BASIC_APP = ("Chat.ReadBasic.All", "Chat.Read.All", "Chat.ReadWrite.All")


def stamp_ms(seconds: float) -> str:
    """Teams' timestamp form, with milliseconds: 2020-12-04T23:10:28.510Z."""
    moment = _dt.datetime.fromtimestamp(max(seconds, 0.0), _dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def teams_require(ctx: Context, delegated: tuple[str, ...], app: tuple[str, ...] = ()) -> None:
    """The caller holds one of the permissions; else Teams' 403 naming what the API needs and what it got."""
    caller = ctx.caller
    if caller.has(*(delegated if caller.delegated else app)):
        return
    if caller.delegated:
        held = " ".join(sorted(caller.scopes))
        raise GraphError(
            403,
            "Forbidden",
            f"Missing scope permissions on the request. API requires one of '{', '.join(delegated)}'. "
            f"Scopes on the request '{held}'",
        )
    held = " ".join(sorted(caller.roles))
    wanted = ", ".join(app) if app else "(none: the API takes delegated tokens only)"
    raise GraphError(
        403,
        "Forbidden",
        f"Missing role permissions on the request. API requires one of '{wanted}'. Roles on the request '{held}'.",
    )


def _bad(message: str) -> GraphError:
    # Teams answers malformed requests with code BadRequest (not the directory's Request_BadRequest).
    return bad_request(message, "BadRequest")


def _forbidden() -> GraphError:
    return GraphError(403, "Forbidden", "Forbidden")


def _chat_not_found(chat_id: str) -> GraphError:
    return GraphError(404, "NotFound", f"Chat '{chat_id}' was not found.")


def _workspace(ctx: Context) -> Workspace:
    workspace: Workspace = ctx.service.workspace
    return workspace


def chat_json(ctx: Context, chat: Chat) -> dict[str, Any]:
    # https://learn.microsoft.com/graph/api/resources/chat (properties)
    return {
        "id": chat.id,
        "topic": chat.topic,
        "createdDateTime": stamp_ms(chat.created_at),
        "lastUpdatedDateTime": stamp_ms(chat.updated_at),
        "chatType": chat.chat_type,
        "webUrl": f"https://teams.microsoft.com/l/chat/{chat.id}/0?tenantId={chat.tenant_id}",
        "tenantId": chat.tenant_id,
        "onlineMeetingInfo": None,
        "isHiddenForAllMembers": False,
        "viewpoint": {"isHidden": False, "lastMessageReadDateTime": "0001-01-01T00:00:00Z"},
    }


def member_json(member: ChatMember) -> dict[str, Any]:
    # https://learn.microsoft.com/graph/api/resources/aadUserConversationMember
    return {
        "@odata.type": _AAD_MEMBER,
        "id": member.id,
        "roles": list(member.roles),
        "displayName": member.display_name,
        "visibleHistoryStartDateTime": stamp_ms(member.visible_history_start)
        if member.visible_history_start
        else "0001-01-01T00:00:00Z",
        "userId": member.user_id,
        "email": member.email,
        "tenantId": member.tenant_id,
    }


def message_json(message: ChatMessage) -> dict[str, Any]:
    # https://learn.microsoft.com/graph/api/resources/chatmessage (a chat's message: chatId set, no channelIdentity)
    return {
        "id": message.id,
        "replyToId": None,
        "etag": message.id,
        "messageType": "message",
        "createdDateTime": stamp_ms(message.created_at),
        "lastModifiedDateTime": stamp_ms(message.modified_at),
        "lastEditedDateTime": None,
        "deletedDateTime": None,
        "subject": None,
        "summary": None,
        "chatId": message.chat_id,
        "importance": "normal",
        "locale": "en-us",
        "webUrl": None,
        "channelIdentity": None,
        "policyViolation": None,
        "eventDetail": None,
        "from": {
            "application": None,
            "device": None,
            "user": {
                "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                "id": message.from_id,
                "displayName": message.from_name,
                "userIdentityType": "aadUser",
                "tenantId": message.from_tenant,
            },
        },
        "body": {"contentType": message.content_type, "content": message.content},
        "attachments": [],
        "mentions": [dict(m) for m in message.mentions],
        "reactions": [],
        "messageHistory": [],
    }


# --- routing ------------------------------------------------------------------------------


def handle(ctx: Context) -> GraphResponse:
    """``/chats`` and everything under it."""
    seg = ctx.req.segments
    method = ctx.req.method
    if len(seg) == 1:
        if method == "POST":
            return _create(ctx)
        if method == "GET":
            return _list(ctx, ctx.caller.user_id)
        raise method_not_allowed(method, "chats")
    return _chat_routes(ctx, unquote(seg[1]), seg[2:], None)


def handle_user_chats(ctx: Context, user: AgentUser | DirectoryUser, rest: list[str]) -> GraphResponse:
    """``/me/chats...`` and ``/users/{id}/chats...`` (``rest`` starts after ``chats``)."""
    caller = ctx.caller
    if caller.delegated and caller.user_id != user.object_id:
        # Delegated callers list only their own chats (chat-list: "/users/{id}/chats" is the signed-in user).
        raise _forbidden()
    if not rest:
        if ctx.req.method != "GET":
            raise method_not_allowed(ctx.req.method, "chats")
        return _list(ctx, user.object_id)
    return _chat_routes(ctx, unquote(rest[0]), rest[1:], user.object_id)


def _chat_routes(ctx: Context, chat_id: str, rest: list[str], owner: str | None) -> GraphResponse:
    method = ctx.req.method
    chat = _workspace(ctx).chat(chat_id)
    if not rest:
        if method != "GET":
            raise method_not_allowed(method, "chat")
        teams_require(ctx, _READ_BASIC, ("Chat.ReadBasic.WhereInstalled", *_READ_BASIC_APP))
        chat = _reachable(ctx, chat, chat_id, owner)
        return GraphResponse(200, entity(ctx, "chats", chat_json(ctx, chat)))
    if rest[0] == "members" and len(rest) <= 2:
        if method == "GET":
            teams_require(
                ctx,
                ("ChatMember.Read", "ChatMember.ReadWrite", *_READ_BASIC),
                ("ChatMember.Read.Chat", "ChatMember.Read.All", *_READ_BASIC_APP),
            )
            chat = _reachable(ctx, chat, chat_id, owner)
            if len(rest) == 2:
                found = next((m for m in chat.members if m.id == unquote(rest[1])), None)
                if found is None:
                    raise GraphError(404, "NotFound", f"Member '{rest[1]}' of chat '{chat_id}' was not found.")
                return GraphResponse(200, entity(ctx, f"chats('{chat_id}')/members", member_json(found)))
            return page(ctx, [member_json(m) for m in chat.members], f"chats('{chat_id}')/members")
        if method == "POST" and len(rest) == 1:
            return _add_member(ctx, chat, chat_id, owner)
        raise method_not_allowed(method, "members")
    if rest[0] == "messages" and len(rest) <= 2:
        if method == "GET":
            teams_require(ctx, ("Chat.Read", "Chat.ReadWrite"), ("ChatMessage.Read.Chat", "Chat.Read.All"))
            chat = _reachable(ctx, chat, chat_id, owner)
            if len(rest) == 2:
                found_message = next((m for m in _workspace(ctx).visible_messages(chat) if m.id == rest[1]), None)
                if found_message is None:
                    raise GraphError(404, "NotFound", f"Message '{rest[1]}' of chat '{chat_id}' was not found.")
                return GraphResponse(200, entity(ctx, f"chats('{chat_id}')/messages", message_json(found_message)))
            return _list_messages(ctx, chat)
        if method == "POST" and len(rest) == 1:
            return _send(ctx, chat, chat_id, owner)
        raise method_not_allowed(method, "messages")
    raise no_segment(rest[0])


def _reachable(ctx: Context, chat: Chat | None, chat_id: str, owner: str | None) -> Chat:
    if chat is None:
        raise _chat_not_found(chat_id)
    caller = ctx.caller
    if caller.delegated and chat.member(caller.user_id or "") is None:
        raise _forbidden()
    if owner is not None and chat.member(owner) is None:
        raise _chat_not_found(chat_id)
    return chat


# --- chats --------------------------------------------------------------------------------


def _list(ctx: Context, user_id: str | None) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/chat-list
    teams_require(ctx, _READ_BASIC, _READ_BASIC_APP)
    if user_id is None:
        raise GraphError(400, "BadRequest", "/chats lists the signed-in user's chats; use /users/{id}/chats.")
    clauses = query_filter(ctx, "chat", "chatType", "topic")
    expand = {e.strip() for e in ctx.req.query.get("$expand", "").split(",") if e.strip()}
    if expand - {"members", "lastMessagePreview"}:
        raise _bad(f"$expand '{ctx.req.query['$expand']}' is not supported on chats.")
    workspace = _workspace(ctx)
    chats = sorted(workspace.chats_of(user_id), key=lambda c: (c.updated_at, c.id), reverse=True)
    items = []
    for chat in chats:
        body = chat_json(ctx, chat)
        if not matches(body, clauses):
            continue
        if "members" in expand:
            body["members"] = [member_json(m) for m in chat.members]
        if "lastMessagePreview" in expand:
            visible = workspace.visible_messages(chat)
            body["lastMessagePreview"] = _preview(visible[-1]) if visible else None
        items.append(body)
    return page(ctx, items, "chats", default=CHAT_PAGE, maximum=CHAT_MAX, code="BadRequest")


def _preview(message: ChatMessage) -> dict[str, Any]:
    # https://learn.microsoft.com/graph/api/resources/chatmessageinfo
    full = message_json(message)
    return {key: full[key] for key in ("id", "createdDateTime", "messageType", "from", "body")} | {
        "isDeleted": False,
        "eventDetail": None,
    }


def _create(ctx: Context) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/chat-post
    teams_require(ctx, ("Chat.Create", "Chat.ReadWrite"), ("Chat.Create",))
    payload = ctx.req.json()
    chat_type = payload.get("chatType")
    if chat_type not in ("oneOnOne", "group"):
        raise _bad("Property 'chatType' must be 'oneOnOne' or 'group'.")
    topic = payload.get("topic")
    if topic is not None and (not isinstance(topic, str) or chat_type == "oneOnOne"):
        raise _bad("A topic can be set only on a group chat.")
    raw = payload.get("members")
    if not isinstance(raw, list) or not raw:
        raise _bad("Property 'members' must list every participant, the caller included.")
    members = [_resolve_member(ctx, item) for item in raw]
    ids = [m.user_id for m in members]
    if len(set(ids)) != len(ids):
        raise _bad("A user is listed twice in 'members'.")
    if chat_type == "oneOnOne" and len(members) != 2:
        raise _bad("A oneOnOne chat has exactly two members.")
    if chat_type == "group" and len(members) < 2:
        raise _bad("A group chat needs at least two members.")
    caller = ctx.caller
    if caller.delegated and caller.user_id not in ids:
        raise _bad("The signed-in user must be one of the chat's members ('members' lists every participant).")
    chat, _made = _workspace(ctx).add_chat(chat_type, topic, members)
    return GraphResponse(
        201, entity(ctx, "chats", chat_json(ctx, chat)), {"Location": f"{ctx.req.graph_url}/chats('{chat.id}')"}
    )


def _resolve_member(ctx: Context, item: Any) -> ChatMember:
    if not isinstance(item, dict):
        raise _bad("Each entry of 'members' must be a conversationMember object.")
    kind = str(item.get("@odata.type", ""))
    if kind.lstrip("#").lower() != _AAD_MEMBER.lstrip("#").lower():
        raise _bad(f"Member @odata.type must be '{_AAD_MEMBER}', not '{kind}'.")
    bind = item.get("user@odata.bind")
    match = _BIND.search(bind) if isinstance(bind, str) else None
    if match is None:
        raise _bad(
            "Each member needs 'user@odata.bind': 'https://graph.microsoft.com/v1.0/users('<id or UPN>')'.",
        )
    key = unquote(match.group(1) or match.group(2))
    roles = item.get("roles", [])
    if not isinstance(roles, list) or [r for r in roles if r not in ("owner", "guest")] or len(roles) != 1:
        raise _bad("Each member must have the role 'owner' or 'guest'.")
    own = ctx.tenant.tenant_id
    tenant_id = str(item.get("tenantId") or own).lower()
    if tenant_id != own:
        # A federated (cross-tenant) member: resolved in its home tenant.
        external = _workspace(ctx).external_tenant(tenant_id)
        home = external.user(key) if external is not None else None
        if external is None or home is None:
            raise _bad(f"Member '{key}' was not found in tenant {tenant_id}.")
        if roles != ["owner"]:
            raise _bad(f"Member '{key}' is outside the tenant and must have the role 'owner'.")
        return ChatMember("", home.object_id, home.display_name, home.mail, external.tenant_id, ("owner",))
    user = _workspace(ctx).directory_user(key)
    if user is None:
        raise _bad(f"Member '{key}' was not found in tenant {own}.")
    guest = isinstance(user, DirectoryUser) and user.user_type == "Guest"
    if guest != (roles == ["guest"]):
        wanted = "guest" if guest else "owner"
        raise _bad(f"Member '{user.upn}' must have the role '{wanted}'.")
    email = (user.mail or user.upn) if isinstance(user, DirectoryUser) else user.upn
    return ChatMember("", user.object_id, user.display_name, email, own, tuple(roles))


def _add_member(ctx: Context, chat: Chat | None, chat_id: str, owner: str | None) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/chat-post-members
    teams_require(ctx, ("ChatMember.ReadWrite", "Chat.ReadWrite"), ("Chat.Manage.Chat", "ChatMember.ReadWrite.All"))
    chat = _reachable(ctx, chat, chat_id, owner)
    if chat.chat_type == "oneOnOne":
        raise _bad("Members cannot be added to a oneOnOne chat; create a group chat.")
    member = _resolve_member(ctx, ctx.req.json())
    if chat.member(member.user_id) is not None:
        raise GraphError(409, "Conflict", f"User '{member.user_id}' is already a member of chat '{chat_id}'.")
    start = ctx.req.json().get("visibleHistoryStartDateTime")
    if start is not None:
        member = ChatMember(**{**member.__dict__, "visible_history_start": _parse_time(str(start))})
    made = _workspace(ctx).add_member(chat.id, member)
    return GraphResponse(201, None, {"Location": f"/chats('{chat.id}')/members('{made.id}')"})


# --- messages -----------------------------------------------------------------------------


def _send(ctx: Context, chat: Chat | None, chat_id: str, owner: str | None) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/chat-post-messages
    teams_require(ctx, ("ChatMessage.Send", "Chat.ReadWrite", "Group.ReadWrite.All"))
    chat = _reachable(ctx, chat, chat_id, owner)
    sender = chat.member(ctx.caller.user_id or "")
    if sender is None:
        raise _forbidden()
    payload = ctx.req.json()
    body = payload.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("content"), str) or not body["content"].strip():
        raise _bad("Property 'body' needs a non-empty 'content'.")
    content_type = str(body.get("contentType") or "text").lower()
    if content_type not in ("text", "html"):
        raise _bad("body.contentType must be 'text' or 'html'.")
    mentions = payload.get("mentions") or []
    if not isinstance(mentions, list):
        raise _bad("Property 'mentions' must be an array.")
    _check_mentions(mentions, content_type, body["content"])
    message = _workspace(ctx).post(chat.id, sender, content_type, body["content"], mentions)
    return GraphResponse(201, entity(ctx, f"chats('{chat.id}')/messages", message_json(message)))


def _check_mentions(mentions: list[Any], content_type: str, content: str) -> None:
    # chat-post-messages, "Send a message with mentions": each mention's id is the id of an <at> tag in the html body.
    if not mentions:
        return
    if content_type != "html":
        raise _bad('Mentions need an html body with <at id="N"> tags.')
    tags = set(_AT_TAG.findall(content))
    for mention in mentions:
        if not isinstance(mention, dict) or not isinstance(mention.get("id"), int):
            raise _bad("Each mention needs an integer 'id'.")
        if not isinstance(mention.get("mentionText"), str) or not isinstance(mention.get("mentioned"), dict):
            raise _bad("Each mention needs 'mentionText' and 'mentioned'.")
        if str(mention["id"]) not in tags:
            raise _bad(f'Mention id {mention["id"]} has no <at id="{mention["id"]}"> tag in the body.')


_FILTER_CLAUSE = re.compile(r"\s*(lastModifiedDateTime|createdDateTime)\s+(gt|lt)\s+(\S+)\s*", re.IGNORECASE)


def _list_messages(ctx: Context, chat: Chat) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/chat-list-messages
    query = ctx.req.query
    order = query.get("$orderby", "lastModifiedDateTime desc").strip()
    parts = order.split()
    if len(parts) not in (1, 2) or parts[0] not in ("lastModifiedDateTime", "createdDateTime"):
        raise _bad(f"$orderby '{order}' is not supported: use lastModifiedDateTime or createdDateTime desc.")
    if len(parts) == 1 or parts[1].lower() != "desc":
        raise _bad("Only descending order is supported for chat messages ($orderby <property> desc).")
    key = parts[0]
    bounds: list[tuple[str, float]] = []
    text = query.get("$filter", "").strip()
    if text:
        for clause in re.split(r"\s+and\s+", text, flags=re.IGNORECASE):
            match = _FILTER_CLAUSE.fullmatch(clause)
            if match is None or (match.group(1) == "createdDateTime" and match.group(2).lower() == "gt"):
                raise _bad(
                    f"Unsupported filter clause '{clause.strip()}': lastModifiedDateTime gt|lt and createdDateTime lt "
                    "are supported.",
                )
            if match.group(1) == key:  # the doc: filtering applies only with $orderby on the same property
                bounds.append((match.group(2).lower(), _parse_time(match.group(3))))
    attr = "modified_at" if key == "lastModifiedDateTime" else "created_at"
    messages = sorted(_workspace(ctx).visible_messages(chat), key=lambda m: (getattr(m, attr), m.id), reverse=True)
    kept = [
        m for m in messages if all(getattr(m, attr) > v if op == "gt" else getattr(m, attr) < v for op, v in bounds)
    ]
    return page(
        ctx,
        [message_json(m) for m in kept],
        f"chats('{chat.id}')/messages",
        default=CHAT_PAGE,
        maximum=CHAT_MAX,
        code="BadRequest",
    )


def _parse_time(text: str) -> float:
    try:
        moment = _dt.datetime.fromisoformat(text.strip().strip("'").replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"'{text}' is not a date and time (use 2024-01-31T12:00:00Z).") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.timestamp()
