"""The tenant's state-file form: :func:`dump` to JSON, :func:`load` back (state files of older versions too)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypedDict

from entraclaw.emulator.tenant.credentials import KeyCredential
from entraclaw.emulator.tenant.objects import AgentIdentity, AgentUser, Application, Domain, ServicePrincipal
from entraclaw.emulator.tenant.permissions import AppRoleAssignment, PermissionGrant

if TYPE_CHECKING:
    from entraclaw.emulator.tenant.directory import Tenant

__all__ = ["dump", "load"]


def _stamps_json(obj: Application | ServicePrincipal | AgentIdentity | AgentUser) -> dict[str, float]:
    return {"createdAt": obj.created_at, "visibleAt": obj.visible_at}


class _Stamps(TypedDict):
    created_at: float
    visible_at: float


def _stamps_from_json(item: dict[str, Any]) -> _Stamps:
    # State files written before propagation was modelled have neither: visible from the start.
    return {"created_at": float(item.get("createdAt", 0.0)), "visible_at": float(item.get("visibleAt", 0.0))}


def dump(tenant: Tenant) -> dict[str, Any]:
    """The tenant as the JSON the state file holds (the caller holds the tenant's lock)."""
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
            for a in tenant._apps.values()
        ],
        "servicePrincipals": [
            {
                "id": p.object_id,
                "appId": p.app_id,
                "owners": list(p.owners),
                "createdByAppId": p.created_by_app_id,
                **_stamps_json(p),
            }
            for p in tenant._sps.values()
            if p.kind != "resource"
        ],
        "graphServicePrincipalId": tenant.graph_sp.object_id,
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
            for i in tenant._identities.values()
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
            for u in tenant._users.values()
        ],
        "people": [
            {
                "id": p.object_id,
                "userPrincipalName": p.upn,
                "displayName": p.display_name,
                "roles": list(p.roles),
            }
            for p in tenant._people.values()
        ],
        "oauth2PermissionGrants": [
            {
                "id": g.id,
                "clientId": g.client_id,
                "consentType": g.consent_type,
                "principalId": g.principal_id,
                "resourceId": g.resource_id,
                "scope": g.scope,
                "effectiveAt": g.effective_at,
                "previousScope": g.previous_scope,
            }
            for g in tenant._grants.values()
        ],
        "appRoleAssignments": [
            {
                "id": a.id,
                "principalId": a.principal_id,
                "resourceId": a.resource_id,
                "appRoleId": a.app_role_id,
                "createdAt": a.created_at,
                "value": a.value,
                "effectiveAt": a.effective_at,
            }
            for a in tenant._assignments.values()
        ],
        "domains": [
            {"id": d.name, "isDefault": d.is_default, "isInitial": d.is_initial, "isVerified": d.is_verified}
            for d in tenant._domains
        ],
    }


def load(tenant: Tenant, data: dict[str, Any]) -> None:
    """Fill a new, empty ``tenant`` from :func:`dump`'s JSON (older state files included)."""
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
        tenant.add_person(p["userPrincipalName"], p["displayName"], roles=p.get("roles", []), object_id=p["id"])
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
                g["id"],
                g["clientId"],
                g["consentType"],
                g.get("principalId"),
                g["resourceId"],
                g["scope"],
                float(g.get("effectiveAt", 0.0)),
                str(g.get("previousScope", "")),
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
            float(a.get("effectiveAt", 0.0)),
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
