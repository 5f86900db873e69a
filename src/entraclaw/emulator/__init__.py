"""A local Microsoft Entra + Graph emulator for the Agent User flow (no tenant, no network).

``Emulator`` serves HTTPS on loopback with a CA of its own, verifies client
assertions like Entra (signature against registered certificates, audience,
issuer, time window, lifetime, replay), runs the three hops (Blueprint +
``fmi_path`` -> T1, Agent Identity -> T2, ``user_fic`` -> T3), the device-code
grant for a seeded admin, and Microsoft Graph's Agent ID API (:mod:`.graph`:
Blueprints, Blueprint principals, Agent Identities, Agent Users, consent, app
roles, domains, addKey/removeKey). See :mod:`.aadsts` for the error codes it returns.
"""

from entraclaw.emulator.emulator import DEFAULT_TOKEN_LIFETIME, AdminIdentity, Emulator
from entraclaw.emulator.issuer import TOKEN_EXCHANGE_AUDIENCE
from entraclaw.emulator.tenant import (
    GRAPH_APP_ID,
    GRAPH_RESOURCE,
    AgentIdentity,
    AgentUser,
    Application,
    Blueprint,
    DirectoryUser,
    KeyCredential,
    PermissionGrant,
    ServicePrincipal,
    Tenant,
)

TOKEN_EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"  # noqa: S105 - a scope name, not a secret

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "GRAPH_APP_ID",
    "GRAPH_RESOURCE",
    "TOKEN_EXCHANGE_AUDIENCE",
    "TOKEN_EXCHANGE_SCOPE",
    "AdminIdentity",
    "AgentIdentity",
    "AgentUser",
    "Application",
    "Blueprint",
    "DirectoryUser",
    "Emulator",
    "KeyCredential",
    "PermissionGrant",
    "ServicePrincipal",
    "Tenant",
]
