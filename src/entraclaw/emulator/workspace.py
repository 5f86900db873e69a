"""Teams chats, mailboxes, seeded colleagues and a second tenant: the Microsoft 365 side the agent's tools use.

Kept apart from :mod:`.tenant` (the directory): chats, chat messages, mail and auto-reply
rules are workload data, not directory objects. All methods are safe to call from any thread.

A *reply* is an ordinary chat message or mail whose ``visible_at`` lies in the future: Graph
lists it only once the emulator clock passes that point, so "the colleague answers after D
seconds" needs no timer thread and a test can move the clock instead of sleeping.
"""

from __future__ import annotations

import base64
import copy
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from entraclaw.emulator.bodies import html_to_text
from entraclaw.emulator.tenant import AgentUser, DirectoryUser, Tenant
from entraclaw.errors import EmulatorError

__all__ = [
    "AutoReply",
    "Chat",
    "ChatMember",
    "ChatMessage",
    "ExternalTenant",
    "MailMessage",
    "SeededPeople",
    "Workspace",
]

MAIL_FOLDERS = ("inbox", "sentitems", "drafts", "deleteditems", "archive", "junkemail", "outbox")


@dataclass(frozen=True)
class ChatMember:
    id: str  # the membership id: opaque to clients, as Graph documents
    user_id: str
    display_name: str
    email: str | None
    tenant_id: str
    roles: tuple[str, ...]
    visible_history_start: float = 0.0


@dataclass(frozen=True)
class ChatMessage:
    id: str
    chat_id: str
    from_id: str
    from_name: str
    from_tenant: str
    content_type: str  # "text" | "html"
    content: str
    created_at: float
    modified_at: float
    mentions: tuple[dict[str, Any], ...] = ()
    visible_at: float = 0.0


@dataclass
class Chat:
    id: str
    chat_type: str  # "oneOnOne" | "group"
    topic: str | None
    tenant_id: str
    created_at: float
    updated_at: float
    members: list[ChatMember] = field(default_factory=list)
    messages: list[ChatMessage] = field(default_factory=list)

    def member(self, user_id: str) -> ChatMember | None:
        return next((m for m in self.members if m.user_id == user_id.lower()), None)


@dataclass(frozen=True)
class MailMessage:
    id: str
    owner_id: str  # whose mailbox
    folder: str  # a well-known folder name
    subject: str
    content_type: str  # "text" | "html"
    content: str
    sender: tuple[str, str]  # (name, address)
    to: tuple[tuple[str, str], ...]
    cc: tuple[tuple[str, str], ...]
    sent_at: float
    received_at: float
    conversation_id: str
    internet_message_id: str
    is_read: bool = False
    visible_at: float = 0.0


@dataclass(frozen=True)
class AutoReply:
    """When someone else writes to ``responder`` (in a chat it is a member of, or by mail), it answers ``text``.

    ``text`` may contain ``{text}`` (what was written to it, as plain text) and ``{sender}``.
    """

    responder_id: str
    text: str
    delay: float = 0.0
    channel: str = "both"  # "chat" | "mail" | "both"
    remaining: int | None = None  # None: every time


@dataclass(frozen=True)
class ExternalUser:
    object_id: str
    upn: str
    display_name: str
    mail: str


@dataclass
class ExternalTenant:
    """Another Entra tenant: only what federation needs (its id, domain, and users by UPN)."""

    tenant_id: str
    domain: str
    users: list[ExternalUser] = field(default_factory=list)

    def user(self, key: str) -> ExternalUser | None:
        key = key.lower()
        return next((u for u in self.users if key in (u.object_id, u.upn.lower(), u.mail.lower())), None)


