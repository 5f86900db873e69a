"""``/emulator/...``: what a test or a demo in another process does to the emulator (loopback, no token).

Not part of Entra or Graph: the stand-in for "a colleague types in Teams" and for a throttling
Graph. Like ``/devicelogin`` it is served on loopback only and needs no token.

- ``GET /emulator/people`` — the seeded colleagues, guest and external tenant (seeds them);
- ``POST /emulator/chats/{chat id}/messages`` {"from": upn | id, "content", "contentType": "text" | "html",
  "delay": seconds} — a chat member posts (its auto-reply rules do not fire on itself);
- ``POST /emulator/mail`` {"from", "to": [address], "cc": [...], "subject", "content", "contentType"}
  — a user of the tenant sends mail (delivered like ``sendMail``);
- ``POST /emulator/auto-replies`` {"from", "text", "delay", "channel": "chat" | "mail" | "both", "count"};
  ``DELETE /emulator/auto-replies`` drops them all;
- ``POST /emulator/faults`` {"kind": "429" | "5xx" | "delay" | "drop", "path", "count", "retry_after",
  "status", "delay", "skip"}; ``DELETE /emulator/faults`` clears them;
- ``GET /emulator/outbound`` — mail sent to addresses outside the tenant.

Errors: ``{"error": "invalid_request", "error_description": ...}`` with 400 (or 404 for an unknown
chat or user), as ``/devicelogin`` answers.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Protocol
from urllib.parse import unquote

from entraclaw.emulator.faults import FaultInjector
from entraclaw.emulator.graph.chats import message_json
from entraclaw.emulator.workspace import AutoReply, SeededPeople, Workspace
from entraclaw.errors import EmulatorError

__all__ = ["Controlled", "handle_control"]

_HTTP_FAULTS = frozenset({"429", "5xx", "delay", "drop"})


class Controlled(Protocol):
    workspace: Workspace
    faults: FaultInjector

    @property
    def people(self) -> SeededPeople: ...


class _Refused(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


def handle_control(target: Controlled, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """(status, JSON body or None) for one control request."""
    try:
        return _route(target, method, [s for s in path.split("/") if s][1:], body)
    except _Refused as refused:
        return refused.status, {"error": "invalid_request", "error_description": refused.description}
    except EmulatorError as exc:
        return 400, {"error": "invalid_request", "error_description": str(exc)}


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        raise _Refused(400, "The body is not JSON.") from None
    if not isinstance(payload, dict):
        raise _Refused(400, "The body must be a JSON object.")
    return payload


def _route(target: Controlled, method: str, seg: list[str], body: bytes) -> tuple[int, Any]:
    workspace = target.workspace
    if seg == ["people"] and method == "GET":
        return 200, _people(target.people)
    if seg == ["outbound"] and method == "GET":
        return 200, {"value": [asdict(m) for m in workspace.outbound]}
    if seg == ["faults"] and method == "DELETE":
        target.faults.clear()
        return 204, None
    if seg == ["faults"] and method == "POST":
        return _fault(target.faults, _json(body))
    if seg == ["auto-replies"] and method == "DELETE":
        workspace.clear_rules()
        return 204, None
    if seg == ["auto-replies"] and method == "POST":
        payload = _json(body)
        user = _user(workspace, payload.get("from"))
        count = payload.get("count")
        rule = AutoReply(
            user.object_id,
            str(payload.get("text") or "Got it."),
            float(payload.get("delay") or 0),
            str(payload.get("channel") or "both"),
            int(count) if count is not None else None,
        )
        workspace.add_rule(rule)
        return 201, asdict(rule)
    if len(seg) == 3 and seg[0] == "chats" and seg[2] == "messages" and method == "POST":
        return _say(workspace, unquote(seg[1]), _json(body))
    if seg == ["mail"] and method == "POST":
        return _mail(workspace, _json(body))
    raise _Refused(404, f"No control route {method} /emulator/{'/'.join(seg)}.")


def _people(people: SeededPeople) -> dict[str, Any]:
    def person(p: Any) -> dict[str, Any]:
        return {"id": p.object_id, "userPrincipalName": p.upn, "displayName": p.display_name, "mail": p.mail}

    return {
        "colleague": person(people.colleague),
        "second_colleague": person(people.second_colleague),
        "guest": person(people.guest),
        "external_tenant": {"id": people.external_tenant.tenant_id, "domain": people.external_tenant.domain},
        "external_user": person(people.external_user),
    }


def _user(workspace: Workspace, key: Any) -> Any:
    if not isinstance(key, str) or not key:
        raise _Refused(400, "Name the user in 'from' (UPN, mail or object id).")
    user = workspace.directory_user(key)
    if user is None:
        raise _Refused(404, f"No user '{key}' in tenant {workspace.tenant.tenant_id}.")
    return user


def _fault(faults: FaultInjector, payload: dict[str, Any]) -> tuple[int, Any]:
    kind = str(payload.get("kind", ""))
    if kind not in _HTTP_FAULTS:
        raise _Refused(400, f"Fault kind {kind!r} is not one of {sorted(_HTTP_FAULTS)}.")
    path = payload.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise _Refused(400, "Name the request path in 'path' (e.g. /v1.0/chats/*/messages).")
    try:
        faults.inject(
            kind,
            path=path,
            count=int(payload.get("count", 1)),
            retry_after=int(payload.get("retry_after", 1)),
            status=int(payload.get("status", 503)),
            delay=float(payload.get("delay", 0.0)),
            skip=int(payload.get("skip", 0)),
        )
    except (TypeError, ValueError) as exc:
        raise _Refused(400, f"Bad fault field: {exc}.") from None
    return 201, {"kind": kind, "path": path, "pending": faults.pending}


def _say(workspace: Workspace, chat_id: str, payload: dict[str, Any]) -> tuple[int, Any]:
    chat = workspace.chat(chat_id)
    if chat is None:
        raise _Refused(404, f"No chat '{chat_id}'.")
    key = str(payload.get("from") or "").lower()
    member = next((m for m in chat.members if key in (m.user_id, (m.email or "").lower())), None)
    if member is None:
        user = workspace.directory_user(key) if key else None
        member = chat.member(user.object_id) if user is not None else None
    if member is None:
        raise _Refused(400, f"'{key}' is not a member of chat '{chat_id}'.")
    content = payload.get("content")
    content_type = str(payload.get("contentType") or "text").lower()
    if not isinstance(content, str) or not content or content_type not in ("text", "html"):
        raise _Refused(400, "Send 'content' (non-empty) and 'contentType' text or html.")
    message = workspace.post(chat.id, member, content_type, content, delay=float(payload.get("delay") or 0))
    return 201, message_json(message)


def _mail(workspace: Workspace, payload: dict[str, Any]) -> tuple[int, Any]:
    sender = _user(workspace, payload.get("from"))
    to = payload.get("to") or []
    cc = payload.get("cc") or []
    if not isinstance(to, list) or not isinstance(cc, list) or not (to or cc):
        raise _Refused(400, "Send 'to' (and optionally 'cc') as lists of addresses.")
    content_type = str(payload.get("contentType") or "text").lower()
    if content_type not in ("text", "html"):
        raise _Refused(400, "'contentType' must be text or html.")
    delivered = workspace.send_mail(
        sender,
        str(payload.get("subject") or ""),
        content_type,
        str(payload.get("content") or ""),
        to=[(str(a), str(a)) for a in to],
        cc=[(str(a), str(a)) for a in cc],
        bcc=[],
        delay=float(payload.get("delay") or 0),
    )
    return 202, {"delivered": len(delivered)}
