"""Owner-only Windows DACLs by SID, and the account entraclaw runs as.

:func:`set_owner_only` replaces a file's (or directory's) DACL with exactly one
ACCESS_ALLOWED ACE, FILE_ALL_ACCESS for the SID of the process token's user,
and marks it protected so the parent's inheritable ACEs (Administrators,
SYSTEM, Users, ...) no longer apply. Directories get the ACE with
OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE so files created in them later are
owner-only too. The owner is set to the same SID where Windows allows it;
where it does not (no WRITE_OWNER on the file), the DACL is applied anyway.

All of it is native code in ``entraclaw._cng`` (native/src/file_security.cpp):
binary SIDs and ACLs through advapi32, never icacls/SDDL text. Off Windows the
functions raise :class:`~entraclaw.errors.NativeModuleUnavailableError`, except
with the test-only stand-in build, whose advapi32 model they drive.

:func:`current_account` tells a service account (LocalSystem S-1-5-18,
LocalService S-1-5-19, NetworkService S-1-5-20) from a user, so the state
directory resolver and ``doctor`` can say which profile the state lives in.
The kind comes from the SID (IsWellKnownSid), never from the name:
LookupAccountSid returns localized names for these accounts
(https://learn.microsoft.com/windows/win32/services/localservice-account).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from entraclaw import _native
from entraclaw._native import IMPORT_ERROR as _IMPORT_ERROR
from entraclaw._native import cng_module as _cng
from entraclaw.errors import FilePermissionError

__all__ = [
    "FILE_ALL_ACCESS",
    "AccountInfo",
    "AccountKind",
    "Ace",
    "DaclInfo",
    "current_account",
    "describe_dacl",
    "error_for_status",
    "read_dacl",
    "set_owner_only",
]

_log = logging.getLogger(__name__)

AccountKind = Literal["user", "LocalSystem", "LocalService", "NetworkService"]
_KINDS: dict[str, AccountKind] = {
    "user": "user",
    "LocalSystem": "LocalSystem",
    "LocalService": "LocalService",
    "NetworkService": "NetworkService",
}

#: winnt.h: STANDARD_RIGHTS_REQUIRED | SYNCHRONIZE | 0x1FF, the mask set_owner_only grants.
FILE_ALL_ACCESS = 0x001F01FF
ACCESS_ALLOWED_ACE_TYPE = 0
ACCESS_DENIED_ACE_TYPE = 1
OBJECT_INHERIT_ACE = 0x01
CONTAINER_INHERIT_ACE = 0x02
INHERIT_ONLY_ACE = 0x08
INHERITED_ACE = 0x10

_FACILITY_WIN32 = 0x80070000


def _elevated_fix(path: str) -> str:
    return (
        f"Run entraclaw as the account that owns {path}, or have an administrator give it back with "
        f'`takeown /F "{path}"` and `icacls "{path}" /reset`, then run the command again (entraclaw restricts it '
        "to the owner again)."
    )


# Win32 errors the security calls return, by value (winerror.h), with what to do.
# {path} and {parent} are filled in; every remedy names a command that exists.
_WIN32_ERRORS: dict[int, tuple[str, str]] = {
    2: (
        "ERROR_FILE_NOT_FOUND",
        "The file is gone; check it with PowerShell `Test-Path -LiteralPath '{path}'` and write it again "
        "(entraclaw creates a state file before restricting it).",
    ),
    3: (
        "ERROR_PATH_NOT_FOUND",
        "The folder {parent} does not exist: create it with PowerShell `New-Item -ItemType Directory -Path '{parent}'` "
        "or point ENTRACLAW_HOME at an existing folder.",
    ),
    5: ("ERROR_ACCESS_DENIED", ""),  # filled by _elevated_fix
    8: ("ERROR_NOT_ENOUGH_MEMORY", "Windows ran out of memory for the security descriptor; close programs and retry."),
    32: (
        "ERROR_SHARING_VIOLATION",
        "Another process holds {path} open without sharing (an editor, backup or antivirus scan); close it and retry.",
    ),
    50: (
        "ERROR_NOT_SUPPORTED",
        "The volume holding {path} keeps no ACLs (FAT32/exFAT or some network shares); set ENTRACLAW_HOME to a "
        "folder on an NTFS volume.",
    ),
    87: ("ERROR_INVALID_PARAMETER", ""),
    1307: ("ERROR_INVALID_OWNER", ""),
    1314: ("ERROR_PRIVILEGE_NOT_HELD", ""),
    1332: ("ERROR_NONE_MAPPED", ""),
    1336: ("ERROR_INVALID_ACL", ""),
    1337: ("ERROR_INVALID_SID", ""),
    1338: ("ERROR_INVALID_SECURITY_DESCR", ""),
    1344: ("ERROR_ALLOTTED_SPACE_EXCEEDED", ""),
}
_INTERNAL = (
    "This is a bug in entraclaw's DACL code, not in your setup; report it with the output of `entraclaw --version` "
    "and this message."
)


@dataclass(frozen=True)
class AccountInfo:
    """The account the process token belongs to. ``name`` is ``DOMAIN\\user`` (None when it did not resolve)."""

    sid: str
    name: str | None
    kind: AccountKind
    domain: str | None = None

    @property
    def is_service(self) -> bool:
        """True for LocalSystem, LocalService and NetworkService."""
        return self.kind != "user"

    def describe(self) -> str:
        """One line for ``doctor``: who, which SID, and whether it is a service account."""
        who = self.name or "(name did not resolve)"
        if self.is_service:
            return f"{who} ({self.sid}), the {self.kind} service account: state lives in that account's profile"
        return f"{who} ({self.sid})"


@dataclass(frozen=True)
class Ace:
    """One ACE of a DACL: trustee SID, access mask, ACE type and flags as Windows stores them."""

    sid: str
    mask: int
    type: int
    flags: int

    @property
    def allows(self) -> bool:
        return self.type == ACCESS_ALLOWED_ACE_TYPE

    @property
    def inherited(self) -> bool:
        return bool(self.flags & INHERITED_ACE)


@dataclass(frozen=True)
class DaclInfo:
    """A file's owner and DACL as GetNamedSecurityInfoW returns them."""

    path: str
    owner_sid: str | None
    protected: bool
    dacl_present: bool  # False: no DACL at all (a NULL DACL lets everyone in)
    aces: tuple[Ace, ...]

    def is_owner_only(self, sid: str) -> bool:
        """Exactly one ACE, allowing FILE_ALL_ACCESS to ``sid``, and protected from inheritance."""
        if not (self.dacl_present and self.protected and len(self.aces) == 1):
            return False
        ace = self.aces[0]
        return ace.allows and ace.sid == sid and ace.mask == FILE_ALL_ACCESS and not ace.inherited


