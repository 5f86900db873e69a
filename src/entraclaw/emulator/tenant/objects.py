"""The directory's objects: applications (Blueprints), service principals, Agent Identities, users, domains."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from entraclaw.emulator.tenant.credentials import KeyCredential, _new_id
from entraclaw.errors import EmulatorError

__all__ = [
    "DEVICE_CODE_CLIENT_ID",
    "AgentIdentity",
    "AgentUser",
    "Application",
    "Blueprint",
    "DirectoryUser",
    "Domain",
    "ServicePrincipal",
]


_T = TypeVar("_T")


def _guid(value: str | None, what: str) -> str:
    if value is None:
        return _new_id()
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise EmulatorError(f"{what} {value!r} is not a GUID.", remedy="Pass a GUID or leave it out.") from exc


def _drop(store: dict[str, _T], doomed: Callable[[_T], bool]) -> None:
    for key in [k for k, v in store.items() if doomed(v)]:
        del store[key]


@dataclass
class Application:
    """An app registration. ``kind`` is "blueprint" (Agent Identity Blueprint) or "application".

    ``owners`` holds directory object ids (and, from the seeding API, owner app ids);
    ``sponsors`` holds user object ids (Agent ID objects must name sponsors).
    """

    app_id: str
    object_id: str
    display_name: str
    kind: str = "blueprint"
    key_credentials: tuple[KeyCredential, ...] = ()
    owners: tuple[str, ...] = ()
    sponsors: tuple[str, ...] = ()
    created_by_app_id: str | None = None
    created_at: float = 0.0
    visible_at: float = 0.0
    public_client: bool = False

    def find_key(self, *, x5t_s256: str | None, x5t: str | None) -> KeyCredential | None:
        for cred in self.key_credentials:
            if (x5t_s256 is not None and cred.x5t_s256 == x5t_s256) or (
                x5t_s256 is None and x5t is not None and cred.x5t == x5t
            ):
                return cred
        return None


# Kept for the agreed API name: a Blueprint is an Application of kind "blueprint".
Blueprint = Application


@dataclass
class ServicePrincipal:
    """A service principal of an application: ``kind`` "blueprintPrincipal", "application" or "resource"."""

    object_id: str
    app_id: str
    display_name: str
    kind: str = "application"
    owners: tuple[str, ...] = ()
    created_by_app_id: str | None = None
    created_at: float = 0.0
    visible_at: float = 0.0


@dataclass(frozen=True)
class AgentIdentity:
    app_id: str
    object_id: str
    display_name: str
    blueprint_app_id: str
    owners: tuple[str, ...] = ()
    sponsors: tuple[str, ...] = ()
    created_by_app_id: str | None = None
    created_at: float = 0.0
    visible_at: float = 0.0


@dataclass(frozen=True)
class AgentUser:
    object_id: str
    upn: str
    display_name: str
    identity_parent_id: str  # the Agent Identity's object id, as Graph's identityParentId
    agent_identity_app_id: str
    mail_nickname: str = ""
    account_enabled: bool = True
    created_at: float = 0.0
    visible_at: float = 0.0


@dataclass(frozen=True)
class DirectoryUser:
    """A human user (the seeded admin who signs in with the device-code flow)."""

    object_id: str
    upn: str
    display_name: str
    roles: tuple[str, ...] = ()  # directory role names, e.g. "Agent ID Administrator"


@dataclass(frozen=True)
class Domain:
    name: str
    is_default: bool = False
    is_initial: bool = False
    is_verified: bool = True


#: Microsoft Graph Command Line Tools, a public client every real tenant knows; the emulator
#: registers it so device-code clients can use the same client id against both.
DEVICE_CODE_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
