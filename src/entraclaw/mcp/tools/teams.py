"""Teams tools: find_user, create_chat, list_chats, send_teams_message, read_teams_messages,
list_chat_members, add_chat_member, wait_for_reply. Graph v1.0 shapes from the API pages named
beside each call; results are short readable text, not Graph JSON.
"""

from __future__ import annotations

import datetime as _dt
import time
from typing import Annotated, Any, Literal
from urllib.parse import quote

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from entraclaw.mcp.graph import AgentGraph
from entraclaw.mcp.runtime import DEFAULT_CALL_DEADLINE, AgentRuntime
from entraclaw.mcp.tools import PERMISSIONS, graph_time, html_to_text, parse_graph_time, parse_since, short_time

__all__ = ["register"]

_MEMBER = "#microsoft.graph.aadUserConversationMember"
_MAX_WAIT = 900.0

#: Every chat tool's chat_id parameter.
ChatId = Annotated[str, Field(description="the chat's id (list_chats / create_chat give it)")]


def _chat_path(chat_id: str, collection: str) -> str:
    """``chats/{id}/{collection}``, the id percent-encoded (chat ids contain ':' and '@')."""
    return f"chats/{quote(chat_id)}/{collection}"


class Mention(BaseModel):
    user_id: str = Field(description="object id of the user to @mention (find_user shows it)")
    display_name: str = Field(description="the name shown in the mention, e.g. 'Alice Smith'")


