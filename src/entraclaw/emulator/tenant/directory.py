"""The directory: :class:`Tenant`, one lock over every family's objects, seeding, lookups and deletion."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, Generic, overload

from cryptography import x509

from entraclaw.emulator.tenant.consent import ConsentMixin
from entraclaw.emulator.tenant.credentials import KeyCredential, _certs
from entraclaw.emulator.tenant.objects import (
    _T,
    AgentIdentity,
    AgentUser,
    Application,
    DirectoryUser,
    Domain,
    ServicePrincipal,
    _drop,
    _guid,
)
from entraclaw.emulator.tenant.permissions import GRAPH_APP_ID, AppRoleAssignment, PermissionGrant
from entraclaw.emulator.tenant.store import dump, load
from entraclaw.errors import EmulatorError

__all__ = ["Tenant"]


class _Snapshot(Generic[_T]):
    """A read-only attribute of the tenant: a list copy of one of its tables, taken under its lock."""

    def __init__(self, table: str) -> None:
        self._table = table

    @overload
    def __get__(self, tenant: None, owner: type[Any]) -> _Snapshot[_T]: ...

    @overload
    def __get__(self, tenant: Tenant, owner: type[Any]) -> list[_T]: ...

    def __get__(self, tenant: Tenant | None, owner: type[Any]) -> _Snapshot[_T] | list[_T]:
        if tenant is None:
            return self
        table: dict[str, _T] | list[_T] = getattr(tenant, self._table)
        with tenant._lock:
            return list(table.values() if isinstance(table, dict) else table)


class Tenant(ConsentMixin):
    """The directory. All methods are safe to call from any thread."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._lock = threading.RLock()
        self._apps: dict[str, Application] = {}  # by app id
        self._sps: dict[str, ServicePrincipal] = {}  # by object id (not agent identities)
        self._identities: dict[str, AgentIdentity] = {}  # by app id
        self._users: dict[str, AgentUser] = {}  # by object id
        self._people: dict[str, DirectoryUser] = {}  # by object id
        self._grants: dict[str, PermissionGrant] = {}
        self._assignments: dict[str, AppRoleAssignment] = {}
        self._domains: list[Domain] = [
            Domain(f"emulator{tenant_id.replace('-', '')[:8]}.onmicrosoft.com", is_default=True, is_initial=True)
        ]
        #: The emulator's clock (set by Emulator) and the replication lag of objects created over Graph.
        self.clock: Callable[[], float] = time.time
        self.propagation_delay = 0.0
        #: How long a consent or app-role change made over Graph takes to reach tokens.
        self.permission_delay = 0.0
        self.graph_sp = ServicePrincipal(
            object_id=str(uuid.uuid5(uuid.UUID(_guid(tenant_id, "tenant id")), "microsoft-graph")),
            app_id=GRAPH_APP_ID,
            display_name="Microsoft Graph",
            kind="resource",
        )
        self._sps[self.graph_sp.object_id] = self.graph_sp

    # --- time -------------------------------------------------------------------------

    def _stamps(self, over_graph: bool) -> tuple[float, float]:
        now = self.clock()
        return now, (now + self.propagation_delay if over_graph else 0.0)

    def visible(self, obj: Any) -> bool:
        """True once a created object has propagated (Graph-created objects lag by ``propagation_delay``)."""
        return bool(self.clock() >= getattr(obj, "visible_at", 0.0))

    # --- seeding ----------------------------------------------------------------------

    def _refuse_taken_app_id(self, app_id: str) -> None:
        # An Agent Identity's app id lives in the same namespace as the applications'.
        if app_id in self._apps or app_id in self._identities:
            raise EmulatorError(f"Application {app_id} already exists in tenant {self.tenant_id}.")

    def _refuse_taken_upn(self, upn: str) -> None:
        # Agent Users and people share one UPN namespace, as users do in Entra.
        if self.user_by_upn(upn, include_hidden=True) is not None or self.person_by_upn(upn) is not None:
            raise EmulatorError(f"A user with UPN {upn} already exists in tenant {self.tenant_id}.")

    def add_blueprint(
        self,
        display_name: str,
        certificates: Sequence[x509.Certificate | KeyCredential] = (),
        *,
        app_id: str | None = None,
        object_id: str | None = None,
        owners: Sequence[str] = (),
        service_principal: bool = True,
    ) -> Application:
        """Seed a Blueprint; unlike Graph, this also creates its Blueprint principal (``service_principal``)."""
        app = self._add_app("blueprint", display_name, certificates, app_id, object_id, owners)
        if service_principal:
            self.add_service_principal(app.app_id)
        return app

    def add_application(
        self,
        display_name: str,
        certificates: Sequence[x509.Certificate | KeyCredential] = (),
        *,
        app_id: str | None = None,
        object_id: str | None = None,
        owners: Sequence[str] = (),
        service_principal: bool = True,
        public_client: bool = False,
    ) -> Application:
        """A plain app registration (for example the provisioner that PATCHes Blueprints), with its SP."""
        app = self._add_app("application", display_name, certificates, app_id, object_id, owners)
        app.public_client = public_client
        if service_principal:
            self.add_service_principal(app.app_id)
        return app

    def _add_app(  # noqa: PLR0917 - private; both public callers pass every field
        self,
        kind: str,
        display_name: str,
        certificates: Sequence[x509.Certificate | KeyCredential],
        app_id: str | None,
        object_id: str | None,
        owners: Sequence[str],
        **extra: Any,
    ) -> Application:
        app = Application(
            app_id=_guid(app_id, "app id"),
            object_id=_guid(object_id, "object id"),
            display_name=display_name,
            kind=kind,
            key_credentials=_certs(certificates),
            owners=tuple(owners),
            **extra,
        )
        with self._lock:
            self._refuse_taken_app_id(app.app_id)
            if self._object(app.object_id) is not None:
                raise EmulatorError(f"Object {app.object_id} already exists in tenant {self.tenant_id}.")
            self._apps[app.app_id] = app
        return app

    def create_application(
        self,
        kind: str,
        display_name: str,
        *,
        owners: Sequence[str] = (),
        sponsors: Sequence[str] = (),
        created_by_app_id: str | None = None,
    ) -> Application:
        """Graph's create: no service principal, and the object propagates after ``propagation_delay``."""
        created, visible = self._stamps(True)
        return self._add_app(
            kind,
            display_name,
            (),
            None,
            None,
            owners,
            sponsors=tuple(sponsors),
            created_by_app_id=created_by_app_id,
            created_at=created,
            visible_at=visible,
        )

    def add_service_principal(
        self,
        app_id: str,
        *,
        owners: Sequence[str] = (),
        created_by_app_id: str | None = None,
        over_graph: bool = False,
        object_id: str | None = None,
    ) -> ServicePrincipal:
        created, visible = self._stamps(over_graph)
        with self._lock:
            app = self._apps.get(app_id)
            if app is None:
                raise EmulatorError(
                    f"Application {app_id} does not exist in tenant {self.tenant_id}.",
                    remedy="Create the application first.",
                    client_id=app_id,
                )
            if self.service_principal_by_app_id(app_id, include_hidden=True) is not None:
                raise EmulatorError(f"Application {app_id} already has a service principal.")
            sp = ServicePrincipal(
                object_id=_guid(object_id, "object id"),
                app_id=app_id,
                display_name=app.display_name,
                kind="blueprintPrincipal" if app.kind == "blueprint" else "application",
                owners=tuple(owners),
                created_by_app_id=created_by_app_id,
                created_at=created,
                visible_at=visible,
            )
            self._sps[sp.object_id] = sp
        return sp

    def add_owner(self, app_object_id: str, owner_app_id: str) -> None:
        with self._lock:
            app = self._require_object(app_object_id)
            if owner_app_id not in app.owners:
                app.owners = (*app.owners, owner_app_id)

    def set_key_credentials(
        self, app_object_id: str, credentials: Sequence[x509.Certificate | KeyCredential]
    ) -> tuple[KeyCredential, ...]:
        """Replace the app's keyCredentials (Graph PATCH semantics: the new list is the whole list)."""
        creds = _certs(credentials)
        with self._lock:
            self._require_object(app_object_id).key_credentials = creds
        return creds

    def add_agent_identity(
        self,
        blueprint_app_id: str,
        display_name: str,
        *,
        app_id: str | None = None,
        object_id: str | None = None,
        owners: Sequence[str] = (),
        sponsors: Sequence[str] = (),
        created_by_app_id: str | None = None,
        over_graph: bool = False,
    ) -> AgentIdentity:
        created, visible = self._stamps(over_graph)
        with self._lock:
            parent = self._apps.get(blueprint_app_id)
            if parent is None or parent.kind != "blueprint":
                raise EmulatorError(
                    f"Blueprint {blueprint_app_id} does not exist in tenant {self.tenant_id}.",
                    remedy="Create it with tenant.add_blueprint(...) first.",
                    client_id=blueprint_app_id,
                )
            oid = _guid(object_id, "object id")
            identity = AgentIdentity(
                # Over Graph an Agent Identity's app id is its object id (one service principal, no app).
                app_id=oid if over_graph and app_id is None else _guid(app_id, "app id"),
                object_id=oid,
                display_name=display_name,
                blueprint_app_id=blueprint_app_id,
                owners=tuple(owners),
                sponsors=tuple(sponsors),
                created_by_app_id=created_by_app_id,
                created_at=created,
                visible_at=visible,
            )
            self._refuse_taken_app_id(identity.app_id)
            self._identities[identity.app_id] = identity
        return identity

    def add_agent_user(
        self,
        agent_identity_app_id: str,
        upn: str,
        display_name: str,
        *,
        object_id: str | None = None,
        mail_nickname: str | None = None,
        account_enabled: bool = True,
        over_graph: bool = False,
    ) -> AgentUser:
        created, visible = self._stamps(over_graph)
        with self._lock:
            identity = self._identities.get(agent_identity_app_id)
            if identity is None:
                raise EmulatorError(
                    f"Agent Identity {agent_identity_app_id} does not exist in tenant {self.tenant_id}.",
                    remedy="Create it with tenant.add_agent_identity(...) first.",
                    client_id=agent_identity_app_id,
                )
            if "@" not in upn:
                raise EmulatorError(f"UPN {upn!r} has no '@domain'.", remedy="Use name@domain as the UPN.")
            self._refuse_taken_upn(upn)
            user = AgentUser(
                object_id=_guid(object_id, "object id"),
                upn=upn,
                display_name=display_name,
                identity_parent_id=identity.object_id,
                agent_identity_app_id=identity.app_id,
                mail_nickname=mail_nickname if mail_nickname is not None else upn.split("@", 1)[0],
                account_enabled=account_enabled,
                created_at=created,
                visible_at=visible,
            )
            self._users[user.object_id] = user
        return user

    def add_person(
        self,
        upn: str,
        display_name: str,
        *,
        roles: Sequence[str] = (),
        object_id: str | None = None,
        mail: str | None = None,
        user_type: str = "Member",
    ) -> DirectoryUser:
        """A human user; ``roles`` are directory role names (checked for delegated Graph writes)."""
        with self._lock:
            self._refuse_taken_upn(upn)
            person = DirectoryUser(_guid(object_id, "object id"), upn, display_name, tuple(roles), mail, user_type)
            self._people[person.object_id] = person
        return person

    def add_domain(self, name: str, *, is_default: bool = False, is_verified: bool = True) -> Domain:
        with self._lock:
            domain = Domain(name.lower(), is_default=is_default, is_verified=is_verified)
            others = [d for d in self._domains if d.name != domain.name]
            if is_default:
                others = [replace(d, is_default=False) for d in others]
            self._domains = [*others, domain]
        return domain

    # --- deletion (Graph DELETE) ------------------------------------------------------

    def delete_application(self, object_id: str) -> bool:
        """Delete an app; like Entra, its service principal and (for a Blueprint) Agent Identities go too."""
        with self._lock:
            app = self.application_by_object_id(object_id, include_hidden=True)
            if app is None:
                return False
            del self._apps[app.app_id]
            sp = self.service_principal_by_app_id(app.app_id, include_hidden=True)
            if sp is not None:
                self.delete_service_principal(sp.object_id)
            for identity in [i for i in self._identities.values() if i.blueprint_app_id == app.app_id]:
                self.delete_service_principal(identity.object_id)
            return True

    def delete_service_principal(self, object_id: str) -> bool:
        with self._lock:
            sp = self._sps.get(object_id)
            if sp is not None and sp.kind != "resource":
                del self._sps[object_id]
            else:
                identity = self.agent_identity_by_object_id(object_id)
                if identity is None:
                    return False
                del self._identities[identity.app_id]
            _drop(self._grants, lambda g: g.client_id == object_id)
            _drop(self._assignments, lambda a: a.principal_id == object_id)
            return True

    def delete_user(self, object_id: str) -> bool:
        with self._lock:
            if self._users.pop(object_id, None) is None:
                return False
            _drop(self._grants, lambda g: g.principal_id == object_id)
            return True

    # --- lookups ----------------------------------------------------------------------

    def _shown(self, obj: _T | None, include_hidden: bool) -> _T | None:
        return obj if obj is not None and (include_hidden or self.visible(obj)) else None

    def _first(self, items: Iterable[_T], match: Callable[[_T], bool], include_hidden: bool) -> _T | None:
        """The first of ``items`` that ``match`` picks, if it is shown; a hidden first match hides the lookup."""
        with self._lock:
            for item in items:
                if match(item):
                    return self._shown(item, include_hidden)
        return None

    def application(self, app_id: str, *, include_hidden: bool = True) -> Application | None:
        with self._lock:
            return self._shown(self._apps.get(app_id), include_hidden)

    def application_by_object_id(self, object_id: str, *, include_hidden: bool = True) -> Application | None:
        return self._first(self._apps.values(), lambda a: a.object_id == object_id, include_hidden)

    def _require_object(self, object_id: str) -> Application:
        app = self.application_by_object_id(object_id)
        if app is None:
            raise EmulatorError(
                f"Application object {object_id} does not exist in tenant {self.tenant_id}.",
                remedy="Pass the application's object id (not its app id).",
            )
        return app

    def _object(self, object_id: str) -> Any:
        with self._lock:
            if object_id in self._sps or object_id in self._users or object_id in self._people:
                return True
            if self.agent_identity_by_object_id(object_id) is not None:
                return True
            return self.application_by_object_id(object_id)

    def service_principal(self, object_id: str, *, include_hidden: bool = True) -> ServicePrincipal | None:
        with self._lock:
            return self._shown(self._sps.get(object_id), include_hidden)

    def service_principal_by_app_id(self, app_id: str, *, include_hidden: bool = True) -> ServicePrincipal | None:
        return self._first(self._sps.values(), lambda sp: sp.app_id == app_id, include_hidden)

    def agent_identity(self, app_id: str, *, include_hidden: bool = True) -> AgentIdentity | None:
        with self._lock:
            return self._shown(self._identities.get(app_id), include_hidden)

    def agent_identity_by_object_id(self, object_id: str, *, include_hidden: bool = True) -> AgentIdentity | None:
        return self._first(self._identities.values(), lambda i: i.object_id == object_id, include_hidden)

    def user(self, object_id: str, *, include_hidden: bool = True) -> AgentUser | None:
        with self._lock:
            return self._shown(self._users.get(object_id.lower()), include_hidden)

    def user_by_upn(self, upn: str, *, include_hidden: bool = True) -> AgentUser | None:
        return self._first(self._users.values(), lambda u: u.upn.lower() == upn.lower(), include_hidden)

    def person(self, object_id: str) -> DirectoryUser | None:
        with self._lock:
            return self._people.get(object_id.lower())

    def person_by_upn(self, upn: str) -> DirectoryUser | None:
        return self._first(self._people.values(), lambda p: p.upn.lower() == upn.lower(), include_hidden=True)

    applications: _Snapshot[Application] = _Snapshot("_apps")
    service_principals: _Snapshot[ServicePrincipal] = _Snapshot("_sps")
    agent_identities: _Snapshot[AgentIdentity] = _Snapshot("_identities")
    agent_users: _Snapshot[AgentUser] = _Snapshot("_users")
    people: _Snapshot[DirectoryUser] = _Snapshot("_people")
    domains: _Snapshot[Domain] = _Snapshot("_domains")

    @property
    def default_domain(self) -> str:
        with self._lock:
            return next(d.name for d in self._domains if d.is_default)

    # --- persistence (tenant/store.py) -----------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return dump(self)

    @classmethod
    def from_dict(cls, tenant_id: str, data: dict[str, Any]) -> Tenant:
        tenant = cls(tenant_id)
        load(tenant, data)
        return tenant
