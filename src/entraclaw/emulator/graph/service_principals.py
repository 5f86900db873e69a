"""``/servicePrincipals``: Blueprint principals, Agent Identities, the Graph resource principal, app roles.

Endpoints and the doc page each follows:

- ``POST /servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal`` (``appId``) —
  https://learn.microsoft.com/graph/api/agentidentityblueprintprincipal-post?view=graph-rest-1.0 :
  201; AgentIdentityBlueprintPrincipal.Create / .ReadWrite.All (app roles and scp); a non-Blueprint
  appId is refused with AgentBlueprintPrincipal_requireAgentBlueprint
  (https://learn.microsoft.com/entra/agent-id/identity-platform/error-codes).
- ``POST /servicePrincipals/microsoft.graph.agentIdentity`` (``displayName``,
  ``agentIdentityBlueprintId``, ``sponsors@odata.bind``) —
  https://learn.microsoft.com/graph/api/agentidentity-post?view=graph-rest-1.0 : 201;
  app roles AgentIdentity.CreateAsManager (a Blueprint creating its own) / AgentIdentity.Create.All,
  scp AgentIdentity.Create.All; Agent ID error codes AgentIdentity_IncompatibleParentType,
  AgentIdentity_AgentBlueprintPrincipalDoesNotExist, Error_AgentIdentitiesCreatingAgentIdentitiesNotAllowed,
  Error_AgentIdentitySelfCreateRequired, Error_AgentBlueprintCannotCreateAssociatedIdentity.
  "Owners can create agent identities" of a Blueprint they own (agentidentityblueprint-get).
- ``POST /servicePrincipals`` (``appId`` of a plain app) —
  https://learn.microsoft.com/graph/api/serviceprincipal-post-serviceprincipals : Application.ReadWrite.All.
- ``GET /servicePrincipals`` (+ ``$filter`` appId / displayName / id / servicePrincipalType eq,
  ``$top``), ``GET /servicePrincipals/microsoft.graph.agentIdentity`` and
  ``.../microsoft.graph.agentIdentityBlueprintPrincipal``, ``GET|DELETE /servicePrincipals/{id}`` and
  ``/servicePrincipals(appId='{appId}')`` — serviceprincipal-list / -get / -delete, agentidentity-list /
  -get / -delete: Application.Read.All, Application.ReadWrite.All, Directory.Read.All,
  AgentIdentity.Read.All / .ReadWrite.All; delete AgentIdentity.ReadWrite.All (Agent Identities),
  AgentIdentityBlueprintPrincipal.ReadWrite.All (Blueprint principals), Application.ReadWrite.All.
- ``GET|POST /servicePrincipals/{id}/appRoleAssignments``, ``DELETE .../appRoleAssignments/{id}``,
  and ``GET|POST /servicePrincipals/{resource id}/appRoleAssignedTo`` —
  https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignments (201;
  AppRoleAssignment.ReadWrite.All), serviceprincipal-list-approleassignments
  (Application.Read.All, AppRoleAssignment.ReadWrite.All, Directory.Read.All),
  serviceprincipal-delete-approleassignments (204).

The Microsoft Graph principal (appId 00000003-0000-0000-c000-000000000000) lists the app roles
and delegated scopes the emulator knows, with Graph's published ids where checked (tenant/permissions.py,
data/graph_permissions.json).
Docs silent: the status of a duplicate Blueprint principal (400
Request_MultipleObjectsWithSameKeyValue here), of an unknown Blueprint app id (404 here), the
status of the Agent ID error codes (403 for the caller-type errors, 400 for the others here),
and whether an Agent Identity's appId equals its id (the emulator makes them equal).
"""

from __future__ import annotations

from typing import Any