def _odata(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _user_bind(graph: AgentGraph, who: str) -> str:
    # '#' would end the URL at the fragment: a guest's #EXT# UPN goes percent-encoded.
    return f"{graph.graph_url}/users({_odata(who.replace('#', '%23'))})"


def _member_entry(graph: AgentGraph, member: str) -> dict[str, Any]:
    """A conversationMember body for ``member`` (UPN, email or id; an external one as ``email|tenant_id``)."""
    who, _, tenant = member.partition("|")
    # Teams: an in-tenant guest (#EXT# UPN) joins as "guest"; members and federated users as "owner".
    role = "guest" if "#EXT#" in who.upper() else "owner"
    entry: dict[str, Any] = {"@odata.type": _MEMBER, "roles": [role], "user@odata.bind": _user_bind(graph, who.strip())}
    if tenant.strip():
        entry["tenantId"] = tenant.strip()  # chat-post Example 7: a federated user by email + tenant
    return entry


def home_domain_of_guest(upn: str) -> str | None:
    """``alice_contoso.com#EXT#@fabrikam.onmicrosoft.com`` -> ``contoso.com`` (B2B guest UPN pattern)."""
    if "#EXT#" not in upn:
        return None
    local = upn.split("#EXT#", 1)[0]
    _, sep, domain = local.rpartition("_")
    return domain.lower() if sep and "." in domain else None


def discover_tenant(graph: AgentGraph, authority_host: str, domain: str) -> str | None:
    """The tenant id that owns ``domain``, by OpenID discovery on the authority (issuer's tenant segment)."""
    url = f"{authority_host.rstrip('/')}/{quote(domain)}/v2.0/.well-known/openid-configuration"
    try:
        left = graph.remaining()
        response = graph.session.get(url, timeout=min(10.0, left) if left and left > 0 else 10.0)
    except Exception:
        return None
    if response.status_code != 200:
        return None
    try:
        issuer = str(response.json().get("issuer") or "")
    except ValueError:
        return None
    parts = [p for p in issuer.split("/") if p]
    for part in parts:
        if len(part) == 36 and part.count("-") == 4:
            return part
    return None


def _describe_user(user: dict[str, Any], tenant_id: str | None, home_tenant: str | None) -> str:
    upn = str(user.get("userPrincipalName") or "")
    kind = str(user.get("userType") or ("Guest" if "#EXT#" in upn else "Member"))
    line = f"- {user.get('displayName') or '?'} <{user.get('mail') or upn}> id={user.get('id')} type={kind}"
    if kind == "Guest":
        line += f" home_tenant={home_tenant or 'unknown'} (B2B guest; chats with them are external)"
    return line


def _format_chat(chat: dict[str, Any]) -> str:
    topic = chat.get("topic") or "(no topic)"
    return (
        f"- {chat.get('chatType', '?')} chat {topic!s} id={chat.get('id')} "
        f"last updated {short_time(chat.get('lastUpdatedDateTime') or chat.get('createdDateTime'))}"
    )


def _message_text(message: dict[str, Any]) -> str:
    body = message.get("body") or {}
    content = str(body.get("content") or "")
    if str(body.get("contentType") or "text").lower() == "html":
        content = html_to_text(content)
    return content


def _sender(message: dict[str, Any]) -> tuple[str | None, str]:
    sender = message.get("from") or {}
    user = sender.get("user") if isinstance(sender, dict) else None
    if isinstance(user, dict):
        return (str(user.get("id")) if user.get("id") else None), str(user.get("displayName") or user.get("id"))
    application = sender.get("application") if isinstance(sender, dict) else None
    if isinstance(application, dict):
        return None, f"app {application.get('displayName') or application.get('id')}"
    return None, "system"


def _format_message(message: dict[str, Any]) -> str:
    _, name = _sender(message)
    return f"[{short_time(message.get('createdDateTime'))}] {name}: {_message_text(message)} (id={message.get('id')})"


def _messages(
    graph: AgentGraph, scope: str, chat_id: str, since: _dt.datetime | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first, created after ``since``. chat-list-messages: $top <= 50, $orderby createdDateTime desc,
    $filter on lastModifiedDateTime (a message created after ``since`` was last modified after it too)."""
    params = {"$top": str(min(limit, 50)), "$orderby": "lastModifiedDateTime desc"}
    if since is not None:
        params["$filter"] = f"lastModifiedDateTime gt {graph_time(since)}"
    rows = graph.pages(scope, _chat_path(chat_id, "messages"), what="list chat messages", params=params,
                       limit=limit * 4)
    out = []
    for row in rows:
        if str(row.get("messageType") or "message") != "message":
            continue
        created = parse_graph_time(row.get("createdDateTime"))
        if since is not None and created is not None and created <= since:
            continue
        out.append(row)
    out.sort(key=lambda r: str(r.get("createdDateTime") or ""), reverse=True)
    return out[:limit]


def _is_external(member: dict[str, Any], tenant_id: str | None, internal: frozenset[str]) -> bool:
    member_tenant = str(member.get("tenantId") or "")
    if member_tenant and tenant_id and member_tenant.lower() != tenant_id.lower():
        return True
    email = str(member.get("email") or "")
    if "#EXT#" in email:
        return True
    domain = email.rpartition("@")[2].lower()
    return bool(domain) and bool(internal) and domain not in internal


def register(server: MCPServer, rt: AgentRuntime) -> None:
    external_chats: dict[str, list[str]] = {}  # chat id -> external member names (cached per server)

    @server.tool(description="Find a person by UPN or email (members, B2B guests #EXT#, and users of other "
                 "tenants by their domain's OpenID discovery). Needs User.ReadBasic.All.")
    async def find_user(
        query: Annotated[str, Field(description="UPN or email address, e.g. alice@contoso.com")],
    ) -> str:
        async with rt.call("find_user", query=query) as call:
            tenant_id = str(getattr(rt.config, "tenant_id", "") or "") if rt.config else ""

            def work(graph: AgentGraph, scope: str) -> str:
                literal = _odata(query.strip())
                rows: list[dict[str, Any]] = []
                # mail first (a guest's mail is their home address), then the UPN (#EXT# for guests).
                for field in ("mail", "userPrincipalName"):
                    rows = graph.pages(scope, "users", what="find user", limit=10, params={
                        "$filter": f"{field} eq {literal}",
                        "$select": "id,displayName,userPrincipalName,mail,userType",
                    })
                    if rows:
                        break
                lines = []
                for user in rows:
                    home = None
                    domain = home_domain_of_guest(str(user.get("userPrincipalName") or ""))
                    if domain:
                        home = discover_tenant(graph, rt.config.authority_host, domain)
                    lines.append(_describe_user(user, tenant_id, home))
                if lines:
                    return f"{len(lines)} user(s) for {query}:\n" + "\n".join(lines)
                domain = query.rpartition("@")[2].strip().lower()
                other = discover_tenant(graph, rt.config.authority_host, domain) if domain else None
                if other and other.lower() != tenant_id.lower():
                    return (f"{query} is not in this directory; its domain {domain} belongs to tenant {other}. "
                            f"create_chat can reach them as an external (federated) user: member "
                            f"{query} with tenant_id {other}.")
                return f"No user {query} in this directory, and no tenant found for its domain."

            return await rt.graph_work(call, PERMISSIONS["find_user"], work)

    @server.tool(description="Create (or get the existing) Teams chat: one other member = 1:1, more = group. "
                 "Members are UPNs, emails or object ids; external ones as 'email|tenant_id'. Needs Chat.Create.")
    async def create_chat(
        members: Annotated[list[str], Field(min_length=1, description="the other people: UPN, email or object id; "
                                            "an external user as 'email|tenant_id' (find_user gives the tenant)")],
        ctx: Context,
        topic: Annotated[str | None, Field(description="group chat topic (group chats only)")] = None,
    ) -> str:
        async with rt.call("create_chat", members=members, topic=topic) as call:
            if len(members) > 1 and rt.policy.requires("add_chat_member"):
                await rt.require_human(call, ctx, "add_chat_member",
                                       f"create a group chat with {', '.join(members)}")

            def work(graph: AgentGraph, scope: str) -> str:
                me = str(rt.config.agent_user_id or rt.config.agent_user_upn)
                body_members = [{"@odata.type": _MEMBER, "roles": ["owner"], "user@odata.bind": _user_bind(graph, me)}]
                body_members.extend(_member_entry(graph, member) for member in members)
                body: dict[str, Any] = {"chatType": "oneOnOne" if len(members) == 1 else "group",
                                        "members": body_members}
                if topic and len(members) > 1:
                    body["topic"] = topic
                chat = graph.client(scope).request("POST", "chats", what="create chat", json_body=body)
                return f"Chat ready: {_format_chat(chat)[2:]}"

            return await rt.graph_work(call, PERMISSIONS["create_chat"], work)

    @server.tool(description="List the Agent User's Teams chats, most recently updated first. Needs Chat.ReadBasic.")
    async def list_chats(
        limit: Annotated[int, Field(ge=1, le=200, description="at most this many chats")] = 20,
    ) -> str:
        async with rt.call("list_chats", limit=limit) as call:

            def work(graph: AgentGraph, scope: str) -> str:
                chats = graph.pages(scope, "me/chats", what="list chats", limit=limit,
                                    params={"$top": str(min(limit, 50))})
                chats.sort(key=lambda c: str(c.get("lastUpdatedDateTime") or c.get("createdDateTime") or ""),
                           reverse=True)
                if not chats:
                    return "The Agent User has no chats yet (create_chat starts one)."
                return f"{len(chats)} chat(s):\n" + "\n".join(_format_chat(c) for c in chats)

            return await rt.graph_work(call, PERMISSIONS["list_chats"], work)

    @server.tool(description="List the members of a chat (name, email, tenant, roles). Needs Chat.ReadBasic.")
    async def list_chat_members(chat_id: ChatId) -> str:
        async with rt.call("list_chat_members", chat_id=chat_id) as call:

            def work(graph: AgentGraph, scope: str) -> str:
                rows = graph.pages(scope, _chat_path(chat_id, "members"), what="list chat members", limit=500)
                internal = rt.policy.internal_domains
                lines = [
                    f"- {m.get('displayName') or '?'} <{m.get('email') or '?'}> user_id={m.get('userId')} "
                    f"tenant={m.get('tenantId') or '?'} roles={','.join(m.get('roles') or []) or '-'}"
                    + (" EXTERNAL" if _is_external(m, rt.config.tenant_id, internal) else "")
                    for m in rows
                ]
                return f"{len(lines)} member(s) of chat {chat_id}:\n" + "\n".join(lines)

            return await rt.graph_work(call, PERMISSIONS["list_chat_members"], work)

    @server.tool(description="Add a person to a group chat (asks a human first under the consent policy). "
                 "Needs ChatMember.ReadWrite.")
    async def add_chat_member(
        chat_id: ChatId,
        member: Annotated[str, Field(description="UPN, email or object id; external as 'email|tenant_id'")],
        ctx: Context,
        share_history: Annotated[bool, Field(description="let them see the chat's earlier messages")] = False,
    ) -> str:
        async with rt.call("add_chat_member", chat_id=chat_id, member=member) as call:
            if rt.policy.requires("add_chat_member"):
                await rt.require_human(call, ctx, "add_chat_member", f"add {member} to chat {chat_id}")

            def work(graph: AgentGraph, scope: str) -> str:
                body = _member_entry(graph, member)
                if share_history:
                    body["visibleHistoryStartDateTime"] = "0001-01-01T00:00:00Z"
                added = graph.client(scope).request("POST", _chat_path(chat_id, "members"),
                                                    what="add chat member", json_body=body)
                external_chats.pop(chat_id, None)
                return f"Added {added.get('displayName') or member} to chat {chat_id}."

            return await rt.graph_work(call, PERMISSIONS["add_chat_member"], work)

    @server.tool(description="Send a Teams message to a chat (text or basic HTML, optional @mentions). The first "
                 "message to a chat with external members asks a human first. Needs ChatMessage.Send.")
    async def send_teams_message(
        chat_id: ChatId,
        text: Annotated[str, Field(min_length=1, max_length=28000, description="the message")],
        ctx: Context,
        content_type: Annotated[Literal["text", "html"], Field(description="text or basic HTML")] = "text",
        mentions: Annotated[list[Mention] | None, Field(description="people to @mention")] = None,
    ) -> str:
        async with rt.call("send_teams_message", chat_id=chat_id, text=text, content_type=content_type,
                           mentions=[m.user_id for m in mentions or []]) as call:
            policy = rt.policy
            if policy.requires("external_first_message") and not policy.already_approved(chat_id):
                def members(graph: AgentGraph, scope: str) -> list[str]:
                    if chat_id not in external_chats:
                        rows = graph.pages(scope, _chat_path(chat_id, "members"), what="list chat members",
                                           limit=500)
                        external_chats[chat_id] = [
                            str(m.get("email") or m.get("displayName") or m.get("userId"))
                            for m in rows if _is_external(m, rt.config.tenant_id, policy.internal_domains)
                        ]
                    return external_chats[chat_id]

                outside = await rt.graph_work(call, PERMISSIONS["list_chat_members"], members)
                if outside:
                    await rt.require_human(call, ctx, "external_first_message",
                                           f"send a first Teams message to a chat with external member(s) "
                                           f"{', '.join(outside)}")
                    policy.remember(chat_id)

            def work(graph: AgentGraph, scope: str) -> str:
                content, kind = text, content_type
                body: dict[str, Any] = {}
                if mentions:
                    kind = "html"
                    tags = []
                    for index, mention in enumerate(mentions):
                        tag = f'<at id="{index}">{_escape(mention.display_name)}</at>'
                        marker = f"@{mention.display_name}"
                        if marker in content:
                            content = content.replace(marker, tag, 1)
                        else:
                            tags.append(tag)
                        body.setdefault("mentions", []).append({
                            "id": index, "mentionText": mention.display_name,
                            "mentioned": {"user": {"id": mention.user_id, "displayName": mention.display_name,
                                                   "userIdentityType": "aadUser"}},
                        })
                    if tags:
                        content = " ".join(tags) + " " + content
                body["body"] = {"contentType": kind, "content": content}
                sent = graph.client(scope).request("POST", _chat_path(chat_id, "messages"),
                                                   what="send chat message", json_body=body)
                when = short_time(sent.get("createdDateTime"))
                return f"Sent to chat {chat_id}: message id={sent.get('id')} at {when}."

            return await rt.graph_work(call, PERMISSIONS["send_teams_message"], work)

    @server.tool(description="Read a chat's messages, newest first, optionally only those since a time "
                 "(ISO 8601 or 15m/2h/1d). Bodies as text. Needs Chat.Read.")
    async def read_teams_messages(
        chat_id: ChatId,
        since: Annotated[str | None, Field(description="only messages after this time: ISO 8601 or 30m/2h/1d")] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="at most this many messages")] = 20,
    ) -> str:
        async with rt.call("read_teams_messages", chat_id=chat_id, since=since, limit=limit) as call:
            after = parse_since(since, "read_teams_messages")

            def work(graph: AgentGraph, scope: str) -> str:
                rows = _messages(graph, scope, chat_id, after, limit)
                if not rows:
                    return f"No messages in chat {chat_id}" + (f" since {graph_time(after)}." if after else ".")
                return f"{len(rows)} message(s), newest first:\n" + "\n".join(_format_message(m) for m in rows)

            return await rt.graph_work(call, PERMISSIONS["read_teams_messages"], work)

    @server.tool(description="Wait (bounded, cancellable, with progress notifications) for someone other than the "
                 "Agent User to post in a chat; returns the reply or says none came. Needs Chat.Read.")
    async def wait_for_reply(
        chat_id: ChatId,
        ctx: Context,
        timeout_seconds: Annotated[float, Field(gt=0, le=_MAX_WAIT, description="give up after this long")] = 120.0,
        since: Annotated[str | None, Field(description="count replies after this time (default: now)")] = None,
        poll_seconds: Annotated[float, Field(ge=0.2, le=60, description="how often to look")] = 3.0,
    ) -> str:
        async with rt.call("wait_for_reply", chat_id=chat_id, timeout_seconds=timeout_seconds, since=since) as call:
            after = parse_since(since, "wait_for_reply") or _dt.datetime.now(_dt.timezone.utc)
            started = time.monotonic()
            polls = 0
            while True:
                polls += 1

                def look(graph: AgentGraph, scope: str) -> tuple[str, list[dict[str, Any]]]:
                    return str(rt.config.agent_user_id or ""), _messages(graph, scope, chat_id, after, 50)

                me, rows = await rt.graph_work(call, PERMISSIONS["wait_for_reply"], look,
                                           deadline=min(DEFAULT_CALL_DEADLINE, timeout_seconds + 5))
                replies = [m for m in rows if _sender(m)[0] and _sender(m)[0] != me]
                if replies:
                    replies.sort(key=lambda r: str(r.get("createdDateTime") or ""))
                    return f"Reply after {time.monotonic() - started:.1f} s:\n" + "\n".join(
                        _format_message(m) for m in replies)
                elapsed = time.monotonic() - started
                if elapsed >= timeout_seconds:
                    call.status = "timeout"
                    return (f"No reply in chat {chat_id} within {timeout_seconds:g} s ({polls} look(s)). "
                            "Call wait_for_reply again to keep waiting.")
                await ctx.report_progress(elapsed, timeout_seconds,
                                          f"waiting for a reply in chat {chat_id} ({polls} look(s))")
                await anyio.sleep(min(poll_seconds, max(0.0, timeout_seconds - elapsed)))



def _escape(text: str) -> str:
    import html as _html

    return _html.escape(text, quote=False)
