"""``/oauth2PermissionGrants``: delegated consent, for all principals or for one user (the Agent User).

Endpoints and the doc page each follows:

- ``POST /oauth2PermissionGrants`` — https://learn.microsoft.com/graph/api/oauth2permissiongrant-post :
  201 with the grant; body ``clientId`` (client service principal id: the Agent Identity),
  ``consentType`` ("AllPrincipals" or "Principal"), ``principalId`` (the user, for "Principal"),
  ``resourceId`` (the resource service principal: Microsoft Graph's), ``scope`` (space separated);
  app roles DelegatedPermissionGrant.ReadWrite.All / Directory.ReadWrite.All, scp
  DelegatedPermissionGrant.ReadWrite.All / Directory.ReadWrite.All / Directory.AccessAsUser.All.
- ``GET /oauth2PermissionGrants`` (+ ``$filter`` clientId / resourceId / principalId / consentType
  eq, ``$top``) and ``GET /oauth2PermissionGrants/{id}`` — oauth2permissiongrant-list / -get:
  DelegatedPermissionGrant.Read.All, DelegatedPermissionGrant.ReadWrite.All, Directory.Read.All.
- ``PATCH /oauth2PermissionGrants/{id}`` (``scope``, 204) and ``DELETE`` (204) —
  oauth2permissiongrant-update, oauth2permissiongrant-delete.

Hop 3 reads the same grants: an Agent Identity gets a user token for the scopes granted to it for
all principals plus those granted for that Agent User.
Creation requires ``startTime`` and ``expiryTime`` (ISO 8601): a real tenant answers a grant without
``startTime`` with 400 "Missing property: startTime" (upstream microsoft/entraclaw
docs/runbooks/hard-won-learnings.md, Learning #10); the resource page
(https://learn.microsoft.com/graph/api/resources/oauth2permissiongrant) lists ``expiryTime`` beside it,
and the emulator refuses its absence with the same text (docs silent on that exact answer).
Docs silent: the answer to a second grant for the same client, consent type, principal and
resource (400 Request_MultipleObjectsWithSameKeyValue here), and whether unknown scope names are
refused (they are, 400).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from entraclaw.emulator.graph._core import (
    Context,
    GraphError,
    GraphResponse,
    bad_request,
    created,
    entity,
    matches,
    method_not_allowed,
    no_segment,
    not_found,
    page,
    query_filter,
    require,
    require_graph_resource,
    require_principal,
)
from entraclaw.emulator.graph.propagation import PRINCIPAL_NOT_FOUND, refuse_if_propagating
from entraclaw.emulator.tenant import GRAPH_DELEGATED_SCOPES, PermissionGrant

__all__ = ["handle"]

_READ = (
    "DelegatedPermissionGrant.Read.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
_WRITE_APP = ("DelegatedPermissionGrant.ReadWrite.All", "Directory.ReadWrite.All")
_WRITE_DELEGATED = (*_WRITE_APP, "Directory.AccessAsUser.All")


def grant_json(grant: PermissionGrant) -> dict[str, Any]:
    return {
        "clientId": grant.client_id,
        "consentType": grant.consent_type,
        "id": grant.id,
        "principalId": grant.principal_id,
        "resourceId": grant.resource_id,
        "scope": grant.scope,
    }


def handle(ctx: Context) -> GraphResponse:
    seg = ctx.req.segments
    method = ctx.req.method
    if len(seg) == 1:
        if method == "GET":
            require(ctx.caller, app=_READ, delegated=_READ)
            clauses = query_filter(ctx, "oAuth2PermissionGrant", "clientId", "resourceId", "principalId", "consentType")
            items = [body for body in (grant_json(g) for g in ctx.tenant.grants) if matches(body, clauses)]
            return page(ctx, items, "oauth2PermissionGrants")
        if method == "POST":
            return _create(ctx)
        raise _method(method)
    if len(seg) != 2:
        raise no_segment(seg[2])
    grant = next((g for g in ctx.tenant.grants if g.id == seg[1]), None)
    if grant is None:
        raise not_found(seg[1])
    if method == "GET":
        require(ctx.caller, app=_READ, delegated=_READ)
        return GraphResponse(200, entity(ctx, "oauth2PermissionGrants", grant_json(grant)))
    if method == "PATCH":
        require(ctx.caller, app=_WRITE_APP, delegated=_WRITE_DELEGATED)
        payload = ctx.req.json()
        if set(payload) - {"scope"}:
            raise bad_request(f"Property '{sorted(set(payload) - {'scope'})[0]}' cannot be updated; only 'scope' can.")
        scopes = _scopes(payload.get("scope"))
        ctx.tenant.rescope_grant(grant.id, scopes, delayed=True)
        return GraphResponse(204, None)
    if method == "DELETE":
        require(ctx.caller, app=_WRITE_APP, delegated=_WRITE_DELEGATED)
        ctx.tenant.delete_grant(grant.id)
        return GraphResponse(204, None)
    raise _method(method)


def _method(method: str) -> GraphError:
    return method_not_allowed(method, "oauth2PermissionGrants")


def _scopes(value: Any) -> list[str]:
    if not isinstance(value, str) or not value.split():
        raise bad_request("Property 'scope' is required: a space-separated list of delegated permissions.")
    scopes = value.split()
    unknown = [s for s in scopes if s not in GRAPH_DELEGATED_SCOPES]
    if unknown:
        raise bad_request(f"Scope '{unknown[0]}' is not a delegated permission published by the resource.")
    return scopes


def _require_times(payload: dict[str, Any]) -> None:
    # Real tenant: 400 "Missing property: startTime" (hard-won-learnings #10); expiryTime alike (docs silent).
    for name in ("startTime", "expiryTime"):
        value = payload.get(name)
        if value in (None, ""):
            raise bad_request(f"Missing property: {name}")
        try:
            _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"Invalid value for property '{name}': {str(value)[:40]!r} is not a date-time.") from None


def _create(ctx: Context) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/oauth2permissiongrant-post (201)
    require(ctx.caller, app=_WRITE_APP, delegated=_WRITE_DELEGATED)
    payload = ctx.req.json()
    _require_times(payload)
    client_id = str(payload.get("clientId", "")).lower()
    resource_id = str(payload.get("resourceId", "")).lower()
    consent_type = payload.get("consentType")
    principal_id = payload.get("principalId")
    tenant = ctx.tenant
    require_principal(ctx, client_id, "clientId")
    refuse_if_propagating(
        ctx, tenant.service_principal(client_id) or tenant.agent_identity_by_object_id(client_id), client_id
    )
    require_graph_resource(ctx, resource_id, "scopes")
    if consent_type not in ("AllPrincipals", "Principal"):
        raise bad_request("Property 'consentType' must be 'AllPrincipals' or 'Principal'.")
    if consent_type == "Principal":
        if not isinstance(principal_id, str) or (
            tenant.user(principal_id.lower()) is None and tenant.person(principal_id.lower()) is None
        ):
            raise bad_request("consentType 'Principal' needs 'principalId', the object id of a user in the tenant.")
        principal_id = principal_id.lower()
        # A consent for an Agent User made moments ago (upstream create_entra_agent_ids.py retries this text).
        refuse_if_propagating(
            ctx, tenant.user(principal_id), principal_id, error=bad_request(PRINCIPAL_NOT_FOUND)
        )
    elif principal_id is not None:
        raise bad_request("consentType 'AllPrincipals' must not name a principalId.")
    scopes = _scopes(payload.get("scope"))
    for grant in tenant.grants:
        if (grant.client_id, grant.consent_type, grant.principal_id, grant.resource_id) == (
            client_id,
            consent_type,
            principal_id,
            resource_id,
        ):
            raise bad_request(
                f"Permission entry already exists: grant {grant.id} covers this client, principal and resource; "
                "PATCH its scope instead.",
                "Request_MultipleObjectsWithSameKeyValue",
            )
    grant = tenant.upsert_grant(client_id, str(consent_type), principal_id, resource_id, set(scopes), delayed=True)
    return created(ctx, "oauth2PermissionGrants", grant.id, entity(ctx, "oauth2PermissionGrants", grant_json(grant)))
