"""The agent's tools, one module per Graph call family; each module has ``register(server, runtime)``.

:data:`PERMISSIONS` is the one table of the delegated Graph permission each tool needs: the
least-privileged one from the API's page on learn.microsoft.com (what ``entraclaw setup --scope``
consents), and the higher ones Graph accepts too.
"""

from __future__ import annotations

import datetime as _dt
import html
import re
from html.parser import HTMLParser

from entraclaw.errors import AgentToolError
from entraclaw.mcp.graph import Permission

__all__ = ["PERMISSIONS", "TOOL_NAMES", "html_to_text", "parse_since", "short_time"]

PERMISSIONS: dict[str, Permission | None] = {
    # GET /me (user-get): User.Read
    "whoami": Permission("User.Read"),
    # GET /users?$filter (user-list): User.ReadBasic.All; higher User.Read.All
    "find_user": Permission("User.ReadBasic.All", ("User.Read.All",)),
    # POST /chats (chat-post): Chat.Create; higher Chat.ReadWrite
    "create_chat": Permission("Chat.Create", ("Chat.ReadWrite",)),
    # GET /me/chats (chat-list): Chat.ReadBasic; higher Chat.Read, Chat.ReadWrite
    "list_chats": Permission("Chat.ReadBasic", ("Chat.Read", "Chat.ReadWrite")),
    # POST /chats/{id}/messages (chat-post-messages): ChatMessage.Send; higher Chat.ReadWrite
    "send_teams_message": Permission("ChatMessage.Send", ("Chat.ReadWrite",)),
    # GET /chats/{id}/messages (chat-list-messages): Chat.Read; higher Chat.ReadWrite
    "read_teams_messages": Permission("Chat.Read", ("Chat.ReadWrite",)),
    "wait_for_reply": Permission("Chat.Read", ("Chat.ReadWrite",)),
    # GET /chats/{id}/members (chat-list-members): Chat.ReadBasic; higher ChatMember.Read, ChatMember.ReadWrite,
    # Chat.Read, Chat.ReadWrite
    "list_chat_members": Permission(
        "Chat.ReadBasic", ("ChatMember.Read", "ChatMember.ReadWrite", "Chat.Read", "Chat.ReadWrite")
    ),
    # POST /chats/{id}/members (chat-post-members): ChatMember.ReadWrite; higher Chat.ReadWrite
    "add_chat_member": Permission("ChatMember.ReadWrite", ("Chat.ReadWrite",)),
    # POST /me/sendMail (user-sendmail): Mail.Send
    "send_email": Permission("Mail.Send"),
    # GET /me/mailFolders/{id}/messages with bodies (user-list-messages): Mail.Read (Mail.ReadBasic has no body)
    "read_email": Permission("Mail.Read", ("Mail.ReadWrite",)),
    # the local audit trail: no Graph call
    "audit_log": None,
}
TOOL_NAMES = tuple(PERMISSIONS)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "p", "div", "li", "tr"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(text: str) -> str:
    """Message HTML as plain text (tags dropped, entities decoded, blank runs squeezed)."""
    parser = _Text()
    parser.feed(text)
    parser.close()
    joined = html.unescape("".join(parser.parts))
    return re.sub(r"\n{3,}", "\n\n", joined).strip()


def parse_since(value: str | None, tool: str) -> _dt.datetime | None:
    """An ISO 8601 time (``2026-05-01T09:00:00Z``) or a relative ``15m`` / ``2h`` / ``1d``, as UTC."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    relative = re.fullmatch(r"(\d+)\s*([smhd])", text)
    now = _dt.datetime.now(_dt.timezone.utc)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
        return now - _dt.timedelta(seconds=seconds)
    try:
        parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AgentToolError(
            f"{tool}: since={value!r} is neither an ISO 8601 time nor a relative time like 15m, 2h or 1d.",
            remedy="Pass since as e.g. 2026-05-01T09:00:00Z or 30m.",
            tool=tool,
            code="invalid_argument",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)


def graph_time(moment: _dt.datetime) -> str:
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_graph_time(text: object) -> _dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)


def short_time(text: object) -> str:
    parsed = parse_graph_time(text)
    return parsed.strftime("%Y-%m-%d %H:%M:%SZ") if parsed else str(text or "?")
