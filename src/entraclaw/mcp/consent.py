"""Human consent before sensitive actions: the policy, and who asks the human.

The policy is part of the device config (``.env`` in the state directory, or the process
environment, which wins as everywhere else):

``ENTRACLAW_MCP_CONSENT``
    Comma-separated rules; default ``external_first_message,external_mail,add_chat_member``;
    ``none`` turns human consent off.

    - ``external_first_message``: the first Teams message to a chat with a member outside the
      tenant (another tenant id, or a guest ``#EXT#`` account). Once a human said yes for that
      chat, later messages to it go without asking (remembered in ``mcp-consent.json``).
    - ``external_mail``: every mail with a recipient whose domain is not internal.
    - ``add_chat_member``: adding anyone to a chat.
``ENTRACLAW_MCP_INTERNAL_DOMAINS``
    Domains counted as internal for mail, besides the Agent User's own UPN domain.
``ENTRACLAW_MCP_CONSENT_TIMEOUT``
    Seconds to wait for the human's answer (default 120).

Who asks: an :class:`Approver`. The one built here asks through MCP elicitation (the client
shows the question to its user). The interface is the seam for a platform approver (Windows Hello
through ``Windows.Security.Credentials.UI.UserConsentVerifier``), which is not built here. A
client that did not declare the elicitation capability cannot ask anyone: the action is refused
with the policy quoted, never done silently. Accept, decline, cancel, timeout and "cannot ask"
are distinct outcomes and each is audited by the caller.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from entraclaw.errors import ConfigurationError
from entraclaw.platform import files, paths

__all__ = [
    "ENV_CONSENT",
    "ENV_CONSENT_TIMEOUT",
    "ENV_INTERNAL_DOMAINS",
    "RULES",
    "Approver",
    "ConsentPolicy",
    "ConsentRequest",
    "Outcome",
    "load_policy",
]

ENV_CONSENT = "ENTRACLAW_MCP_CONSENT"
ENV_INTERNAL_DOMAINS = "ENTRACLAW_MCP_INTERNAL_DOMAINS"
ENV_CONSENT_TIMEOUT = "ENTRACLAW_MCP_CONSENT_TIMEOUT"
RULES = ("external_first_message", "external_mail", "add_chat_member")
Rule = Literal["external_first_message", "external_mail", "add_chat_member"]
Outcome = Literal["accepted", "declined", "cancelled", "timeout", "unsupported"]


@dataclass(frozen=True)
class ConsentRequest:
    """What a human is asked to approve: the rule that fired and a sentence naming the action."""

    rule: Rule
    tool: str
    summary: str


class Approver(Protocol):
    """Asks a human. ``name`` goes into the audit trail (``elicitation``, later ``windows-hello``)."""

    name: str

    async def approve(self, request: ConsentRequest, *, timeout: float) -> Outcome: ...


@dataclass(frozen=True)
class ConsentPolicy:
    rules: frozenset[str] = frozenset(RULES)
    internal_domains: frozenset[str] = frozenset()
    timeout: float = 120.0
    memory_path: Path | None = field(default=None, compare=False)

    def requires(self, rule: Rule) -> bool:
        return rule in self.rules

    def describe(self) -> str:
        if not self.rules:
            return f"{ENV_CONSENT}=none (no action needs a human yes)"
        return f"{ENV_CONSENT}={','.join(sorted(self.rules))}"

    def is_internal_address(self, address: str) -> bool:
        domain = address.rpartition("@")[2].strip().lower()
        return bool(domain) and domain in self.internal_domains

    # --- chats a human already approved (external_first_message) ------------------------------

    def _approved(self) -> set[str]:
        if self.memory_path is None:
            return set()
        try:
            document = json.loads(self.memory_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        chats = document.get("approved_external_chats") if isinstance(document, dict) else None
        return {str(c) for c in chats} if isinstance(chats, list) else set()

    def already_approved(self, chat_id: str) -> bool:
        return chat_id in self._approved()

    def remember(self, chat_id: str) -> None:
        if self.memory_path is None:
            return
        chats = sorted(self._approved() | {chat_id})
        files.atomic_write(self.memory_path, json.dumps({"approved_external_chats": chats}, indent=1).encode())


def load_policy(
    *, agent_upn: str | None, environ: Mapping[str, str] | None = None, home: Path | None = None
) -> ConsentPolicy:
    """The policy from the process environment over the state directory's ``.env``."""
    env = os.environ if environ is None else environ
    state = home if home is not None else paths.state_dir(environ=env)
    settings: dict[str, str] = {}
    env_file = state / ".env"
    if env_file.is_file():
        from entraclaw.platform.dotenv import read_env_file

        parsed = read_env_file(env_file)
        settings.update({k: v for k, v in parsed.values().items() if k.startswith("ENTRACLAW_MCP_")})
    settings.update({k: v for k, v in env.items() if k.startswith("ENTRACLAW_MCP_")})

    raw_rules = settings.get(ENV_CONSENT)
    if raw_rules is None or not raw_rules.strip():
        rules = frozenset(RULES)
    elif raw_rules.strip().lower() == "none":
        rules = frozenset()
    else:
        rules = frozenset(r.strip() for r in raw_rules.split(",") if r.strip())
        unknown = sorted(rules - set(RULES))
        if unknown:
            raise ConfigurationError(
                f"{ENV_CONSENT} in {env_file} names unknown rule(s) {', '.join(unknown)}.",
                remedy=f"Set {ENV_CONSENT} in {env_file} to a comma-separated subset of {', '.join(RULES)}, or none.",
                key=ENV_CONSENT,
            )
    domains = {d.strip().lower() for d in settings.get(ENV_INTERNAL_DOMAINS, "").split(",") if d.strip()}
    if agent_upn and "@" in agent_upn:
        domains.add(agent_upn.rpartition("@")[2].lower())
    raw_timeout = settings.get(ENV_CONSENT_TIMEOUT, "120")
    try:
        timeout = float(raw_timeout)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 3600:
        raise ConfigurationError(
            f"{ENV_CONSENT_TIMEOUT}={raw_timeout!r} in {env_file} is not a number of seconds in (0, 3600].",
            remedy=f"Set {ENV_CONSENT_TIMEOUT} to e.g. 120 in {env_file}.",
            key=ENV_CONSENT_TIMEOUT,
        )
    return ConsentPolicy(rules, frozenset(domains), timeout, state / "mcp-consent.json")