@dataclass(frozen=True)
class SeededPeople:
    """The seeded people the tools talk to (see :meth:`Workspace.seed`)."""

    colleague: DirectoryUser  # an internal member with a mailbox; the usual replier
    second_colleague: DirectoryUser  # for group chats
    guest: DirectoryUser  # a B2B guest of this tenant: UPN with #EXT#, home in the external tenant
    external_tenant: ExternalTenant
    external_user: ExternalUser  # a user of the external tenant with no guest account here (federation only)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class Workspace:
    def __init__(self, tenant: Tenant, clock: Callable[[], float] | None = None) -> None:
        self.tenant = tenant
        self.clock: Callable[[], float] = clock or time.time
        self._lock = threading.RLock()
        self._chats: dict[str, Chat] = {}
        self._mail: list[MailMessage] = []
        self._rules: list[AutoReply] = []
        self._external: dict[str, ExternalTenant] = {}  # by domain
        #: Mail to addresses outside the tenant (never delivered; the tests read it).
        self.outbound: list[MailMessage] = []
        self._last_message_ms = 0

    # --- people -----------------------------------------------------------------------

    def seed(self) -> SeededPeople:
        """The colleagues, a guest and a second tenant with a federated user; idempotent."""
        tenant = self.tenant
        domain = tenant.default_domain
        ext_domain = "fabrikam.example"

        def person(upn: str, name: str, *, mail: str | None = None, user_type: str = "Member") -> DirectoryUser:
            found = tenant.person_by_upn(upn)
            if found is not None:
                return found
            return tenant.add_person(upn, name, mail=mail or upn, user_type=user_type)

        colleague = person(f"megan.bowen@{domain}", "Megan Bowen")
        second = person(f"lee.gu@{domain}", "Lee Gu")
        external = self.add_external_tenant(ext_domain, tenant_id=str(uuid.uuid5(uuid.UUID(tenant.tenant_id), "fab")))
        alex = external.user("alex.wilber@" + ext_domain) or self.add_external_user(
            ext_domain, "alex.wilber@" + ext_domain, "Alex Wilber"
        )
        jordan = external.user("jordan.miller@" + ext_domain) or self.add_external_user(
            ext_domain, "jordan.miller@" + ext_domain, "Jordan Miller"
        )
        # A B2B guest's UPN: the home address with '@' turned into '_', then #EXT#@ this tenant's domain.
        guest_upn = f"{alex.upn.replace('@', '_')}#EXT#@{domain}"
        guest = person(guest_upn, f"{alex.display_name} (Fabrikam)", mail=alex.mail, user_type="Guest")
        return SeededPeople(colleague, second, guest, external, jordan)

    def add_external_tenant(self, domain: str, *, tenant_id: str | None = None) -> ExternalTenant:
        domain = domain.lower()
        with self._lock:
            found = self._external.get(domain)
            if found is not None:
                return found
            if domain in {d.name for d in self.tenant.domains}:
                raise EmulatorError(
                    f"Domain {domain} belongs to tenant {self.tenant.tenant_id} already.",
                    remedy="Pick another domain for the external tenant.",
                )
            made = ExternalTenant(str(uuid.UUID(tenant_id)) if tenant_id else str(uuid.uuid4()), domain)
            self._external[domain] = made
            return made

    def add_external_user(self, domain: str, upn: str, display_name: str) -> ExternalUser:
        with self._lock:
            ext = self._external.get(domain.lower())
            if ext is None:
                raise EmulatorError(
                    f"No external tenant with domain {domain}.",
                    remedy="Add it with workspace.add_external_tenant(domain) first.",
                )
            user = ExternalUser(str(uuid.uuid4()), upn, display_name, upn)
            ext.users.append(user)
            return user

    def external_tenant(self, key: str) -> ExternalTenant | None:
        """An external tenant by domain or tenant id."""
        key = key.lower()
        with self._lock:
            return self._external.get(key) or next((t for t in self._external.values() if t.tenant_id == key), None)

    def directory_user(self, key: str) -> AgentUser | DirectoryUser | None:
        """A user of this tenant by object id, UPN or mail."""
        tenant = self.tenant
        key = key.lower()
        found: AgentUser | DirectoryUser | None = tenant.user(key, include_hidden=False) or tenant.person(key)
        if found is None:
            found = tenant.user_by_upn(key, include_hidden=False) or tenant.person_by_upn(key)
        if found is None:
            found = next((p for p in tenant.people if (p.mail or "").lower() == key), None)
        return found

    # --- chats ------------------------------------------------------------------------

    def add_chat(self, chat_type: str, topic: str | None, members: Iterable[ChatMember]) -> tuple[Chat, bool]:
        """The new chat, or for oneOnOne the existing one between the same two users; True if made now."""
        members = list(members)
        now = self.clock()
        with self._lock:
            if chat_type == "oneOnOne":
                ids = sorted(m.user_id for m in members)
                chat_id = f"19:{ids[0]}_{ids[1]}@unq.gbl.spaces"
                existing = self._chats.get(chat_id)
                if existing is not None:
                    return existing, False
            else:
                chat_id = f"19:{uuid.uuid4().hex}@thread.v2"
            chat = Chat(chat_id, chat_type, topic, self.tenant.tenant_id, now, now)
            chat.members = [replace(m, id=self._member_id(chat_id, m.user_id)) for m in members]
            self._chats[chat_id] = chat
            return chat, True

    @staticmethod
    def _member_id(chat_id: str, user_id: str) -> str:
        return base64.b64encode(f"1#{chat_id}#{user_id}".encode()).decode()

    def chat(self, chat_id: str) -> Chat | None:
        with self._lock:
            return self._chats.get(chat_id)

    def chats_of(self, user_id: str) -> list[Chat]:
        with self._lock:
            return [c for c in self._chats.values() if c.member(user_id) is not None]

    def add_member(self, chat_id: str, member: ChatMember) -> ChatMember:
        with self._lock:
            chat = self._chats[chat_id]
            made = replace(member, id=self._member_id(chat_id, member.user_id))
            chat.members.append(made)
            chat.updated_at = self.clock()
            return made

    def post(
        self,
        chat_id: str,
        sender: ChatMember,
        content_type: str,
        content: str,
        mentions: Iterable[dict[str, Any]] = (),
        *,
        delay: float = 0.0,
        react: bool = True,
    ) -> ChatMessage:
        """Append a message from ``sender`` (a member); fire the auto-reply rules of the other members."""
        now = self.clock()
        when = now + delay
        with self._lock:
            chat = self._chats[chat_id]
            # Teams message ids are the creation time in epoch milliseconds; kept unique and rising.
            stamp = max(_ms(when), self._last_message_ms + 1)
            self._last_message_ms = stamp
            message = ChatMessage(
                str(stamp),
                chat_id,
                sender.user_id,
                sender.display_name,
                sender.tenant_id,
                content_type,
                content,
                stamp / 1000,
                stamp / 1000,
                tuple(copy.deepcopy(list(mentions))),
                visible_at=when if delay else 0.0,
            )
            chat.messages.append(message)
            chat.updated_at = max(chat.updated_at, when)
            if react:
                for member in chat.members:
                    if member.user_id == sender.user_id:
                        continue
                    rule = self._take_rule(member.user_id, "chat")
                    if rule is not None:
                        text = _render(rule.text, as_text(content_type, content), sender.display_name)
                        self.post(chat_id, member, "text", text, delay=delay + rule.delay, react=False)
            return message

    def visible_messages(self, chat: Chat) -> list[ChatMessage]:
        now = self.clock()
        with self._lock:
            return [m for m in chat.messages if m.visible_at <= now]

    # --- auto replies -----------------------------------------------------------------

    def add_rule(self, rule: AutoReply) -> None:
        if rule.channel not in ("chat", "mail", "both"):
            raise EmulatorError(f"Auto-reply channel {rule.channel!r} is not chat, mail or both.", remedy="Pass one.")
        if rule.delay < 0:
            raise EmulatorError(f"Auto-reply delay {rule.delay} is negative.", remedy="Pass delay >= 0 seconds.")
        with self._lock:
            # One rule per responder and channel: a restarted `serve --auto-reply` replaces, not stacks.
            self._rules = [r for r in self._rules if (r.responder_id, r.channel) != (rule.responder_id, rule.channel)]
            self._rules.append(rule)

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[AutoReply]:
        with self._lock:
            return list(self._rules)

    def _take_rule(self, responder_id: str, channel: str) -> AutoReply | None:
        for index, rule in enumerate(self._rules):
            if rule.responder_id == responder_id and rule.channel in (channel, "both"):
                if rule.remaining is not None:
                    if rule.remaining <= 1:
                        del self._rules[index]
                    else:
                        self._rules[index] = replace(rule, remaining=rule.remaining - 1)
                return rule
        return None

    # --- mail -------------------------------------------------------------------------

    def send_mail(
        self,
        sender: AgentUser | DirectoryUser,
        subject: str,
        content_type: str,
        content: str,
        *,
        to: list[tuple[str, str]],
        cc: list[tuple[str, str]],
        bcc: list[tuple[str, str]],
        save_to_sent: bool = True,
        delay: float = 0.0,
        react: bool = True,
        conversation_id: str | None = None,
    ) -> list[MailMessage]:
        """Deliver into the inbox of every recipient of this tenant; the rest goes to ``outbound``."""
        now = self.clock()
        when = now + delay
        address = _address(sender)
        conversation = conversation_id or base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        internet_id = f"<{uuid.uuid4().hex}@emulator.entraclaw>"

        def item(owner: str, folder: str, *, read: bool) -> MailMessage:
            return MailMessage(
                base64.urlsafe_b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode().rstrip("="),
                owner,
                folder,
                subject,
                content_type,
                content,
                (sender.display_name, address),
                tuple(to),
                tuple(cc),
                when,
                when,
                conversation,
                internet_id,
                is_read=read,
                visible_at=when if delay else 0.0,
            )

        delivered: list[MailMessage] = []
        with self._lock:
            if save_to_sent:
                self._mail.append(item(sender.object_id, "sentitems", read=True))
            seen: set[str] = set()
            for _name, addr in [*to, *cc, *bcc]:
                recipient = self._mailbox_owner(addr)
                if recipient is None:
                    self.outbound.append(item("", "outbound", read=True))
                    continue
                if recipient.object_id in seen:
                    continue
                seen.add(recipient.object_id)
                message = item(recipient.object_id, "inbox", read=False)
                self._mail.append(message)
                delivered.append(message)
                rule = self._take_rule(recipient.object_id, "mail") if react else None
                if rule is not None:
                    text = _render(rule.text, as_text(content_type, content), sender.display_name)
                    reply_subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
                    self.send_mail(
                        recipient,
                        reply_subject,
                        "text",
                        text,
                        to=[(sender.display_name, address)],
                        cc=[],
                        bcc=[],
                        delay=delay + rule.delay,
                        react=False,
                        conversation_id=conversation,
                    )
        return delivered

    def _mailbox_owner(self, address: str) -> AgentUser | DirectoryUser | None:
        user = self.directory_user(address)
        # A guest's mailbox is in its home tenant: mail to it leaves this tenant.
        if isinstance(user, DirectoryUser) and user.user_type == "Guest":
            return None
        return user

    def mailbox(self, owner_id: str, folder: str | None = None) -> list[MailMessage]:
        now = self.clock()
        with self._lock:
            return [
                m
                for m in self._mail
                if m.owner_id == owner_id and m.visible_at <= now and (folder is None or m.folder == folder)
            ]

    # --- persistence ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "chats": [
                    {
                        **{k: v for k, v in asdict(c).items() if k not in ("members", "messages")},
                        "members": [asdict(m) for m in c.members],
                        "messages": [asdict(m) for m in c.messages],
                    }
                    for c in self._chats.values()
                ],
                "mail": [asdict(m) for m in self._mail],
                "rules": [asdict(r) for r in self._rules],
                "external": [
                    {"tenant_id": t.tenant_id, "domain": t.domain, "users": [asdict(u) for u in t.users]}
                    for t in self._external.values()
                ],
            }

    def load(self, data: dict[str, Any]) -> None:
        with self._lock:
            for c in data.get("chats", []):
                chat = Chat(c["id"], c["chat_type"], c["topic"], c["tenant_id"], c["created_at"], c["updated_at"])
                chat.members = [ChatMember(**{**m, "roles": tuple(m["roles"])}) for m in c["members"]]
                chat.messages = [ChatMessage(**{**m, "mentions": tuple(m["mentions"])}) for m in c["messages"]]
                self._chats[chat.id] = chat
                for message in chat.messages:
                    self._last_message_ms = max(self._last_message_ms, int(message.id))
            self._mail = [_mail_from(m) for m in data.get("mail", [])]
            self._rules = [AutoReply(**r) for r in data.get("rules", [])]
            for t in data.get("external", []):
                ext = ExternalTenant(t["tenant_id"], t["domain"], [ExternalUser(**u) for u in t["users"]])
                self._external[ext.domain] = ext


def _mail_from(m: dict[str, Any]) -> MailMessage:
    return MailMessage(
        **{
            **m,
            "sender": tuple(m["sender"]),
            "to": tuple(tuple(x) for x in m["to"]),
            "cc": tuple(tuple(x) for x in m["cc"]),
        }
    )


def _address(user: AgentUser | DirectoryUser) -> str:
    if isinstance(user, DirectoryUser):
        return user.mail or user.upn
    return user.upn


def _render(template: str, text: str, sender: str) -> str:
    return template.replace("{text}", text).replace("{sender}", sender)


def as_text(content_type: str, content: str) -> str:
    """The plain text of a body: HTML tags dropped and entities resolved."""
    if content_type.lower() != "html":
        return content
    return html_to_text(content)
