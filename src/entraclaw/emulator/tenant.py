"""The emulated tenant: Blueprints (with certificate keyCredentials), Agent Identities, Agent Users, grants.

Relations mirror Entra's Agent ID model:

- a **Blueprint** is an application with ``keyCredentials``; it signs Hop 1;
- an **Agent Identity** has the Blueprint as parent (``blueprint_app_id``);
- an **Agent User** has ``identityParentId`` = the Agent Identity's object id;
- **consent** (delegated scopes) lets an Agent Identity get user tokens for a
  resource; **app roles** (application permissions) let any app call Graph as
  itself (``Application.ReadWrite.OwnedBy`` / ``.All`` for keyCredentials).

Thread-safe: one lock guards every mutation; key credentials are immutable
tuples swapped in whole, so a verifier reading them never sees half a PATCH.
Certificates are parsed (public key, thumbprints) once, when registered.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from entraclaw.auth._b64 import b64url_encode
from entraclaw.errors import EmulatorError

__all__ = [
    "GRAPH_APP_ID",
    "GRAPH_RESOURCE",
    "AgentIdentity",
    "AgentUser",
    "Application",
    "KeyCredential",
    "Tenant",
    "normalize_resource",
]

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
_RESOURCE_ALIASES = {GRAPH_APP_ID: GRAPH_RESOURCE, GRAPH_RESOURCE + "/": GRAPH_RESOURCE}


def normalize_resource(resource: str) -> str:
    return _RESOURCE_ALIASES.get(resource.lower(), resource.rstrip("/"))


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


@dataclass
class Application:
    """An app registration. ``kind`` is "blueprint" (Agent Identity Blueprint) or "application"."""

    app_id: str
    object_id: str
    display_name: str
    kind: str = "blueprint"
    key_credentials: tuple[KeyCredential, ...] = ()
    owners: tuple[str, ...] = ()

    def find_key(self, *, x5t_s256: str | None, x5t: str | None) -> KeyCredential | None:
        for cred in self.key_credentials:
            if (x5t_s256 is not None and cred.x5t_s256 == x5t_s256) or (
                x5t_s256 is None and x5t is not None and cred.x5t == x5t
            ):
                return cred
        return None


# Kept for the agreed API name: a Blueprint is an Application of kind "blueprint".
Blueprint = Application


@dataclass(frozen=True)
class AgentIdentity:
    app_id: str
    object_id: str
    display_name: str
    blueprint_app_id: str


@dataclass(frozen=True)
class AgentUser:
    object_id: str
    upn: str
    display_name: str
    identity_parent_id: str  # the Agent Identity's object id, as Graph's identityParentId
    agent_identity_app_id: str


def _certs(certificates: Iterable[x509.Certificate | KeyCredential]) -> tuple[KeyCredential, ...]:
    out = []
    for item in certificates:
        out.append(item if isinstance(item, KeyCredential) else KeyCredential.from_certificate(item))
    return tuple(out)


def _guid(value: str | None, what: str) -> str:
    if value is None:
        return _new_id()
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise EmulatorError(f"{what} {value!r} is not a GUID.", remedy="Pass a GUID or leave it out.") from exc


class Tenant:
    """The directory. All methods are safe to call from any thread."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._lock = threading.RLock()
        self._apps: dict[str, Application] = {}  # by app id
        self._identities: dict[str, AgentIdentity] = {}  # by app id
        self._users: dict[str, AgentUser] = {}  # by object id
        self._consents: dict[tuple[str, str], frozenset[str]] = {}
        self._app_roles: dict[tuple[str, str], frozenset[str]] = {}

    # --- seeding ----------------------------------------------------------------------

    def add_blueprint(
        self,
        display_name: str,
        certificates: Sequence[x509.Certificate | KeyCredential] = (),
        *,
        app_id: str | None = None,
        object_id: str | None = None,
        owners: Sequence[str] = (),
    ) -> Application:
        return self._add_app("blueprint", display_name, certificates, app_id, object_id, owners)

    def add_application(
        self,
        display_name: str,
        certificates: Sequence[x509.Certificate | KeyCredential] = (),
        *,
        app_id: str | None = None,
        object_id: str | None = None,
        owners: Sequence[str] = (),
    ) -> Application:
        """A plain app registration (for example the provisioner that PATCHes Blueprints)."""
        return self._add_app("application", display_name, certificates, app_id, object_id, owners)

    def _add_app(  # noqa: PLR0917 - private; both public callers pass every field
        self,
        kind: str,
        display_name: str,
        certificates: Sequence[x509.Certificate | KeyCredential],
        app_id: str | None,
        object_id: str | None,
        owners: Sequence[str],
    ) -> Application:
        app = Application(
            app_id=_guid(app_id, "app id"),
            object_id=_guid(object_id, "object id"),
            display_name=display_name,
            kind=kind,
            key_credentials=_certs(certificates),
            owners=tuple(owners),
        )
        with self._lock:
            if app.app_id in self._apps or app.app_id in self._identities:
                raise EmulatorError(f"Application {app.app_id} already exists in tenant {self.tenant_id}.")
            self._apps[app.app_id] = app
        return app

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
        self, blueprint_app_id: str, display_name: str, *, app_id: str | None = None, object_id: str | None = None
    ) -> AgentIdentity:
        with self._lock:
            parent = self._apps.get(blueprint_app_id)
            if parent is None or parent.kind != "blueprint":
                raise EmulatorError(
                    f"Blueprint {blueprint_app_id} does not exist in tenant {self.tenant_id}.",
                    remedy="Create it with tenant.add_blueprint(...) first.",
                    client_id=blueprint_app_id,
                )
            identity = AgentIdentity(
                app_id=_guid(app_id, "app id"),
                object_id=_guid(object_id, "object id"),
                display_name=display_name,
                blueprint_app_id=blueprint_app_id,
            )
            if identity.app_id in self._apps or identity.app_id in self._identities:
                raise EmulatorError(f"Application {identity.app_id} already exists in tenant {self.tenant_id}.")
            self._identities[identity.app_id] = identity
        return identity

    def add_agent_user(
        self, agent_identity_app_id: str, upn: str, display_name: str, *, object_id: str | None = None
    ) -> AgentUser:
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
            if self.user_by_upn(upn) is not None:
                raise EmulatorError(f"A user with UPN {upn} already exists in tenant {self.tenant_id}.")
            user = AgentUser(
                object_id=_guid(object_id, "object id"),
                upn=upn,
                display_name=display_name,
                identity_parent_id=identity.object_id,
                agent_identity_app_id=identity.app_id,
            )
            self._users[user.object_id] = user
        return user

    def grant_consent(self, client_app_id: str, resource: str = GRAPH_RESOURCE, scopes: Iterable[str] = ()) -> None:
        """Delegated permission grant (oauth2PermissionGrant) for ``client_app_id`` on ``resource``."""
        key = (client_app_id, normalize_resource(resource))
        with self._lock:
            self._consents[key] = self._consents.get(key, frozenset()) | frozenset(scopes)

    def revoke_consent(self, client_app_id: str, resource: str = GRAPH_RESOURCE) -> None:
        with self._lock:
            self._consents.pop((client_app_id, normalize_resource(resource)), None)

    def grant_app_roles(self, client_app_id: str, resource: str = GRAPH_RESOURCE, roles: Iterable[str] = ()) -> None:
        """Application permission (appRoleAssignment) for ``client_app_id`` on ``resource``."""
        key = (client_app_id, normalize_resource(resource))
        with self._lock:
            self._app_roles[key] = self._app_roles.get(key, frozenset()) | frozenset(roles)

    # --- lookups ----------------------------------------------------------------------

    def application(self, app_id: str) -> Application | None:
        with self._lock:
            return self._apps.get(app_id)

    def application_by_object_id(self, object_id: str) -> Application | None:
        with self._lock:
            for app in self._apps.values():
                if app.object_id == object_id:
                    return app
        return None

    def _require_object(self, object_id: str) -> Application:
        app = self.application_by_object_id(object_id)
        if app is None:
            raise EmulatorError(
                f"Application object {object_id} does not exist in tenant {self.tenant_id}.",
                remedy="Pass the application's object id (not its app id).",
            )
        return app

    def agent_identity(self, app_id: str) -> AgentIdentity | None:
        with self._lock:
            return self._identities.get(app_id)

    def user(self, object_id: str) -> AgentUser | None:
        with self._lock:
            return self._users.get(object_id.lower())

    def user_by_upn(self, upn: str) -> AgentUser | None:
        with self._lock:
            for user in self._users.values():
                if user.upn.lower() == upn.lower():
                    return user
        return None

    def consented_scopes(self, client_app_id: str, resource: str) -> frozenset[str]:
        with self._lock:
            return self._consents.get((client_app_id, normalize_resource(resource)), frozenset())

    def app_roles(self, client_app_id: str, resource: str) -> frozenset[str]:
        with self._lock:
            return self._app_roles.get((client_app_id, normalize_resource(resource)), frozenset())

    @property
    def applications(self) -> list[Application]:
        with self._lock:
            return list(self._apps.values())

    @property
    def agent_identities(self) -> list[AgentIdentity]:
        with self._lock:
            return list(self._identities.values())

    @property
    def agent_users(self) -> list[AgentUser]:
        with self._lock:
            return list(self._users.values())

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
                        "keyCredentials": [c.to_graph(include_key=True) for c in a.key_credentials],
                    }
                    for a in self._apps.values()
                ],
                "agentIdentities": [
                    {
                        "appId": i.app_id,
                        "id": i.object_id,
                        "displayName": i.display_name,
                        "blueprintAppId": i.blueprint_app_id,
                    }
                    for i in self._identities.values()
                ],
                "agentUsers": [
                    {
                        "id": u.object_id,
                        "userPrincipalName": u.upn,
                        "displayName": u.display_name,
                        "agentIdentityAppId": u.agent_identity_app_id,
                    }
                    for u in self._users.values()
                ],
                "consents": [
                    {"clientAppId": c, "resource": r, "scopes": sorted(s)} for (c, r), s in self._consents.items()
                ],
                "appRoles": [
                    {"clientAppId": c, "resource": r, "roles": sorted(s)} for (c, r), s in self._app_roles.items()
                ],
            }

    @classmethod
    def from_dict(cls, tenant_id: str, data: dict[str, Any]) -> Tenant:
        tenant = cls(tenant_id)
        for a in data.get("applications", []):
            app = tenant._add_app(
                a.get("kind", "blueprint"),
                a["displayName"],
                [KeyCredential.from_graph(k) for k in a.get("keyCredentials", [])],
                a["appId"],
                a["id"],
                a.get("owners", []),
            )
            del app
        for i in data.get("agentIdentities", []):
            tenant.add_agent_identity(i["blueprintAppId"], i["displayName"], app_id=i["appId"], object_id=i["id"])
        for u in data.get("agentUsers", []):
            tenant.add_agent_user(u["agentIdentityAppId"], u["userPrincipalName"], u["displayName"], object_id=u["id"])
        for c in data.get("consents", []):
            tenant.grant_consent(c["clientAppId"], c["resource"], c["scopes"])
        for r in data.get("appRoles", []):
            tenant.grant_app_roles(r["clientAppId"], r["resource"], r["roles"])
        return tenant