def _require_native(what: str) -> None:
    _native.require(
        _cng,
        _IMPORT_ERROR,
        f"{what} sets Windows DACLs through",
        remedy=(
            "On Windows install the Windows wheel (`pip install entraclaw`), which ships entraclaw._cng; "
            "on Linux and macOS owner-only files come from POSIX permissions (chmod 0600) instead."
        ),
    )


def _win32_code(hresult: int) -> int | None:
    code = hresult & 0xFFFFFFFF
    return code & 0xFFFF if (code & 0xFFFF0000) == _FACILITY_WIN32 else None


def error_for_status(path: str, operation: str, api: str, hresult: int) -> FilePermissionError:
    """The typed error for a failed security call on ``path`` (``hresult`` is HRESULT_FROM_WIN32 of the error)."""
    code = hresult & 0xFFFFFFFF
    win32 = _win32_code(code)
    name, remedy = _WIN32_ERRORS.get(win32, ("", "")) if win32 is not None else ("", "")
    if win32 == 5:
        remedy = _elevated_fix(path)
    elif remedy:
        remedy = remedy.format(path=path, parent=str(Path(path).parent))
    elif win32 in (87, 1336, 1337, 1338, 1344):
        remedy = _INTERNAL
    else:
        remedy = (
            f"Check {path} with PowerShell `Get-Acl -LiteralPath '{path}' | Format-List` and retry; "
            "if it persists, report the code above."
        )
    system_message = _cng.system_message(code) if _cng is not None else None
    shown = f"0x{code:08X}" + (f" ({name})" if name else "")
    message = f"Could not {operation} {path}: {api} failed with {shown}."
    if system_message:
        message += f" Windows says: {system_message}"
    return FilePermissionError(
        message,
        remedy=remedy,
        path=path,
        operation=operation,
        api=api,
        hresult=code,
        win32_error=win32,
        error_name=name or None,
        system_message=system_message,
    )


def _absolute(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(path))


def set_owner_only(path: str | os.PathLike[str]) -> None:
    """Make ``path`` readable and writable by the current account only (protected DACL, one ACE).

    Raises :class:`~entraclaw.errors.FilePermissionError` naming the path, the
    Win32 call and its error when Windows refuses.
    """
    _require_native("set_owner_only")
    target = _absolute(path)
    directory = os.path.isdir(target)
    try:
        result = _cng.set_owner_only_dacl(target, directory)
    except _cng.CngStatusError as exc:
        hresult, api, _attempts, _reacquires = exc.args
        raise error_for_status(target, "restrict to the owner", api, hresult) from None
    if not result["owner_set"]:
        # The DACL alone already shuts everyone else out; the owner that stays
        # keeps only its implicit READ_CONTROL/WRITE_DAC, which doctor shows.
        _log.info(
            "%s: DACL restricted to %s; owner left unchanged (%s returned 0x%08X)",
            target,
            result["sid"],
            result["owner_api"],
            result["owner_hresult"],
        )


def read_dacl(path: str | os.PathLike[str]) -> DaclInfo:
    """Owner, protection flag and every ACE of ``path``'s DACL."""
    _require_native("read_dacl")
    target = _absolute(path)
    try:
        raw = _cng.read_dacl(target)
    except _cng.CngStatusError as exc:
        hresult, api, _attempts, _reacquires = exc.args
        raise error_for_status(target, "read the DACL of", api, hresult) from None
    return DaclInfo(
        path=target,
        owner_sid=raw["owner"] or None,
        protected=raw["protected"],
        dacl_present=raw["dacl_present"],
        aces=tuple(Ace(sid, mask, ace_type, flags) for sid, mask, ace_type, flags in raw["aces"]),
    )


def describe_dacl(path: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """``(SID, access mask)`` for each ACE of ``path``'s DACL, in order (for tests and ``doctor``)."""
    return [(ace.sid, ace.mask) for ace in read_dacl(path).aces]


def current_account() -> AccountInfo:
    """SID, ``DOMAIN\\name`` and kind of the account this process runs as."""
    _require_native("current_account")
    try:
        raw = _cng.current_account()
    except _cng.CngStatusError as exc:
        hresult, api, _attempts, _reacquires = exc.args
        raise error_for_status("(process token)", "identify the account of", api, hresult) from None
    if raw["lookup_hresult"]:
        _log.debug("%s: %s returned 0x%08X; no account name", raw["sid"], raw["lookup_api"], raw["lookup_hresult"])
    name = raw["name"] or None
    domain = raw["domain"] or None
    return AccountInfo(
        sid=raw["sid"],
        name=f"{domain}\\{name}" if name and domain else name,
        kind=_KINDS.get(raw["kind"], "user"),
        domain=domain,
    )
