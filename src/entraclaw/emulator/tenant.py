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
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from entraclaw.auth._b64 import b64url_encode
from entraclaw.errors import EmulatorError

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
    "DirectoryUser",
    "Domain",
    "KeyCredential",
    "PermissionGrant",
    "ServicePrincipal",
    "Tenant",
    "normalize_resource",
    "permission_id",
]

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
_RESOURCE_ALIASES = {GRAPH_APP_ID: GRAPH_RESOURCE, GRAPH_RESOURCE + "/": GRAPH_RESOURCE}


def normalize_resource(resource: str) -> str:
    return _RESOURCE_ALIASES.get(resource.lower(), resource.rstrip("/"))


_T = TypeVar("_T")


def _new_id() -> str:
    return str(uuid.uuid4())


def _iso(moment: _dt.datetime) -> str:
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> _dt.datetime:
    moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=_dt.timezone.utc)


@dataclass(frozen=True)
class KeyCredential:
    """One ``keyCredentials`` entry of type AsymmetricX509Cert, usage Verify, with its parsed key."""

    key_id: str
    certificate: x509.Certificate
    display_name: str
    start: _dt.datetime
    end: _dt.datetime
    custom_key_identifier: str
    der: bytes = field(repr=False)
    public_key: rsa.RSAPublicKey = field(repr=False)
    x5t_s256: str = ""
    x5t: str = ""

    @classmethod
    def from_certificate(
        cls,
        cert: x509.Certificate,
        *,
        key_id: str | None = None,
        display_name: str | None = None,
        start: _dt.datetime | None = None,
        end: _dt.datetime | None = None,
        custom_key_identifier: str | None = None,
    ) -> KeyCredential:
        public_key = cert.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError(f"certificate {cert.subject.rfc4514_string()} does not hold an RSA key")
        der = cert.public_bytes(serialization.Encoding.DER)
        sha1 = hashlib.sha1(der, usedforsecurity=False).digest()
        return cls(
            key_id=key_id or _new_id(),
            certificate=cert,
            display_name=display_name if display_name is not None else cert.subject.rfc4514_string(),
            start=start or cert.not_valid_before_utc,
            end=end or cert.not_valid_after_utc,
            # Graph stores the certificate's SHA-1 thumbprint here, base64-encoded.
            custom_key_identifier=custom_key_identifier or base64.b64encode(sha1).decode("ascii"),
            der=der,
            public_key=public_key,
            x5t_s256=b64url_encode(hashlib.sha256(der).digest()),
            x5t=b64url_encode(sha1),
        )

    @classmethod
    def from_graph(cls, item: Any) -> KeyCredential:
        """Parse one Graph ``keyCredential`` object; ValueError names the bad property."""
        if not isinstance(item, dict):
            raise ValueError("each keyCredentials item must be an object")
        if item.get("type") != "AsymmetricX509Cert":
            raise ValueError(f"keyCredential type {item.get('type')!r} is not supported; use 'AsymmetricX509Cert'")
        if item.get("usage") != "Verify":
            raise ValueError(f"keyCredential usage {item.get('usage')!r} is not supported; use 'Verify'")
        raw = item.get("key")
        if not isinstance(raw, str) or not raw:
            raise ValueError("keyCredential 'key' (base64 DER certificate) is required")
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode(raw, validate=True))
        except ValueError as exc:
            raise ValueError("keyCredential 'key' is not a base64 DER certificate") from exc
        key_id = item.get("keyId")
        if key_id is not None:
            try:
                key_id = str(uuid.UUID(str(key_id)))
            except ValueError as exc:
                raise ValueError(f"keyCredential keyId {key_id!r} is not a GUID") from exc
        try:
            start = _parse_iso(item["startDateTime"]) if item.get("startDateTime") else None
            end = _parse_iso(item["endDateTime"]) if item.get("endDateTime") else None
        except (TypeError, ValueError) as exc:
            raise ValueError("keyCredential startDateTime/endDateTime must be ISO 8601") from exc
        return cls.from_certificate(
            cert,
            key_id=key_id,
            display_name=item.get("displayName"),
            start=start,
            end=end,
            custom_key_identifier=item.get("customKeyIdentifier"),
        )

    def to_graph(self, *, include_key: bool) -> dict[str, Any]:
        return {
            "customKeyIdentifier": self.custom_key_identifier,
            "displayName": self.display_name,
            "endDateTime": _iso(self.end),
            "key": base64.b64encode(self.der).decode("ascii") if include_key else None,
            "keyId": self.key_id,
            "startDateTime": _iso(self.start),
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
        }

    def valid_at(self, now: float) -> bool:
        moment = _dt.datetime.fromtimestamp(now, _dt.timezone.utc)
        begins = max(self.start, self.certificate.not_valid_before_utc)
        ends = min(self.end, self.certificate.not_valid_after_utc)
        return begins <= moment <= ends


