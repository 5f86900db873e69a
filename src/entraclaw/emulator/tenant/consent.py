"""The tenant's consent and app-role methods: oauth2PermissionGrants and appRoleAssignments on Graph.

A mixin of :class:`~entraclaw.emulator.tenant.directory.Tenant`, which owns the state declared here.
Changes made over Graph (``delayed``) reach tokens after ``permission_delay``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import replace

from entraclaw.emulator.tenant.objects import AgentIdentity, ServicePrincipal, _drop
from entraclaw.emulator.tenant.permissions import (
    GRAPH_RESOURCE,
    AppRoleAssignment,
    PermissionGrant,
    _graph_id,
    normalize_resource,
    permission_id,
)
from entraclaw.errors import EmulatorError

__all__ = ["ConsentMixin"]


class ConsentMixin:
    """Grants and role assignments of a tenant; the state is the tenant's (set in ``Tenant.__init__``)."""

    tenant_id: str
    clock: Callable[[], float]
    permission_delay: float
    graph_sp: ServicePrincipal
    _lock: threading.RLock
    _sps: dict[str, ServicePrincipal]
    _identities: dict[str, AgentIdentity]
    _grants: dict[str, PermissionGrant]
    _assignments: dict[str, AppRoleAssignment]

    def client_sp_id(self, client_app_id: str) -> str | None:
        """The object id of the service principal that acts for ``client_app_id`` (app SP or Agent Identity)."""
        with self._lock:
            identity = self._identities.get(client_app_id)
            if identity is not None:
                return identity.object_id
            # The first principal of the app, propagated or not.
            return next((sp.object_id for sp in self._sps.values() if sp.app_id == client_app_id), None)

    def _graph_client(self, client_app_id: str, resource: str) -> str:
        """The principal a seeded grant on ``resource`` is for; the seeding API grants on Graph only."""
        if normalize_resource(resource) != GRAPH_RESOURCE:
            raise EmulatorError(
                f"Resource {resource} is not in tenant {self.tenant_id}; the emulator knows Microsoft Graph only.",
                remedy=f"Use {GRAPH_RESOURCE}.",
            )
        client = self.client_sp_id(client_app_id)
        if client is None:
            raise EmulatorError(
                f"Client {client_app_id} has no service principal in tenant {self.tenant_id}.",
                remedy="Seed the application (or Agent Identity) first.",
                client_id=client_app_id,
            )
        return client

    def grant_consent(self, client_app_id: str, resource: str = GRAPH_RESOURCE, scopes: Iterable[str] = ()) -> None:
        """Delegated permission grant (oauth2PermissionGrant, AllPrincipals) for ``client_app_id`` on ``resource``."""
        with self._lock:
            client = self._graph_client(client_app_id, resource)
            self.upsert_grant(client, "AllPrincipals", None, self.graph_sp.object_id, set(scopes))

    def _effective_from(self, delayed: bool) -> float:
        return self.clock() + self.permission_delay if delayed else 0.0

    def upsert_grant(
        self,
        client_id: str,
        consent_type: str,
        principal_id: str | None,
        resource_id: str,
        scopes: set[str],
        *,
        delayed: bool = False,
    ) -> PermissionGrant:
        """Create or widen a grant; ``delayed`` (Graph writes) makes the change wait ``permission_delay``."""
        with self._lock:
            for grant in self._grants.values():
                if (grant.client_id, grant.consent_type, grant.principal_id, grant.resource_id) == (
                    client_id,
                    consent_type,
                    principal_id,
                    resource_id,
                ):
                    return self.rescope_grant(grant.id, set(grant.scope.split()) | scopes, delayed=delayed)
            grant = PermissionGrant(
                _graph_id(),
                client_id,
                consent_type,
                principal_id,
                resource_id,
                " ".join(sorted(scopes)),
                effective_at=self._effective_from(delayed),
            )
            self._grants[grant.id] = grant
            return grant

    def rescope_grant(self, grant_id: str, scopes: Iterable[str], *, delayed: bool = False) -> PermissionGrant:
        """Replace a grant's scopes; tokens see the scopes they saw until the change takes effect."""
        with self._lock:
            grant = self._grants[grant_id]
            updated = replace(
                grant,
                scope=" ".join(sorted(set(scopes))),
                previous_scope=grant.scope_at(self.clock()),
                effective_at=self._effective_from(delayed),
            )
            self._grants[grant_id] = updated
            return updated

    def put_grant(self, grant: PermissionGrant) -> None:
        with self._lock:
            self._grants[grant.id] = grant

    def delete_grant(self, grant_id: str) -> bool:
        with self._lock:
            return self._grants.pop(grant_id, None) is not None

    def revoke_consent(self, client_app_id: str, resource: str = GRAPH_RESOURCE) -> None:
        with self._lock:
            client = self.client_sp_id(client_app_id)
            _drop(self._grants, lambda g: g.client_id == client and g.resource_id == self.graph_sp.object_id)

    def grant_app_roles(self, client_app_id: str, resource: str = GRAPH_RESOURCE, roles: Iterable[str] = ()) -> None:
        """Application permission (appRoleAssignment) for ``client_app_id`` on ``resource``."""
        with self._lock:
            client = self._graph_client(client_app_id, resource)
            for role in roles:
                self.assign_app_role(client, permission_id(role, "role"), role)

    def assign_app_role(
        self, principal_id: str, app_role_id: str, value: str, *, delayed: bool = False
    ) -> AppRoleAssignment:
        with self._lock:
            for existing in self._assignments.values():
                if (existing.principal_id, existing.app_role_id) == (principal_id, app_role_id):
                    return existing
            assignment = AppRoleAssignment(
                _graph_id(),
                principal_id,
                self.graph_sp.object_id,
                app_role_id,
                self.clock(),
                value,
                effective_at=self._effective_from(delayed),
            )
            self._assignments[assignment.id] = assignment
            return assignment

    def delete_assignment(self, assignment_id: str) -> bool:
        with self._lock:
            return self._assignments.pop(assignment_id, None) is not None

    def consented_scopes(self, client_app_id: str, resource: str, principal_id: str | None = None) -> frozenset[str]:
        """Scopes granted to the client for all principals, plus those granted for ``principal_id`` alone."""
        if normalize_resource(resource) != GRAPH_RESOURCE:
            return frozenset()
        with self._lock:
            client = self.client_sp_id(client_app_id)
            scopes: set[str] = set()
            now = self.clock()
            for grant in self._grants.values():
                if grant.client_id != client or grant.resource_id != self.graph_sp.object_id:
                    continue
                if grant.consent_type == "AllPrincipals" or (
                    principal_id is not None and grant.principal_id == principal_id
                ):
                    scopes.update(grant.scope_at(now).split())
            return frozenset(scopes)

    def app_roles(self, client_app_id: str, resource: str) -> frozenset[str]:
        if normalize_resource(resource) != GRAPH_RESOURCE:
            return frozenset()
        with self._lock:
            client = self.client_sp_id(client_app_id)
            now = self.clock()
            return frozenset(
                a.value
                for a in self._assignments.values()
                if a.principal_id == client
                and a.resource_id == self.graph_sp.object_id
                and a.value
                and now >= a.effective_at
            )

    @property
    def grants(self) -> list[PermissionGrant]:
        with self._lock:
            return list(self._grants.values())

    @property
    def assignments(self) -> list[AppRoleAssignment]:
        with self._lock:
            return list(self._assignments.values())