from entraclaw.emulator.graph._core import (
    GUID_RE,
    Context,
    GraphError,
    GraphResponse,
    addressed,
    agent_id_write_guard,
    bad_request,
    bind_sponsors,
    created,
    denied,
    entity,
    matches,
    method_not_allowed,
    no_segment,
    not_found,
    page,
    query_filter,
    require,
    require_display_name,
    require_graph_resource,
    require_principal,
    split_key,
    stamp,
)
from entraclaw.emulator.graph.propagation import (
    BLUEPRINT_PRINCIPAL_MISSING,
    refuse_if_propagating,
    still_propagating,
)
from entraclaw.emulator.tenant import (
    GRAPH_APP_ROLES,
    GRAPH_DELEGATED_SCOPES,
    AgentIdentity,
    AppRoleAssignment,
    ServicePrincipal,
    permission_id,
)

__all__ = ["handle"]

BLUEPRINT_PRINCIPAL = "microsoft.graph.agentIdentityBlueprintPrincipal"
AGENT_IDENTITY = "microsoft.graph.agentIdentity"
_READ = (
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "AgentIdentity.Read.All",
    "AgentIdentity.ReadWrite.All",
    "AgentIdentityBlueprintPrincipal.Read.All",
    "AgentIdentityBlueprintPrincipal.ReadWrite.All",
)
_READ_ASSIGNMENTS = (
    "Application.Read.All",
    "AppRoleAssignment.ReadWrite.All",
    "Directory.Read.All",
    "Application.ReadWrite.All",
)


def sp_json(ctx: Context, sp: ServicePrincipal) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": sp.object_id,
        "accountEnabled": True,
        "appId": sp.app_id,
        "appRoleAssignmentRequired": False,
        "createdByAppId": sp.created_by_app_id,
        "createdDateTime": stamp(sp.created_at),
        "displayName": sp.display_name,
        "servicePrincipalNames": [sp.app_id],
        "signInAudience": "AzureADMyOrg",
        "servicePrincipalType": "Application",
        "tags": [],
        "appRoles": [],
        "oauth2PermissionScopes": [],
    }
    if sp.kind == "blueprintPrincipal":
        body = {"@odata.type": f"#{BLUEPRINT_PRINCIPAL}", **body}
    app = ctx.tenant.application(sp.app_id)
    if app is not None:
        body["displayName"] = app.display_name
    if sp.kind == "resource":
        body["appRoles"] = [
            {
                "allowedMemberTypes": ["Application"],
                "description": f"Allows the app to use {role} without a signed-in user.",
                "displayName": role,
                "id": permission_id(role, "role"),
                "isEnabled": True,
                "origin": "Application",
                "value": role,
            }
            for role in GRAPH_APP_ROLES
        ]
        body["oauth2PermissionScopes"] = [
            {
                "adminConsentDescription": f"Allows the app to use {scope} on behalf of the signed-in user.",
                "adminConsentDisplayName": scope,
                "id": permission_id(scope, "scope"),
                "isEnabled": True,
                "type": "Admin",
                "value": scope,
            }
            for scope in GRAPH_DELEGATED_SCOPES
        ]
    return body


def identity_json(ctx: Context, identity: AgentIdentity) -> dict[str, Any]:
    return {
        "@odata.type": f"#{AGENT_IDENTITY}",
        "id": identity.object_id,
        "appId": identity.app_id,
        "accountEnabled": True,
        "createdByAppId": identity.created_by_app_id,
        "createdDateTime": stamp(identity.created_at),
        "displayName": identity.display_name,
        "servicePrincipalType": "ServiceIdentity",
        "tags": [],
        "agentIdentityBlueprintId": identity.blueprint_app_id,
    }


def _flat(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": body["id"],
        "appId": body.get("appId"),
        "displayName": body.get("displayName"),
        "servicePrincipalType": body.get("servicePrincipalType"),
        "agentIdentityBlueprintId": body.get("agentIdentityBlueprintId"),
    }