# The Microsoft Graph permissions the emulator knows by name. Real Graph publishes fixed GUIDs
# for them (permissions reference, https://learn.microsoft.com/graph/permissions-reference);
# the emulator derives its own stable ids from the names (uuid5), so clients must look ids up
# on the Graph service principal (appRoles / oauth2PermissionScopes), as portable code does anyway.
GRAPH_APP_ROLES: tuple[str, ...] = (
    "AgentIdentity.Create.All",
    "AgentIdentity.CreateAsManager",
    "AgentIdentity.Read.All",
    "AgentIdentity.ReadWrite.All",
    "AgentIdentityBlueprint.AddRemoveCreds.All",
    "AgentIdentityBlueprint.Create",
    "AgentIdentityBlueprint.Read.All",
    "AgentIdentityBlueprint.ReadWrite.All",
    "AgentIdentityBlueprintPrincipal.Create",
    "AgentIdentityBlueprintPrincipal.Read.All",
    "AgentIdentityBlueprintPrincipal.ReadWrite.All",
    "AgentIdUser.ReadWrite.All",
    "AgentIdUser.ReadWrite.IdentityParentedBy",
    "AppRoleAssignment.ReadWrite.All",
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Application.ReadWrite.OwnedBy",
    "DelegatedPermissionGrant.Read.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Domain.Read.All",
    "User.Read.All",
    "User.ReadWrite.All",
)
GRAPH_DELEGATED_SCOPES: tuple[str, ...] = (
    *(r for r in GRAPH_APP_ROLES if r not in ("AgentIdentity.CreateAsManager", "Application.ReadWrite.OwnedBy")),
    "Directory.AccessAsUser.All",
    "User.Read",
    "User.ReadBasic.All",
    # Common user-data scopes an Agent User is consented to.
    "Calendars.Read",
    "Calendars.ReadWrite",
    # The agent's tools (issue 15): each Teams / mail API's least-privileged delegated permission.
    "Chat.Create",
    "Chat.ReadBasic",
    "Chat.Read",
    "Chat.ReadWrite",
    "ChatMember.Read",
    "ChatMember.ReadWrite",
    "ChatMessage.Send",
    "Mail.ReadBasic",
    "Files.Read.All",
    "Mail.Read",
    "Mail.ReadWrite",
    "Mail.Send",
    "Sites.Read.All",
    "openid",
    "profile",
    "email",
    "offline_access",
)
_PERMISSION_NS = uuid.UUID("7f0c2b1e-3d4a-4c55-9e1b-6a7d8c9e0f12")


def permission_id(value: str, kind: str) -> str:
    """The emulator's stable id of a Graph app role (kind "role") or delegated scope (kind "scope")."""
    return str(uuid.uuid5(_PERMISSION_NS, f"{kind}:{value}"))


def _graph_id() -> str:
    # Graph's oauth2PermissionGrant and appRoleAssignment ids are opaque base64url strings.
    return base64.urlsafe_b64encode(secrets.token_bytes(33)).decode("ascii")


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
    mail: str | None = None
    user_type: str = "Member"  # "Member" | "Guest" (B2B guests: UPN with #EXT#)


@dataclass(frozen=True)
class PermissionGrant:
    """An oauth2PermissionGrant: delegated ``scope`` for client SP ``client_id`` on resource SP ``resource_id``."""

    id: str
    client_id: str
    consent_type: str  # "AllPrincipals" | "Principal"
    principal_id: str | None
    resource_id: str
    scope: str


