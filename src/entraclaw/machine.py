"""Machine installs on Windows: the Blueprint key for an agent that a service runs.

An agent run by a Windows service, a scheduled task or a group managed service
account (gMSA) has no interactive profile an administrator can set it up in.
``entraclaw setup --machine --account <account>`` therefore makes the key in the
machine key set and its certificate in ``LocalMachine\\My``
(``cng:LocalMachine/<SHA1>``), then replaces the key's DACL by a single grant to
that account: the installing administrator stays the owner (it can read and
repair the grant) but can no longer sign, and no other account can open the
key. The state directory (config, token cache) is granted to the same account.

Accounts are names Windows resolves (``LookupAccountNameW``): ``DOMAIN\\user``,
``NT AUTHORITY\\NETWORK SERVICE``, a virtual service account ``NT SERVICE\\name``,
a gMSA ``DOMAIN\\name$``; ``LocalSystem``, ``LocalService`` and
``NetworkService`` are accepted as the names services are configured with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entraclaw import _native
from entraclaw._native import IMPORT_ERROR as _IMPORT_ERROR
from entraclaw._native import cng_module as _cng
from entraclaw.errors import ConfigurationError

__all__ = [
    "ACCOUNT_ALIASES",
    "AccessEntry",
    "Account",
    "KeyAccess",
    "grant_state_dir",
    "lookup_account",
]

#: How services name the built-in accounts (sc.exe, Task Scheduler) -> the names Windows resolves.
ACCOUNT_ALIASES: dict[str, str] = {
    "localsystem": "NT AUTHORITY\\SYSTEM",
    "system": "NT AUTHORITY\\SYSTEM",
    "localservice": "NT AUTHORITY\\LOCAL SERVICE",
    "networkservice": "NT AUTHORITY\\NETWORK SERVICE",
}
_ERROR_NONE_MAPPED = 0x80070534  # HRESULT_FROM_WIN32(ERROR_NONE_MAPPED)
GENERIC_ALL = 0x10000000
GENERIC_READ = 0x80000000
_FILE_READ_DATA = 0x1
_ACCESS_ALLOWED_ACE_TYPE = 0
_FIX_ACCOUNT = (
    "Pass the account the agent's service or scheduled task runs as, as Windows names it: "
    "`entraclaw setup --machine --account \"DOMAIN\\user\"` (a gMSA ends in $; built-in accounts: LocalSystem, "
    "LocalService, NetworkService)."
)


@dataclass(frozen=True)
class Account:
    """An account Windows resolved: SID, ``DOMAIN\\name`` and kind (user or a built-in service account)."""

    sid: str
    name: str
    kind: str

    def describe(self) -> str:
        return f"{self.name} ({self.sid})"

    @classmethod
    def from_native(cls, raw: dict[str, Any]) -> Account:
        name = raw["name"] or ""
        domain = raw["domain"] or ""
        shown = f"{domain}\\{name}" if domain and name else (name or raw["sid"])
        return cls(sid=raw["sid"], name=shown, kind=raw["kind"])


@dataclass(frozen=True)
class AccessEntry:
    """One ACE of a key's DACL: who (SID, name when it resolves), the access mask, allow or deny."""

    sid: str
    name: str
    mask: int
    allow: bool

    @property
    def can_use(self) -> bool:
        """Whether the entry grants what signing needs (read access, or all)."""
        return self.allow and bool(self.mask & (GENERIC_ALL | GENERIC_READ | _FILE_READ_DATA))

    def describe(self) -> str:
        return f"{self.name or '(unresolved)'} ({self.sid})"


@dataclass(frozen=True)
class KeyAccess:
    """Owner and DACL of a CNG key (``NCRYPT_SECURITY_DESCR_PROPERTY``)."""

    owner_sid: str | None
    protected: bool
    entries: tuple[AccessEntry, ...]

    @classmethod
    def from_native(cls, raw: dict[str, Any]) -> KeyAccess:
        names = list(raw.get("names") or [])
        entries = []
        for i, (sid, mask, ace_type, _flags) in enumerate(raw["aces"]):
            name = names[i] if i < len(names) else ""
            entries.append(AccessEntry(sid=sid, name=name, mask=mask, allow=ace_type == _ACCESS_ALLOWED_ACE_TYPE))
        return cls(owner_sid=raw["owner"] or None, protected=bool(raw["protected"]), entries=tuple(entries))

    @property
    def users(self) -> tuple[AccessEntry, ...]:
        """The entries that let an account sign with the key."""
        return tuple(e for e in self.entries if e.can_use)

    def only(self, sid: str) -> bool:
        """Exactly one entry, an allow for ``sid``, and nothing inherited in."""
        return self.protected and len(self.entries) == 1 and self.entries[0].allow and self.entries[0].sid == sid

    def describe(self) -> str:
        users = self.users
        if not users:
            return "no account may use the key"
        return ", ".join(e.describe() for e in users)


def _require_native(what: str) -> None:
    _native.require(
        _cng,
        _IMPORT_ERROR,
        f"{what} (a machine install) needs",
        remedy="Machine installs need the Windows wheel with entraclaw._cng (pip install --force-reinstall entraclaw).",
    )


def canonical_account(name: str) -> str:
    text = (name or "").strip()
    return ACCOUNT_ALIASES.get(text.lower().replace(" ", ""), text)


def lookup_account(name: str) -> Account:
    """Resolve an account name; a name Windows does not know is a :class:`ConfigurationError` naming it."""
    _require_native("lookup_account")
    wanted = canonical_account(name)
    if not wanted:
        raise ConfigurationError("--machine needs --account: the account the agent runs as.", remedy=_FIX_ACCOUNT)
    try:
        raw = _cng.lookup_account(wanted)
    except _cng.CngStatusError as exc:
        hresult, api = exc.args[0], exc.args[1]
        unknown = (hresult & 0xFFFFFFFF) == _ERROR_NONE_MAPPED
        raise ConfigurationError(
            f"Windows knows no account named '{wanted}'"
            + ("" if unknown else f" ({api} failed with 0x{hresult & 0xFFFFFFFF:08X})")
            + "; nothing was created.",
            remedy=_FIX_ACCOUNT,
        ) from None
    return Account.from_native(dict(raw))


def grant_state_dir(state_dir: str | os.PathLike[str], account: str) -> int:
    """Give ``account`` (and nobody else) the state directory and every file in it; returns the paths changed.

    The installer stays the owner. Files setup wrote are owner-only for the
    installer; each gets the account's single grant, the directory too (inherited
    by what the agent writes there later).
    """
    _require_native("grant_state_dir")
    root = Path(state_dir)
    try:
        targets = [root, *sorted(root.rglob("*"))]
        entries = [(os.path.abspath(target), target.is_dir()) for target in targets]
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot list the state directory {root} to give it to {account}: {exc.strerror or exc}.",
            remedy=f"Run `entraclaw setup --machine --account \"{account}\" --state-dir {root}` from an elevated "
            "prompt.",
            path=str(root),
        ) from None
    try:
        result = _cng.set_account_only_dacls(canonical_account(account), entries)
    except _cng.CngStatusError as exc:
        # The account did not resolve (checked before setup wrote anything, so rare here).
        from entraclaw.platform.winacl import error_for_status

        raise error_for_status(str(root), f"give {account} access to", exc.args[1], exc.args[0]) from None
    if result["failed"] is not None:
        from entraclaw.platform.winacl import error_for_status

        index, hresult, api = result["failed"]
        raise error_for_status(entries[index][0], f"give {account} access to", api, hresult)
    return len(entries)