def handle(ctx: Context) -> GraphResponse:
    seg = ctx.req.segments
    method = ctx.req.method
    keyed = split_key(seg[0], "servicePrincipals")
    if keyed is None and seg[0] != "servicePrincipals":
        raise no_segment(seg[0])
    if keyed is None and len(seg) <= 2 and (len(seg) == 1 or seg[1] in (BLUEPRINT_PRINCIPAL, AGENT_IDENTITY)):
        cast = seg[1] if len(seg) == 2 else None
        if method == "GET":
            return _list(ctx, cast)
        if method == "POST":
            cast = cast or _cast_in_body(ctx)
            if cast == AGENT_IDENTITY:
                return _create_identity(ctx)
            return _create_principal(ctx, typed=cast == BLUEPRINT_PRINCIPAL)
        raise _method(method)
    tenant = ctx.tenant
    target: Any
    key, target, rest = addressed(
        ctx,
        keyed,
        lambda app_id, hidden: (
            tenant.service_principal_by_app_id(app_id, include_hidden=hidden)
            or tenant.agent_identity(app_id, include_hidden=hidden)
        ),
        lambda oid, hidden: (
            tenant.service_principal(oid, include_hidden=hidden)
            or tenant.agent_identity_by_object_id(oid, include_hidden=hidden)
        ),
    )
    if rest and rest[0] in (BLUEPRINT_PRINCIPAL, AGENT_IDENTITY):
        wanted_identity = rest[0] == AGENT_IDENTITY
        if wanted_identity != isinstance(target, AgentIdentity) or (
            not wanted_identity and target.kind != "blueprintPrincipal"
        ):
            raise not_found(key)
        rest = rest[1:]
    if not rest:
        if method == "GET":
            require(
                ctx.caller,
                app=_READ,
                delegated=(*_READ, "User.Read"),
                owners=target.owners,
                owned_app=("Application.ReadWrite.OwnedBy", "AgentIdentityBlueprint.Create"),
            )
            body = identity_json(ctx, target) if isinstance(target, AgentIdentity) else sp_json(ctx, target)
            return GraphResponse(200, entity(ctx, "servicePrincipals", body))
        if method == "DELETE":
            return _delete(ctx, target)
        raise _method(method)
    oid = target.object_id
    if method == "POST":
        refuse_if_propagating(ctx, target, key)
    if rest[0] == "appRoleAssignments":
        if len(rest) == 1 and method == "GET":
            return _list_assignments(ctx, lambda a: a.principal_id == oid)
        if len(rest) == 1 and method == "POST":
            return _assign(ctx, principal=oid, resource=None)
        if len(rest) == 2 and method == "DELETE":
            return _unassign(ctx, rest[1], lambda a: a.principal_id == oid)
    if rest[0] == "appRoleAssignedTo":
        if len(rest) == 1 and method == "GET":
            return _list_assignments(ctx, lambda a: a.resource_id == oid)
        if len(rest) == 1 and method == "POST":
            return _assign(ctx, principal=None, resource=oid)
        if len(rest) == 2 and method == "DELETE":
            return _unassign(ctx, rest[1], lambda a: a.resource_id == oid)
    raise no_segment(rest[0])


def _cast_in_body(ctx: Context) -> str | None:
    """The derived type a plain ``POST /servicePrincipals`` names in ``@odata.type``.

    Graph documents creating an Agent Identity by ``POST /servicePrincipals`` with
    ``"@odata.type": "#microsoft.graph.agentIdentity"`` (agentidentity-post, "HTTP request"), and
    upstream did so with ``"Microsoft.Graph.AgentIdentity"`` (evidence #18, CEA:293-302): the
    type name is matched without case and with or without its '#'.
    """
    odata_type = ctx.req.json().get("@odata.type")
    if not isinstance(odata_type, str):
        return None
    named = odata_type.lstrip("#").lower()
    for cast in (AGENT_IDENTITY, BLUEPRINT_PRINCIPAL):
        if named == cast.lower():
            return cast
    if named != "microsoft.graph.serviceprincipal":
        raise bad_request(f"The @odata.type '{odata_type}' cannot be created at /servicePrincipals.")
    return None


def _method(method: str) -> GraphError:
    return method_not_allowed(method, "servicePrincipals")