@dataclass(frozen=True)
class AppRoleAssignment:
    id: str
    principal_id: str  # the client service principal's object id
    resource_id: str  # the resource service principal's object id
    app_role_id: str
    created_at: float = 0.0
    value: str = ""  # the role's name, so roles outside the published list still reach tokens


@dataclass(frozen=True)
class Domain:
    name: str
    is_default: bool = False
    is_initial: bool = False
    is_verified: bool = True


def _certs(certificates: Iterable[x509.Certificate | KeyCredential]) -> tuple[KeyCredential, ...]:
    out = []
    for item in certificates:
        if isinstance(item, KeyCredential):
            out.append(item)
            continue
        try:
            out.append(KeyCredential.from_certificate(item))
        except ValueError as exc:
            # from_certificate's ValueError is for the Graph handlers (a 400); callers of the
            # Python API get the typed error.
            raise EmulatorError(
                f"Cannot register {exc}.",
                remedy="Register a certificate for an RSA key (Entra key credentials here are RSA; "
                "entraclaw.auth.certgen.generate_rsa_key makes one).",
                subject=item.subject.rfc4514_string(),
            ) from None
    return tuple(out)


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


def _stamps_json(obj: Application | ServicePrincipal | AgentIdentity | AgentUser) -> dict[str, float]:
    return {"createdAt": obj.created_at, "visibleAt": obj.visible_at}


class _Stamps(TypedDict):
    created_at: float
    visible_at: float


def _stamps_from_json(item: dict[str, Any]) -> _Stamps:
    # State files written before propagation was modelled have neither: visible from the start.
    return {"created_at": float(item.get("createdAt", 0.0)), "visible_at": float(item.get("visibleAt", 0.0))}


#: Microsoft Graph Command Line Tools, a public client every real tenant knows; the emulator
#: registers it so device-code clients can use the same client id against both.
DEVICE_CODE_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"


