"""Mail tools: send_email (POST /me/sendMail, user-sendmail) and read_email (GET /me/mailFolders/{folder}/messages,
user-list-messages; bodies asked for as text with ``Prefer: outlook.body-content-type="text"``)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import quote

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from entraclaw.errors import AgentToolError
from entraclaw.mcp.graph import AgentGraph
from entraclaw.mcp.runtime import AgentRuntime
from entraclaw.mcp.tools import PERMISSIONS, graph_time, html_to_text, parse_since, short_time

__all__ = ["register"]

_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")
_WELL_KNOWN = {"inbox", "sentitems", "drafts", "deleteditems", "junkemail", "archive"}


def _recipients(addresses: list[str], field: str) -> list[dict[str, Any]]:
    out = []
    for address in addresses:
        if not _ADDRESS.fullmatch(address.strip()):
            raise AgentToolError(
                f"send_email: {field} entry {address!r} is not an email address.",
                remedy="Pass addresses like alice@contoso.com (find_user looks people up).",
                tool="send_email",
                code="invalid_argument",
            )
        out.append({"emailAddress": {"address": address.strip()}})
    return out


def register(server: MCPServer, rt: AgentRuntime) -> None:
    @server.tool(description="Send an email as the Agent User. Mail to a domain outside the tenant asks a human "
                 "first under the consent policy. Needs Mail.Send.")
    async def send_email(  # noqa: PLR0917 - an MCP tool: the SDK passes arguments by name
        to: Annotated[list[str], Field(min_length=1, description="recipient addresses")],
        subject: Annotated[str, Field(max_length=998, description="subject line")],
        body: Annotated[str, Field(description="the message")],
        ctx: Context,
        body_type: Annotated[Literal["text", "html"], Field(description="text or HTML")] = "text",
        cc: Annotated[list[str] | None, Field(description="cc addresses")] = None,
    ) -> str:
        async with rt.call("send_email", to=to, cc=cc or [], subject=subject, body=body, body_type=body_type) as call:
            message = {
                "subject": subject,
                "body": {"contentType": "HTML" if body_type == "html" else "Text", "content": body},
                "toRecipients": _recipients(to, "to"),
            }
            if cc:
                message["ccRecipients"] = _recipients(cc, "cc")
            policy = rt.policy
            outside = [a for a in [*to, *(cc or [])] if not policy.is_internal_address(a)]
            if outside and policy.requires("external_mail"):
                await rt.require_human(call, ctx, "external_mail",
                                       f"email {', '.join(outside)} (outside the tenant): {subject!r}")

            def work(graph: AgentGraph, scope: str) -> str:
                graph.client(scope).request("POST", "me/sendMail", what="send mail",
                                            json_body={"message": message, "saveToSentItems": True})
                return f"Mail sent to {', '.join([*to, *(cc or [])])}: {subject!r} (Graph accepted it: 202)."

            return await rt.graph_work(call, PERMISSIONS["send_email"], work)

    @server.tool(description="Read the Agent User's mail (a folder, only unread, since a time); bodies as text. "
                 "Needs Mail.Read.")
    async def read_email(
        folder: Annotated[str, Field(description="inbox, sentitems, drafts, archive ... or a folder id")] = "inbox",
        unread_only: Annotated[bool, Field(description="only unread messages")] = False,
        since: Annotated[str | None, Field(description="received after: ISO 8601 or 30m/2h/1d")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="at most this many messages")] = 10,
    ) -> str:
        async with rt.call("read_email", folder=folder, unread_only=unread_only, since=since, limit=limit) as call:
            after = parse_since(since, "read_email")

            def work(graph: AgentGraph, scope: str) -> str:
                clauses = []
                if unread_only:
                    clauses.append("isRead eq false")
                if after is not None:
                    clauses.append(f"receivedDateTime ge {graph_time(after)}")
                params = {
                    "$top": str(min(limit, 50)),
                    "$select": "id,subject,from,receivedDateTime,isRead,body",
                    "$orderby": "receivedDateTime desc",
                }
                if clauses:
                    params["$filter"] = " and ".join(clauses)
                name = folder.strip().lower() if folder.strip().lower() in _WELL_KNOWN else folder.strip()
                path = f"me/mailFolders/{quote(name)}/messages"
                client = graph.client(scope)
                rows: list[dict[str, Any]] = []
                url: str | None = path
                query: dict[str, str] | None = params
                while url and len(rows) < limit:
                    page = client.request("GET", url, what="list mail", params=query,
                                          headers={"Prefer": 'outlook.body-content-type="text"'})
                    query = None
                    rows.extend(r for r in page.get("value") or [] if isinstance(r, dict))
                    link = page.get("@odata.nextLink")
                    url = link if isinstance(link, str) else None
                rows = rows[:limit]
                if not rows:
                    return f"No {'unread ' if unread_only else ''}mail in {folder}" + (
                        f" since {graph_time(after)}." if after else ".")
                lines = []
                for m in rows:
                    sender = ((m.get("from") or {}).get("emailAddress") or {})
                    content = str((m.get("body") or {}).get("content") or "")
                    if str((m.get("body") or {}).get("contentType") or "").lower() == "html":
                        content = html_to_text(content)
                    lines.append(
                        f"[{short_time(m.get('receivedDateTime'))}] {'' if m.get('isRead') else '(unread) '}"
                        f"from {sender.get('name') or '?'} <{sender.get('address') or '?'}>: {m.get('subject') or ''}"
                        f" (id={m.get('id')})\n    {content.strip()[:2000]}"
                    )
                return f"{len(rows)} message(s) in {folder}, newest first:\n" + "\n".join(lines)

            return await rt.graph_work(call, PERMISSIONS["read_email"], work)