def _list(ctx: Context, cast: str | None) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/serviceprincipal-list
    # https://learn.microsoft.com/graph/api/agentidentity-list
    # https://learn.microsoft.com/graph/api/agentidentityblueprintprincipal-list
    require(ctx.caller, app=(*_READ, "Application.ReadWrite.OwnedBy", "AgentIdentityBlueprint.Create"), delegated=_READ)
    # Graph does not support $filter on agentIdentityBlueprintId (upstream filters client-side,
    # evidence #21, CEA:218-219): it is refused with Request_UnsupportedQuery like any other.
    clauses = query_filter(ctx, "servicePrincipal", "appId", "displayName", "id", "servicePrincipalType")
    items: list[dict[str, Any]] = []
    if cast != AGENT_IDENTITY:
        for sp in ctx.tenant.service_principals:
            if not ctx.tenant.visible(sp) or (cast == BLUEPRINT_PRINCIPAL and sp.kind != "blueprintPrincipal"):
                continue
            body = sp_json(ctx, sp)
            if matches(_flat(body), clauses):
                items.append(body)
    if cast in (None, AGENT_IDENTITY):
        for identity in ctx.tenant.agent_identities:
            if not ctx.tenant.visible(identity):
                continue
            body = identity_json(ctx, identity)
            if matches(_flat(body), clauses):
                items.append(body)
    suffix = f"/{cast}" if cast else ""
    return page(ctx, items, f"servicePrincipals{suffix}")


def _create_principal(ctx: Context, *, typed: bool) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/agentidentityblueprintprincipal-post?view=graph-rest-1.0
    # https://learn.microsoft.com/graph/api/serviceprincipal-post-serviceprincipals
    payload = ctx.req.json()
    app_id = str(payload.get("appId", "")).lower()
    if not GUID_RE.match(app_id):
        raise bad_request("Property 'appId' is required and must be a GUID.")
    app = ctx.tenant.application(app_id)
    if app is None:
        raise not_found(app_id)  # docs silent on the status
    refuse_if_propagating(ctx, app, app_id)
    caller = ctx.caller
    if typed and app.kind != "blueprint":
        raise bad_request(
            "Agent identity blueprint principals can only be created for Agent Blueprints.",
            "AgentBlueprintPrincipal_requireAgentBlueprint",
        )
    if app.kind == "blueprint":
        agent_id_write_guard(caller)
        require(
            caller,
            app=("AgentIdentityBlueprintPrincipal.Create", "AgentIdentityBlueprintPrincipal.ReadWrite.All"),
            delegated=("AgentIdentityBlueprintPrincipal.Create", "AgentIdentityBlueprintPrincipal.ReadWrite.All"),
            owners=app.owners,
            owned_app=("AgentIdentityBlueprint.Create",),
            owned_delegated=("AgentIdentityBlueprint.Create",),
        )
    else:
        require(
            caller,
            app=("Application.ReadWrite.All",),
            delegated=("Application.ReadWrite.All",),
            owners=app.owners,
            owned_app=("Application.ReadWrite.OwnedBy",),
        )
    if ctx.tenant.service_principal_by_app_id(app_id) is not None:
        raise bad_request(
            f"The service principal of application {app_id} already exists.", "Request_MultipleObjectsWithSameKeyValue"
        )
    sp = ctx.tenant.add_service_principal(
        app_id, owners=[caller.creator], created_by_app_id=caller.app_id, over_graph=True
    )
    cast = f"/{BLUEPRINT_PRINCIPAL}" if sp.kind == "blueprintPrincipal" else ""
    return created(ctx, "servicePrincipals", sp.object_id, entity(ctx, f"servicePrincipals{cast}", sp_json(ctx, sp)))


