"""Outlook mail: ``sendMail`` and the message lists of the signed-in user's mailbox.

Endpoints, the doc page each follows, and the delegated permissions its "Permissions" table lists
(least first):

- ``POST /me/sendMail``, ``/users/{id}/sendMail`` — https://learn.microsoft.com/graph/api/user-sendmail :
  Mail.Send. 202 Accepted, no body. ``message`` with ``subject``, ``body`` {contentType text|html,
  content}, ``toRecipients`` / ``ccRecipients`` / ``bccRecipients`` ({emailAddress: {address, name}});
  ``saveToSentItems`` (default true). Mail to a user of this tenant lands in that user's Inbox;
  anything else (other domains, guests, whose mailbox is in their home tenant) is kept on
  ``workspace.outbound``.
- ``GET /me/messages``, ``/me/mailFolders/{folder}/messages`` (and ``/users/{id}/...`` for the
  signed-in user) — user-list-messages, mailfolder-list-messages : Mail.ReadBasic, Mail.Read,
  Mail.ReadWrite. Default page size 10, ``$top`` 1..1000, next page by ``$skip`` in
  ``@odata.nextLink``; ``$select``; ``$filter`` isRead eq true|false, receivedDateTime
  ge|gt|le|lt <DateTimeOffset>, from/emailAddress/address eq '...' (joined by ``and``);
  ``$orderby`` receivedDateTime (desc by default). Bodies are HTML unless the request sends
  ``Prefer: outlook.body-content-type="text"`` (answered with ``Preference-Applied``).
  Mail.ReadBasic leaves out ``body``, ``bodyPreview`` and ``uniqueBody`` (permissions reference:
  "except body, previewBody, attachments and any extended properties").
  Folders: the well-known names (inbox, sentitems, drafts, deleteditems, archive, junkemail, outbox).

Missing permission: Exchange's 403 ``ErrorAccessDenied`` "Access is denied. Check credentials and try
again." Another user's mailbox with a delegated token: the same 403 (no shared mailboxes modelled).
Docs silent: the emulator's order of a list without ``$orderby`` (newest received first).
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from entraclaw.emulator.bodies import html_to_text, text_to_html
from entraclaw.emulator.graph._core import Context, GraphError, GraphResponse, bad_request, method_not_allowed, page
from entraclaw.emulator.tenant import AgentUser, DirectoryUser
from entraclaw.emulator.workspace import MAIL_FOLDERS, MailMessage, Workspace

__all__ = ["handle_user_mail"]

MAIL_PAGE = 10
MAIL_MAX = 1000
_READ = ("Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite")
_FULL = ("Mail.Read", "Mail.ReadWrite")
_PREFER_TEXT = re.compile(r'outlook\.body-content-type\s*=\s*"?text"?', re.IGNORECASE)
_CLAUSE = re.compile(
    r"\s*(?:(isRead)\s+eq\s+(true|false)"
    r"|(receivedDateTime)\s+(ge|gt|le|lt)\s+(\S+)"
    r"|(from/emailAddress/address)\s+eq\s+'((?:[^']|'')*)')\s*",
    re.IGNORECASE,
)


def _denied() -> GraphError:
    return GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def _require(ctx: Context, *scopes: str) -> None:
    caller = ctx.caller
    if not caller.delegated or not caller.has(*scopes):
        raise _denied()


def _workspace(ctx: Context) -> Workspace:
    workspace: Workspace = ctx.service.workspace
    return workspace


def handle_user_mail(ctx: Context, user: AgentUser | DirectoryUser, rest: list[str]) -> GraphResponse:
    """``rest``: ``["sendMail"]``, ``["messages"]`` or ``["mailFolders", folder, "messages"]``."""
    if ctx.caller.delegated and ctx.caller.user_id != user.object_id:
        raise _denied()
    method = ctx.req.method
    if rest == ["sendMail"]:
        if method != "POST":
            raise method_not_allowed(method, "sendMail")
        return _send(ctx, user)
    folder: str | None = None
    if len(rest) == 3 and rest[0] == "mailFolders" and rest[2] == "messages":
        folder = rest[1].lower()
        if folder not in MAIL_FOLDERS:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    elif rest != ["messages"]:
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[-1]}'.")
    if method != "GET":
        raise method_not_allowed(method, "messages")
    return _list(ctx, user, folder)


# --- sendMail -----------------------------------------------------------------------------


def _recipients(message: dict[str, Any], name: str) -> list[tuple[str, str]]:
    raw = message.get(name) or []
    if not isinstance(raw, list):
        raise bad_request(f"'{name}' must be an array of recipients.", "ErrorInvalidRecipients")
    out = []
    for item in raw:
        email = item.get("emailAddress") if isinstance(item, dict) else None
        address = email.get("address") if isinstance(email, dict) else None
        if not isinstance(email, dict) or not isinstance(address, str) or "@" not in address:
            raise bad_request(f"A recipient in '{name}' has no valid emailAddress.address.", "ErrorInvalidRecipients")
        out.append((str(email.get("name") or address), address))
    return out


def _send(ctx: Context, user: AgentUser | DirectoryUser) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/user-sendmail
    _require(ctx, "Mail.Send")
    payload = ctx.req.json()
    message = payload.get("message")
    if not isinstance(message, dict):
        raise bad_request("Property 'message' is required.", "ErrorInvalidRequest")
    to, cc, bcc = (_recipients(message, n) for n in ("toRecipients", "ccRecipients", "bccRecipients"))
    if not (to or cc or bcc):
        raise bad_request("At least one recipient is required, but none were found.", "ErrorInvalidRecipients")
    body = message.get("body") or {}
    if not isinstance(body, dict):
        raise bad_request("'body' must be an itemBody object.", "ErrorInvalidRequest")
    content_type = str(body.get("contentType") or "text").lower()
    if content_type not in ("text", "html"):
        raise bad_request("body.contentType must be 'Text' or 'HTML'.", "ErrorInvalidRequest")
    save = payload.get("saveToSentItems", True)
    if not isinstance(save, bool):
        raise bad_request("'saveToSentItems' must be true or false.", "ErrorInvalidRequest")
    _workspace(ctx).send_mail(
        user,
        str(message.get("subject") or ""),
        content_type,
        str(body.get("content") or ""),
        to=to,
        cc=cc,
        bcc=bcc,
        save_to_sent=save,
    )
    return GraphResponse(202, None)


# --- lists --------------------------------------------------------------------------------


def _time(text: str) -> float:
    try:
        moment = _dt.datetime.fromisoformat(text.strip("'").replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"'{text}' is not a DateTimeOffset (use 2024-01-31T12:00:00Z).", "BadRequest") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.timestamp()


def _filter(text: str) -> list[Any]:
    tests: list[Any] = []
    if not text.strip():
        return tests
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise bad_request(f"Invalid filter clause '{clause.strip()}'.", "BadRequest")
        if match.group(1):
            wanted = match.group(2).lower() == "true"
            tests.append(lambda m, w=wanted: m.is_read == w)
        elif match.group(3):
            op, bound = match.group(4).lower(), _time(match.group(5))
            compare = {
                "ge": lambda a, b: a >= b,
                "gt": lambda a, b: a > b,
                "le": lambda a, b: a <= b,
                "lt": lambda a, b: a < b,
            }[op]
            tests.append(lambda m, c=compare, b=bound: c(m.received_at, b))
        else:
            address = match.group(7).replace("''", "'").lower()
            tests.append(lambda m, a=address: m.sender[1].lower() == a)
    return tests


def _list(ctx: Context, user: AgentUser | DirectoryUser, folder: str | None) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/user-list-messages ; mailfolder-list-messages
    _require(ctx, *_READ)
    tests = _filter(ctx.req.query.get("$filter", ""))
    order = ctx.req.query.get("$orderby", "receivedDateTime desc").split()
    if not order or order[0] != "receivedDateTime" or (len(order) == 2 and order[1].lower() not in ("asc", "desc")):
        raise bad_request(f"$orderby '{' '.join(order)}' is not supported: use receivedDateTime [asc|desc].")
    descending = len(order) == 1 or order[1].lower() == "desc"
    messages = [m for m in _workspace(ctx).mailbox(user.object_id, folder) if all(t(m) for t in tests)]
    messages.sort(key=lambda m: (m.received_at, m.id), reverse=descending)
    as_text = bool(_PREFER_TEXT.search(ctx.req.headers.get("prefer", "")))
    full = ctx.caller.has(*_FULL)
    items = [_project(ctx, _message_json(ctx, m, as_text, full)) for m in messages]
    where = f"users('{user.object_id}')/" + (f"mailFolders('{folder}')/messages" if folder else "messages")
    result = page(ctx, items, where, default=MAIL_PAGE, maximum=MAIL_MAX, link="$skip")
    if as_text:
        result.headers["Preference-Applied"] = 'outlook.body-content-type="text"'
    return result


def _project(ctx: Context, item: dict[str, Any]) -> dict[str, Any]:
    select = ctx.req.select
    if not select:
        return item
    # Outlook always returns the etag and id alongside the selected properties.
    return {k: v for k, v in item.items() if k in select or k in ("@odata.etag", "id")}


def _address(pair: tuple[str, str]) -> dict[str, Any]:
    return {"emailAddress": {"name": pair[0], "address": pair[1]}}


def _message_json(ctx: Context, m: MailMessage, as_text: bool, full: bool) -> dict[str, Any]:
    # https://learn.microsoft.com/graph/api/resources/message (properties)
    stamp = _dt.datetime.fromtimestamp(m.received_at, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    sent = _dt.datetime.fromtimestamp(m.sent_at, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = html_to_text(m.content) if m.content_type == "html" else m.content
    if as_text:
        body = {"contentType": "text", "content": text}
    else:
        body = {"contentType": "html", "content": m.content if m.content_type == "html" else text_to_html(m.content)}
    item: dict[str, Any] = {
        "@odata.etag": f'W/"{m.id[:16]}"',
        "id": m.id,
        "createdDateTime": stamp,
        "lastModifiedDateTime": stamp,
        "changeKey": m.id[:16],
        "categories": [],
        "receivedDateTime": stamp,
        "sentDateTime": sent,
        "hasAttachments": False,
        "internetMessageId": m.internet_message_id,
        "subject": m.subject,
        "bodyPreview": " ".join(text.split())[:255],
        "importance": "normal",
        "parentFolderId": m.folder,
        "conversationId": m.conversation_id,
        "isDeliveryReceiptRequested": False,
        "isReadReceiptRequested": False,
        "isRead": m.is_read,
        "isDraft": False,
        "webLink": f"https://outlook.office365.com/owa/?ItemID={m.id}&exvsurl=1&viewmodel=ReadMessageItem",
        "inferenceClassification": "focused",
        "body": body,
        "sender": _address(m.sender),
        "from": _address(m.sender),
        "toRecipients": [_address(p) for p in m.to],
        "ccRecipients": [_address(p) for p in m.cc],
        "bccRecipients": [],
        "replyTo": [],
        "flag": {"flagStatus": "notFlagged"},
    }
    if not full:  # Mail.ReadBasic
        for key in ("body", "bodyPreview", "uniqueBody"):
            item.pop(key, None)
    return item
