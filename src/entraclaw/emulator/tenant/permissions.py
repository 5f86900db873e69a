"""Microsoft Graph as a resource: its ids, first-party resources, permission ids, grants and role assignments."""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass

from entraclaw.emulator.data import load_data

__all__ = [
    "GRAPH_APP_ID",
    "GRAPH_APP_ROLES",
    "GRAPH_DELEGATED_SCOPES",
    "GRAPH_RESOURCE",
    "AppRoleAssignment",
    "PermissionGrant",
    "first_party_resource",
    "normalize_resource",
    "permission_id",
]


GRAPH_RESOURCE = "https://graph.microsoft.com"

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

_RESOURCE_ALIASES = {GRAPH_APP_ID: GRAPH_RESOURCE, GRAPH_RESOURCE + "/": GRAPH_RESOURCE}


def normalize_resource(resource: str) -> str:
    return _RESOURCE_ALIASES.get(resource.lower(), resource.rstrip("/"))


def _load_first_party() -> dict[str, str]:
    data = load_data("first_party_resources.json")
    known: dict[str, str] = {}
    for item in data["resources"]:
        uri = str(item["uri"]).rstrip("/")
        known[uri.lower()] = uri
        known[str(item["appId"]).lower()] = uri
    return known


_FIRST_PARTY = _load_first_party()


def first_party_resource(resource: str) -> str | None:
    """The audience URI of a Microsoft first-party resource named by URI or app id; None for others."""
    return _FIRST_PARTY.get(resource.rstrip("/").lower())


# The Microsoft Graph permissions the emulator knows by name, with the GUIDs Graph publishes for them
# where a source was checked (data/graph_permissions.json names it per entry): upstream's literal
# appRoleId GUIDs then assign the role they assign on a tenant. Others get a stable id derived
# from the name (uuid5); clients that look ids up on Graph's principal work with both.
_PERMISSIONS = load_data("graph_permissions.json")

_PUBLISHED_IDS: dict[tuple[str, str], str] = {
    (kind, row["value"]): row["id"]
    for kind, rows in (("role", _PERMISSIONS["appRoles"]), ("scope", _PERMISSIONS["scopes"]))
    for row in rows
    if row["id"]
}

GRAPH_APP_ROLES: tuple[str, ...] = tuple(row["value"] for row in _PERMISSIONS["appRoles"])

GRAPH_DELEGATED_SCOPES: tuple[str, ...] = tuple(row["value"] for row in _PERMISSIONS["scopes"])

_PERMISSION_NS = uuid.UUID("7f0c2b1e-3d4a-4c55-9e1b-6a7d8c9e0f12")


def permission_id(value: str, kind: str) -> str:
    """The id of a Graph app role (kind "role") or delegated scope (kind "scope"): Graph's, else derived."""
    return _PUBLISHED_IDS.get((kind, value)) or str(uuid.uuid5(_PERMISSION_NS, f"{kind}:{value}"))


def _graph_id() -> str:
    # Graph's oauth2PermissionGrant and appRoleAssignment ids are opaque base64url strings.
    return base64.urlsafe_b64encode(secrets.token_bytes(33)).decode("ascii")


@dataclass(frozen=True)
class PermissionGrant:
    """An oauth2PermissionGrant: delegated ``scope`` for client SP ``client_id`` on resource SP ``resource_id``."""

    id: str
    client_id: str
    consent_type: str  # "AllPrincipals" | "Principal"
    principal_id: str | None
    resource_id: str
    scope: str
    #: Consent reaches tokens only after the tenant's ``permission_delay`` (real Entra: 30-120 s,
    #: upstream HWL Learning #8); until then tokens carry ``previous_scope``.
    effective_at: float = 0.0
    previous_scope: str = ""

    def scope_at(self, now: float) -> str:
        return self.scope if now >= self.effective_at else self.previous_scope


@dataclass(frozen=True)
class AppRoleAssignment:
    id: str
    principal_id: str  # the client service principal's object id
    resource_id: str  # the resource service principal's object id
    app_role_id: str
    created_at: float = 0.0
    value: str = ""  # the role's name, so roles outside the published list still reach tokens
    effective_at: float = 0.0  # reaches Graph tokens from then on (``permission_delay``)