def _create_identity(ctx: Context) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/agentidentity-post?view=graph-rest-1.0
    # errors: https://learn.microsoft.com/entra/agent-id/identity-platform/error-codes
    payload = ctx.req.json()
    caller = ctx.caller
    agent_id_write_guard(caller)
    if ctx.tenant.agent_identity(caller.app_id) is not None:
        raise GraphError(
            403,
            "Error_AgentIdentitiesCreatingAgentIdentitiesNotAllowed",
            "Agent identities can't create other agent identities.",
        )
    parent = str(payload.get("agentIdentityBlueprintId") or payload.get("agentIdentityBlueprintAppId") or "").lower()
    name = require_display_name(payload)
    if not GUID_RE.match(parent):
        raise bad_request("Property 'agentIdentityBlueprintId' is required: the appId of the agent identity blueprint.")
    blueprint = ctx.tenant.application(parent)
    if blueprint is None:
        raise not_found(parent)
    refuse_if_propagating(ctx, blueprint, parent)
    if blueprint.kind != "blueprint":
        raise bad_request(
            f"The specified Application ({parent}) isn't an Agent Blueprint.", "AgentIdentity_IncompatibleParentType"
        )
    principal = ctx.tenant.service_principal_by_app_id(parent)
    if principal is None or still_propagating(ctx, principal):
        # The same answer while a new Blueprint principal propagates (hard-won-learnings.md, upstream).
        raise bad_request(
            f"The required agent identity blueprint principal doesn't exist for blueprint {parent}.",
            BLUEPRINT_PRINCIPAL_MISSING,
        )
    caller_app = ctx.tenant.application(caller.app_id)
    if not caller.delegated and caller_app is not None and caller_app.kind == "blueprint" and caller.app_id != parent:
        raise GraphError(
            403,
            "Error_AgentBlueprintCannotCreateAssociatedIdentity",
            f"Agent identity blueprint {caller.app_id} can't create agent identities of blueprint {parent}.",
        )
    if (
        not caller.delegated
        and caller.has("AgentIdentity.CreateAsManager")
        and not caller.has("AgentIdentity.Create.All")
    ):
        if caller.app_id != parent:
            raise GraphError(
                403,
                "Error_AgentIdentitySelfCreateRequired",
                "Applications can only create agent identities under themselves: agentIdentityBlueprintId "
                f"{parent} is not the caller's appId {caller.app_id}.",
            )
    else:
        principal = ctx.tenant.service_principal_by_app_id(parent)
        owners = {*blueprint.owners, *(principal.owners if principal else ())}
        require(
            caller,
            app=("AgentIdentity.Create.All",),
            delegated=("AgentIdentity.Create.All",),
            owners=owners,
            owned_app=("AgentIdentityBlueprint.Create", "AgentIdentityBlueprintPrincipal.Create"),
            owned_delegated=("AgentIdentityBlueprint.Create", "AgentIdentityBlueprintPrincipal.Create"),
        )
    sponsors = bind_sponsors(ctx, payload, required_by="An agent identity")
    identity = ctx.tenant.add_agent_identity(
        parent,
        name,
        owners=[caller.creator],
        sponsors=sponsors,
        created_by_app_id=caller.app_id,
        over_graph=True,
    )
    body = entity(ctx, "servicePrincipals", identity_json(ctx, identity))
    return created(ctx, "servicePrincipals", identity.object_id, body)


def _delete(ctx: Context, target: ServicePrincipal | AgentIdentity) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/serviceprincipal-delete
    # https://learn.microsoft.com/graph/api/agentidentity-delete
    # https://learn.microsoft.com/graph/api/agentidentityblueprintprincipal-delete (204)
    caller = ctx.caller
    if isinstance(target, AgentIdentity):
        agent_id_write_guard(caller)
        if not (not caller.delegated and caller.app_id == target.blueprint_app_id):
            require(
                caller,
                app=("AgentIdentity.ReadWrite.All",),
                delegated=("AgentIdentity.ReadWrite.All",),
                owners=target.owners,
                owned_app=("AgentIdentity.Create.All", "AgentIdentityBlueprint.Create"),
                owned_delegated=("AgentIdentity.Create.All", "AgentIdentityBlueprint.Create"),
            )
    elif target.kind == "resource":
        raise denied("The Microsoft Graph service principal cannot be deleted.")
    else:
        perms: tuple[str, ...] = ("Application.ReadWrite.All",)
        if target.kind == "blueprintPrincipal":
            agent_id_write_guard(caller)
            perms += ("AgentIdentityBlueprintPrincipal.ReadWrite.All",)
        require(
            caller,
            app=perms,
            delegated=perms,
            owners=target.owners,
            owned_app=(
                "Application.ReadWrite.OwnedBy",
                "AgentIdentityBlueprint.Create",
                "AgentIdentityBlueprintPrincipal.Create",
            ),
            owned_delegated=("AgentIdentityBlueprint.Create", "AgentIdentityBlueprintPrincipal.Create"),
        )
    ctx.tenant.delete_service_principal(target.object_id)
    return GraphResponse(204, None)


