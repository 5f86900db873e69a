"""The emulated tenant: the one directory both the token service and Graph read.

Relations mirror Entra's Agent ID model:

- a **Blueprint** is an application (``agentIdentityBlueprint``) with
  ``keyCredentials``; it signs Hop 1. Its **Blueprint principal** is its service
  principal in the tenant; without one the token service refuses the app
  (AADSTS7000229), as Entra does for any app lacking a service principal;
- an **Agent Identity** is a service principal whose parent is the Blueprint
  (``agentIdentityBlueprintId`` = the Blueprint's app id);
- an **Agent User** has ``identityParentId`` = the Agent Identity's object id;
- **oauth2PermissionGrants** (delegated consent, for all principals or one user)
  let an Agent Identity get user tokens; **appRoleAssignments** (application
  permissions) put ``roles`` in an app's Graph token. Both point at the Microsoft
  Graph service principal, which publishes the role and scope names;
- **owners** are directory object ids (a service principal's or a user's
  object id); the seeding API also accepts an owner app id, kept for old tests;
- **domains**: an initial ``*.onmicrosoft.com``-style default domain, verified.

Objects created over Graph carry ``visible_at``: until the tenant clock passes
it, token requests and Graph reads do not find them (``propagation_delay``,
modelling Entra's replication lag). Objects seeded from Python are visible at once.

Thread-safe: one lock guards every mutation; key credentials are immutable
tuples swapped in whole, so a verifier reading them never sees half a PATCH.
Certificates are parsed (public key, thumbprints) once, when registered.

One module per family, as graph/ is: credentials (keyCredentials), permissions (Graph's resource,
permission ids, grants, app-role assignments), objects (applications, principals, Agent IDs, users,
domains), consent (the tenant's grant and role methods), store (the state-file form), directory
(:class:`Tenant`, the one lock and every lookup).
"""

from __future__ import annotations

from entraclaw.emulator.tenant.credentials import KeyCredential
from entraclaw.emulator.tenant.directory import Tenant
from entraclaw.emulator.tenant.objects import (
    DEVICE_CODE_CLIENT_ID,
    AgentIdentity,
    AgentUser,
    Application,
    Blueprint,
    DirectoryUser,
    Domain,
    ServicePrincipal,
)
from entraclaw.emulator.tenant.permissions import (
    GRAPH_APP_ID,
    GRAPH_APP_ROLES,
    GRAPH_DELEGATED_SCOPES,
    GRAPH_RESOURCE,
    AppRoleAssignment,
    PermissionGrant,
    first_party_resource,
    normalize_resource,
    permission_id,
)

__all__ = [
    "DEVICE_CODE_CLIENT_ID",
    "GRAPH_APP_ID",
    "GRAPH_APP_ROLES",
    "GRAPH_DELEGATED_SCOPES",
    "GRAPH_RESOURCE",
    "AgentIdentity",
    "AgentUser",
    "AppRoleAssignment",
    "Application",
    "Blueprint",
    "DirectoryUser",
    "Domain",
    "KeyCredential",
    "PermissionGrant",
    "ServicePrincipal",
    "Tenant",
    "first_party_resource",
    "normalize_resource",
    "permission_id",
]