class Tenant:
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

    # --- consent and app roles --------------------------------------------------------

    def client_sp_id(self, client_app_id: str) -> str | None:
        """The object id of the service principal that acts for ``client_app_id`` (app SP or Agent Identity)."""
        with self._lock:
            identity = self._identities.get(client_app_id)
            if identity is not None:
                return identity.object_id
            sp = self.service_principal_by_app_id(client_app_id, include_hidden=True)
            return sp.object_id if sp is not None else None

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

    def upsert_grant(
        self, client_id: str, consent_type: str, principal_id: str | None, resource_id: str, scopes: set[str]
    ) -> PermissionGrant:
        with self._lock:
            for grant in self._grants.values():
                if (grant.client_id, grant.consent_type, grant.principal_id, grant.resource_id) == (
                    client_id,
                    consent_type,
                    principal_id,
                    resource_id,
                ):
                    merged = replace(grant, scope=" ".join(sorted(set(grant.scope.split()) | scopes)))
                    self._grants[grant.id] = merged
                    return merged
            grant = PermissionGrant(
                _graph_id(), client_id, consent_type, principal_id, resource_id, " ".join(sorted(scopes))
            )
            self._grants[grant.id] = grant
            return grant

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

    def assign_app_role(self, principal_id: str, app_role_id: str, value: str) -> AppRoleAssignment:
        with self._lock:
            for existing in self._assignments.values():
                if (existing.principal_id, existing.app_role_id) == (principal_id, app_role_id):
                    return existing
            assignment = AppRoleAssignment(
                _graph_id(), principal_id, self.graph_sp.object_id, app_role_id, self.clock(), value
            )
            self._assignments[assignment.id] = assignment
            return assignment

    def delete_assignment(self, assignment_id: str) -> bool:
        with self._lock:
            return self._assignments.pop(assignment_id, None) is not None

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

    def _snapshot(self, items: Iterable[_T]) -> list[_T]:
        with self._lock:
            return list(items)

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

    def consented_scopes(self, client_app_id: str, resource: str, principal_id: str | None = None) -> frozenset[str]:
        """Scopes granted to the client for all principals, plus those granted for ``principal_id`` alone."""
        if normalize_resource(resource) != GRAPH_RESOURCE:
            return frozenset()
        with self._lock:
            client = self.client_sp_id(client_app_id)
            scopes: set[str] = set()
            for grant in self._grants.values():
                if grant.client_id != client or grant.resource_id != self.graph_sp.object_id:
                    continue
                if grant.consent_type == "AllPrincipals" or (
                    principal_id is not None and grant.principal_id == principal_id
                ):
                    scopes.update(grant.scope.split())
            return frozenset(scopes)

    def app_roles(self, client_app_id: str, resource: str) -> frozenset[str]:
        if normalize_resource(resource) != GRAPH_RESOURCE:
            return frozenset()
        with self._lock:
            client = self.client_sp_id(client_app_id)
            return frozenset(
                a.value
                for a in self._assignments.values()
                if a.principal_id == client and a.resource_id == self.graph_sp.object_id and a.value
            )

    @property
    def applications(self) -> list[Application]:
        return self._snapshot(self._apps.values())

    @property
    def service_principals(self) -> list[ServicePrincipal]:
        return self._snapshot(self._sps.values())

    @property
    def agent_identities(self) -> list[AgentIdentity]:
        return self._snapshot(self._identities.values())

    @property
    def agent_users(self) -> list[AgentUser]:
        return self._snapshot(self._users.values())

    @property
    def people(self) -> list[DirectoryUser]:
        return self._snapshot(self._people.values())

    @property
    def grants(self) -> list[PermissionGrant]:
        return self._snapshot(self._grants.values())

    @property
    def assignments(self) -> list[AppRoleAssignment]:
        return self._snapshot(self._assignments.values())

    @property
    def domains(self) -> list[Domain]:
        return self._snapshot(self._domains)

    @property
    def default_domain(self) -> str:
        with self._lock:
            return next(d.name for d in self._domains if d.is_default)

    # --- persistence ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "applications": [
                    {
                        "appId": a.app_id,
                        "id": a.object_id,
                        "displayName": a.display_name,
                        "kind": a.kind,
                        "owners": list(a.owners),
                        "sponsors": list(a.sponsors),
                        "createdByAppId": a.created_by_app_id,
                        **_stamps_json(a),
                        "publicClient": a.public_client,
                        "keyCredentials": [c.to_graph(include_key=True) for c in a.key_credentials],
                    }
                    for a in self._apps.values()
                ],
                "servicePrincipals": [
                    {
                        "id": p.object_id,
                        "appId": p.app_id,
                        "owners": list(p.owners),
                        "createdByAppId": p.created_by_app_id,
                        **_stamps_json(p),
                    }
                    for p in self._sps.values()
                    if p.kind != "resource"
                ],
                "graphServicePrincipalId": self.graph_sp.object_id,
                "agentIdentities": [
                    {
                        "appId": i.app_id,
                        "id": i.object_id,
                        "displayName": i.display_name,
                        "blueprintAppId": i.blueprint_app_id,
                        "owners": list(i.owners),
                        "sponsors": list(i.sponsors),
                        "createdByAppId": i.created_by_app_id,
                        **_stamps_json(i),
                    }
                    for i in self._identities.values()
                ],
                "agentUsers": [
                    {
                        "id": u.object_id,
                        "userPrincipalName": u.upn,
                        "displayName": u.display_name,
                        "agentIdentityAppId": u.agent_identity_app_id,
                        "mailNickname": u.mail_nickname,
                        "accountEnabled": u.account_enabled,
                        **_stamps_json(u),
                    }
                    for u in self._users.values()
                ],
                "people": [
                    {
                        "id": p.object_id,
                        "userPrincipalName": p.upn,
                        "displayName": p.display_name,
                        "roles": list(p.roles),
                        "mail": p.mail,
                        "userType": p.user_type,
                    }
                    for p in self._people.values()
                ],
                "oauth2PermissionGrants": [
                    {
                        "id": g.id,
                        "clientId": g.client_id,
                        "consentType": g.consent_type,
                        "principalId": g.principal_id,
                        "resourceId": g.resource_id,
                        "scope": g.scope,
                    }
                    for g in self._grants.values()
                ],
                "appRoleAssignments": [
                    {
                        "id": a.id,
                        "principalId": a.principal_id,
                        "resourceId": a.resource_id,
                        "appRoleId": a.app_role_id,
                        "createdAt": a.created_at,
                        "value": a.value,
                    }
                    for a in self._assignments.values()
                ],
                "domains": [
                    {"id": d.name, "isDefault": d.is_default, "isInitial": d.is_initial, "isVerified": d.is_verified}
                    for d in self._domains
                ],
            }

    @classmethod
    def from_dict(cls, tenant_id: str, data: dict[str, Any]) -> Tenant:
        tenant = cls(tenant_id)
        graph_sp_id = data.get("graphServicePrincipalId")
        if graph_sp_id and graph_sp_id != tenant.graph_sp.object_id:
            del tenant._sps[tenant.graph_sp.object_id]
            tenant.graph_sp = replace(tenant.graph_sp, object_id=graph_sp_id)
            tenant._sps[graph_sp_id] = tenant.graph_sp
        for a in data.get("applications", []):
            tenant._add_app(
                a.get("kind", "blueprint"),
                a["displayName"],
                [KeyCredential.from_graph(k) for k in a.get("keyCredentials", [])],
                a["appId"],
                a["id"],
                a.get("owners", []),
                sponsors=tuple(a.get("sponsors", [])),
                created_by_app_id=a.get("createdByAppId"),
                **_stamps_from_json(a),
                public_client=bool(a.get("publicClient", False)),
            )
        if "servicePrincipals" in data:
            for p in data["servicePrincipals"]:
                sp = tenant.add_service_principal(
                    p["appId"], owners=p.get("owners", []), created_by_app_id=p.get("createdByAppId"), object_id=p["id"]
                )
                tenant._sps[sp.object_id] = replace(sp, **_stamps_from_json(p))
        else:  # a state written before service principals were modelled: every app had one implicitly
            for app in tenant.applications:
                tenant.add_service_principal(app.app_id)
        for i in data.get("agentIdentities", []):
            identity = tenant.add_agent_identity(
                i["blueprintAppId"],
                i["displayName"],
                app_id=i["appId"],
                object_id=i["id"],
                owners=i.get("owners", []),
                sponsors=i.get("sponsors", []),
                created_by_app_id=i.get("createdByAppId"),
            )
            tenant._identities[identity.app_id] = replace(identity, **_stamps_from_json(i))
        for p in data.get("people", []):
            tenant.add_person(
                p["userPrincipalName"],
                p["displayName"],
                roles=p.get("roles", []),
                object_id=p["id"],
                mail=p.get("mail"),
                user_type=p.get("userType", "Member"),
            )
        for u in data.get("agentUsers", []):
            user = tenant.add_agent_user(
                u["agentIdentityAppId"],
                u["userPrincipalName"],
                u["displayName"],
                object_id=u["id"],
                mail_nickname=u.get("mailNickname"),
                account_enabled=bool(u.get("accountEnabled", True)),
            )
            tenant._users[user.object_id] = replace(user, **_stamps_from_json(u))
        for g in data.get("oauth2PermissionGrants", []):
            tenant.put_grant(
                PermissionGrant(
                    g["id"], g["clientId"], g["consentType"], g.get("principalId"), g["resourceId"], g["scope"]
                )
            )
        for a in data.get("appRoleAssignments", []):
            assignment = AppRoleAssignment(
                a["id"],
                a["principalId"],
                a["resourceId"],
                a["appRoleId"],
                float(a.get("createdAt", 0.0)),
                str(a.get("value", "")),
            )
            tenant._assignments[assignment.id] = assignment
        if data.get("domains"):
            tenant._domains = [
                Domain(d["id"], bool(d.get("isDefault")), bool(d.get("isInitial")), bool(d.get("isVerified", True)))
                for d in data["domains"]
            ]
        # Older state files: grants keyed by app id.
        for c in data.get("consents", []):
            tenant.grant_consent(c["clientAppId"], c["resource"], c["scopes"])
        for r in data.get("appRoles", []):
            tenant.grant_app_roles(r["clientAppId"], r["resource"], r["roles"])
        return tenant