# --- app role assignments --------------------------------------------------------------


def assignment_json(ctx: Context, a: AppRoleAssignment) -> dict[str, Any]:
    principal = ctx.tenant.service_principal(a.principal_id) or ctx.tenant.agent_identity_by_object_id(a.principal_id)
    return {
        "id": a.id,
        "appRoleId": a.app_role_id,
        "createdDateTime": stamp(a.created_at),
        "deletedDateTime": None,
        "principalDisplayName": principal.display_name if principal is not None else None,
        "principalId": a.principal_id,
        "principalType": "ServicePrincipal",
        "resourceDisplayName": ctx.tenant.graph_sp.display_name,
        "resourceId": a.resource_id,
    }


def _list_assignments(ctx: Context, keep: Any) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignments
    # https://learn.microsoft.com/graph/api/serviceprincipal-list-approleassignedto
    require(ctx.caller, app=_READ_ASSIGNMENTS, delegated=_READ_ASSIGNMENTS)
    items = [assignment_json(ctx, a) for a in ctx.tenant.assignments if keep(a)]
    return page(ctx, items, f"servicePrincipals('{ctx.req.segments[1]}')/appRoleAssignments")


def _assign(ctx: Context, *, principal: str | None, resource: str | None) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignments
    # https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto (201)
    require(ctx.caller, app=("AppRoleAssignment.ReadWrite.All",), delegated=("AppRoleAssignment.ReadWrite.All",))
    payload = ctx.req.json()
    principal_id = str(payload.get("principalId", "")).lower()
    resource_id = str(payload.get("resourceId", "")).lower()
    role_id = str(payload.get("appRoleId", "")).lower()
    if principal is not None and principal_id != principal:
        raise bad_request(f"principalId must be the service principal in the URL ({principal}).")
    if resource is not None and resource_id != resource:
        raise bad_request(f"resourceId must be the service principal in the URL ({resource}).")
    require_principal(ctx, principal_id, "principalId")
    refuse_if_propagating(
        ctx,
        ctx.tenant.service_principal(principal_id) or ctx.tenant.agent_identity_by_object_id(principal_id),
        principal_id,
    )
    require_graph_resource(ctx, resource_id, "roles")
    roles = {permission_id(r, "role"): r for r in GRAPH_APP_ROLES}
    if role_id not in roles:
        raise bad_request(
            f"Permission being assigned was not found on application: appRoleId '{role_id}' is not an app role "
            "of Microsoft Graph."
        )
    existing = next(
        (a for a in ctx.tenant.assignments if (a.principal_id, a.app_role_id) == (principal_id, role_id)), None
    )
    if existing is not None:
        # Graph refuses a second identical assignment; docs silent on the exact text.
        raise bad_request(
            "Permission being assigned already exists on the object.", "Request_MultipleObjectsWithSameKeyValue"
        )
    assignment = ctx.tenant.assign_app_role(principal_id, role_id, roles[role_id], delayed=True)
    return GraphResponse(201, entity(ctx, "appRoleAssignments", assignment_json(ctx, assignment)))


def _unassign(ctx: Context, assignment_id: str, keep: Any) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/serviceprincipal-delete-approleassignments (204)
    require(ctx.caller, app=("AppRoleAssignment.ReadWrite.All",), delegated=("AppRoleAssignment.ReadWrite.All",))
    target = next((a for a in ctx.tenant.assignments if a.id == assignment_id and keep(a)), None)
    if target is None:
        raise not_found(assignment_id)
    ctx.tenant.delete_assignment(assignment_id)
    return GraphResponse(204, None)
