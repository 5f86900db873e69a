"""``/applications``: Agent Identity Blueprints and plain applications, their keys and owners.

Endpoints and the doc page each follows:

- ``POST /applications/microsoft.graph.agentIdentityBlueprint`` and ``POST /applications`` with
  ``"@odata.type": "microsoft.graph.agentIdentityBlueprint"`` (any casing, with or without '#')
  — https://learn.microsoft.com/graph/api/agentidentityblueprint-post?view=graph-rest-1.0 :
  201 with the object; ``displayName`` and ``sponsors`` required; app roles / scp
  AgentIdentityBlueprint.Create, AgentIdentityBlueprint.ReadWrite.All; "A principal who creates
  an agent identity blueprint ... is automatically assigned as the owner." A plain application
  (no @odata.type) follows https://learn.microsoft.com/graph/api/application-post-applications
  (Application.ReadWrite.All; Application.ReadWrite.OwnedBy creates one the caller then owns).
- ``GET /applications`` (+ ``$filter`` appId / displayName / id eq, ``$top``, ``$select``) and
  ``GET /applications/microsoft.graph.agentIdentityBlueprint`` —
  https://learn.microsoft.com/graph/api/application-list ,
  https://learn.microsoft.com/graph/api/agentidentityblueprint-list : Application.Read.All,
  Application.ReadWrite.All (and AgentIdentityBlueprint.Read.All / .ReadWrite.All for Blueprints).
- ``GET|PATCH|DELETE /applications/{id}`` and ``/applications(appId='{appId}')`` —
  https://learn.microsoft.com/graph/api/application-get , application-update (204),
  application-delete (204); agentidentityblueprint-get / -update / -delete for Blueprints.
  PATCH ``keyCredentials`` replaces the whole list (application-update: "the new list is the
  whole list"; an item without ``key`` but with an existing ``keyId`` keeps that credential).
- ``POST /applications/{id}/addKey`` and ``.../removeKey`` (also under
  ``/microsoft.graph.agentIdentityBlueprint/``) — https://learn.microsoft.com/graph/api/application-addkey
  (200 + keyCredential), https://learn.microsoft.com/graph/api/application-removekey (204);
  Application.ReadWrite.OwnedBy (owned) / Application.ReadWrite.All / Directory.ReadWrite.All,
  delegated Application.ReadWrite.All / Directory.ReadWrite.All; "An application does not need
  any specific permission to roll its own keys." The ``proof`` follows
  https://learn.microsoft.com/graph/application-rollkey-prooftoken : signed with the private key
  of one of the app's currently valid certificates, ``aud`` 00000002-0000-0000-c000-000000000000
  (and nothing else: Graph refuses its own app id 00000003-..., issue 22076 below), ``iss`` the
  application's object id, ``nbf`` and ``exp`` with ``exp`` at most ``nbf`` + 10 minutes.
  "Applications that don't have any existing valid certificates ... won't be able to use this
  service action."

Where the docs are silent (marked "docs silent" in the code): the error code for a refused proof
(Graph's answer as users report it — 401 ``Authentication_MissingOrMalformed``, "Access Token
missing or malformed." — github.com/microsoftgraph/microsoft-graph-docs issues 10686 and 22076;
a missing proof gets 403 Authorization_RequestDenied, msgraph-sdk-powershell issue 779), the
clock skew on a proof (the emulator allows 5 minutes on ``nbf`` and none on ``exp``), addKey of a
certificate that is already registered (refused, 400), removeKey of an unknown keyId (404), and
owner rights of an app holding only AgentIdentityBlueprint.Create over the Blueprints it created
(the emulator lets the owner update and delete them).
"""

from __future__ import annotations

from typing import Any

from entraclaw.emulator import jwt_codec
from entraclaw.emulator.graph._core import (
    GUID_RE,
    Context,
    GraphError,
    GraphResponse,
    addressed,
    agent_id_write_guard,
    bad_request,
    bind_ids,
    bind_sponsors,
    created,
    denied,
    matches,
    metadata_url,
    method_not_allowed,
    no_segment,
    not_found,
    page,
    query_filter,
    require,
    require_display_name,
    split_key,
    stamp,
)
from entraclaw.emulator.graph.app_limits import check_key_credentials
from entraclaw.emulator.graph.propagation import refuse_if_propagating
from entraclaw.emulator.tenant import Application, KeyCredential

__all__ = ["handle"]

BLUEPRINT_TYPE = "microsoft.graph.agentIdentityBlueprint"
_PATCHABLE = frozenset({"keyCredentials", "displayName", "description", "tags"})
_CREATABLE = frozenset(
    {
        "@odata.type",
        "displayName",
        "sponsors@odata.bind",
        "owners@odata.bind",
        "keyCredentials",
        "description",
        "tags",
        "identifierUris",
        "signInAudience",
    }
)
# Properties the Agent ID error table (https://learn.microsoft.com/entra/agent-id/identity-platform/error-codes)
# calls incompatible with Blueprints; the page names none, so these are the public-client / web ones.
_BLUEPRINT_INCOMPATIBLE = frozenset({"publicClient", "spa", "web", "isFallbackPublicClient", "passwordCredentials"})
_READ_APP = ("Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All")
_READ_BLUEPRINT = ("AgentIdentityBlueprint.Read.All", "AgentIdentityBlueprint.ReadWrite.All")
# https://learn.microsoft.com/graph/api/application-addkey , agentidentityblueprint-addkey (the proof's aud);
# a proof for 00000003-... (Graph's app id) gets 401 Authentication_MissingOrMalformed on a real tenant
# (github.com/microsoftgraph/microsoft-graph-docs/issues/22076).
_PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"
_PROOF_MAX_LIFETIME = 600
_PROOF_SKEW = 300


def _is_blueprint_type(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip("#").lower() == BLUEPRINT_TYPE.lower()


def application_json(ctx: Context, app: Application, *, entity: bool = True) -> dict[str, Any]:
    select = ctx.req.select
    full: dict[str, Any] = {
        "id": app.object_id,
        "appId": app.app_id,
        "displayName": app.display_name,
        "createdDateTime": stamp(app.created_at),
        "identifierUris": [],
        "publisherDomain": ctx.tenant.default_domain,
        "signInAudience": "AzureADMyOrg",
        "requiredResourceAccess": [],
        "tags": [],
        "isFallbackPublicClient": app.public_client,
        "keyCredentials": [c.to_graph(include_key="keyCredentials" in select) for c in app.key_credentials],
        "passwordCredentials": [],
    }
    body: dict[str, Any] = {}
    if entity:
        cast = f"/{BLUEPRINT_TYPE}" if app.kind == "blueprint" and ctx.req.method == "POST" else ""
        body["@odata.context"] = metadata_url(ctx, f"applications{cast}/$entity")
    # A derived type announces itself; under $select the emulator returns only what was asked (docs silent).
    if app.kind == "blueprint" and not select:
        body["@odata.type"] = f"#{BLUEPRINT_TYPE}"
    body.update({k: v for k, v in full.items() if not select or k in select})
    return body


def handle(ctx: Context) -> GraphResponse:
    seg = ctx.req.segments
    method = ctx.req.method
    keyed = split_key(seg[0], "applications")
    if keyed is None and seg[0] != "applications":
        raise no_segment(seg[0])
    if keyed is None and len(seg) == 1:
        if method == "GET":
            return _list(ctx, blueprints_only=False)
        if method == "POST":
            return _create(ctx, typed=False)
        raise _method(method)
    if keyed is None and len(seg) == 2 and seg[1] == BLUEPRINT_TYPE:
        if method == "GET":
            return _list(ctx, blueprints_only=True)
        if method == "POST":
            return _create(ctx, typed=True)
        raise _method(method)
    key, app, rest = addressed(
        ctx,
        keyed,
        lambda app_id, hidden: ctx.tenant.application(app_id, include_hidden=hidden),
        lambda oid, hidden: ctx.tenant.application_by_object_id(oid, include_hidden=hidden),
    )
    if rest and rest[0] == BLUEPRINT_TYPE:
        if app.kind != "blueprint":
            raise not_found(key)
        rest = rest[1:]
    if method in ("PATCH", "POST"):
        refuse_if_propagating(ctx, app, key)  # PATCH keyCredentials / addKey right after the create
    action = rest[0].removeprefix("microsoft.graph.") if rest else None
    if action is None:
        if method == "GET":
            _authorize_read(ctx, app)
            return GraphResponse(200, application_json(ctx, app))
        if method == "PATCH":
            return _patch(ctx, app)
        if method == "DELETE":
            return _delete(ctx, app)
        raise _method(method)
    if action in ("addKey", "removeKey") and len(rest) == 1:
        if method != "POST":
            raise _method(method)
        return _add_key(ctx, app) if action == "addKey" else _remove_key(ctx, app)
    raise no_segment(rest[0])


def _method(method: str) -> GraphError:
    return method_not_allowed(method, "applications")


# --- read ------------------------------------------------------------------------------


def _authorize_read(ctx: Context, app: Application) -> None:
    # https://learn.microsoft.com/graph/api/application-get
    # https://learn.microsoft.com/graph/api/agentidentityblueprint-get
    extra = _READ_BLUEPRINT if app.kind == "blueprint" else ()
    require(
        ctx.caller,
        app=(*_READ_APP, *extra),
        delegated=(*_READ_APP, *extra),
        owners=app.owners,
        owned_app=("Application.ReadWrite.OwnedBy", "AgentIdentityBlueprint.Create"),
        owned_delegated=("Application.ReadWrite.All", "AgentIdentityBlueprint.Create"),
    )


def _list(ctx: Context, *, blueprints_only: bool) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/application-list
    # https://learn.microsoft.com/graph/api/agentidentityblueprint-list
    caller = ctx.caller
    held = caller.scopes if caller.delegated else caller.roles
    may_read = not caller.delegated or caller.admin
    see_apps = may_read and bool(held & set(_READ_APP))
    see_blueprints = may_read and bool(held & {*_READ_APP, *_READ_BLUEPRINT})
    owned = bool(held & {"Application.ReadWrite.OwnedBy", "AgentIdentityBlueprint.Create", "Application.ReadWrite.All"})
    if not (see_apps or see_blueprints or owned):
        kind = "delegated scope" if caller.delegated else "application role"
        raise denied(f"The call needs the {kind} Application.Read.All or AgentIdentityBlueprint.Read.All.")
    clauses = query_filter(ctx, "application", "appId", "displayName", "id")
    items = []
    for app in ctx.tenant.applications:
        if not ctx.tenant.visible(app) or (blueprints_only and app.kind != "blueprint"):
            continue
        sees = see_blueprints if app.kind == "blueprint" else see_apps
        if not sees and not (owned and caller.owns(app.owners)):
            continue
        if not matches({"appId": app.app_id, "displayName": app.display_name, "id": app.object_id}, clauses):
            continue
        items.append(application_json(ctx, app, entity=False))
    cast = f"/{BLUEPRINT_TYPE}" if blueprints_only else ""
    return page(ctx, items, f"applications{cast}")


# --- create ----------------------------------------------------------------------------


def _create(ctx: Context, *, typed: bool) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/agentidentityblueprint-post?view=graph-rest-1.0
    # https://learn.microsoft.com/graph/api/application-post-applications
    payload = ctx.req.json()
    blueprint = typed or _is_blueprint_type(payload.get("@odata.type"))
    odata_type = payload.get("@odata.type")
    if odata_type is not None and not blueprint and str(odata_type).lstrip("#") != "microsoft.graph.application":
        raise bad_request(f"The @odata.type '{odata_type}' cannot be created at /applications.")
    caller = ctx.caller
    if blueprint:
        agent_id_write_guard(caller)
        require(
            caller,
            app=("AgentIdentityBlueprint.Create", "AgentIdentityBlueprint.ReadWrite.All"),
            delegated=("AgentIdentityBlueprint.Create", "AgentIdentityBlueprint.ReadWrite.All"),
        )
        incompatible = sorted(set(payload) & _BLUEPRINT_INCOMPATIBLE)
        if incompatible:
            raise bad_request(
                f"Property '{incompatible[0]}' is incompatible with agent identity blueprints and can't be set.",
                "AgentBlueprint_IncompatibleProperty",
            )
    else:
        require(
            caller,
            app=("Application.ReadWrite.All", "Application.ReadWrite.OwnedBy"),
            delegated=("Application.ReadWrite.All",),
        )
    unknown = sorted(set(payload) - _CREATABLE - _BLUEPRINT_INCOMPATIBLE)
    if unknown:
        raise bad_request(f"Property '{unknown[0]}' does not exist on type 'microsoft.graph.application'.")
    name = require_display_name(payload)
    sponsors = bind_sponsors(ctx, payload, required_by="An agent identity blueprint" if blueprint else None)
    owners = bind_ids(payload, "owners", ("users", "servicePrincipals"))
    # The creator becomes an owner (documented for Blueprints; Graph does the same for
    # Application.ReadWrite.OwnedBy callers).
    owners = [caller.creator, *[o for o in owners if o != caller.creator]]
    creds: list[KeyCredential] = []
    if payload.get("keyCredentials"):
        creds = _parse_key_credentials(payload["keyCredentials"], None)
    app = ctx.tenant.create_application(
        "blueprint" if blueprint else "application",
        name,
        owners=owners,
        sponsors=sponsors,
        created_by_app_id=caller.app_id,
    )
    if creds:
        ctx.tenant.set_key_credentials(app.object_id, creds)
    return created(ctx, "applications", app.object_id, application_json(ctx, app))


# --- update / delete -------------------------------------------------------------------


def _authorize_write(ctx: Context, app: Application, *, credentials_only: bool = False) -> None:
    caller = ctx.caller
    if app.kind == "blueprint":
        agent_id_write_guard(caller)
    app_perms: tuple[str, ...] = ("Application.ReadWrite.All",)
    delegated: tuple[str, ...] = ("Application.ReadWrite.All",)
    if app.kind == "blueprint":
        app_perms += ("AgentIdentityBlueprint.ReadWrite.All",)
        delegated += ("AgentIdentityBlueprint.ReadWrite.All",)
        if credentials_only:
            # https://learn.microsoft.com/entra/agent-id/identity-platform/create-blueprint
            # ("Configure credentials": AgentIdentityBlueprint.AddRemoveCreds.All).
            app_perms += ("AgentIdentityBlueprint.AddRemoveCreds.All",)
            delegated += ("AgentIdentityBlueprint.AddRemoveCreds.All",)
    require(
        caller,
        app=app_perms,
        delegated=delegated,
        owners=app.owners,
        owned_app=("Application.ReadWrite.OwnedBy", "AgentIdentityBlueprint.Create"),
        owned_delegated=("Application.ReadWrite.All", "AgentIdentityBlueprint.Create"),
    )


def _parse_key_credentials(items: Any, app: Application | None) -> list[KeyCredential]:
    if not isinstance(items, list):
        raise bad_request("keyCredentials must be an array.")
    existing = {c.key_id: c for c in app.key_credentials} if app is not None else {}
    creds: list[KeyCredential] = []
    for index, item in enumerate(items):
        keep = (
            isinstance(item, dict) and item.get("key") in (None, "") and str(item.get("keyId", "")).lower() in existing
        )
        if keep:
            creds.append(existing[str(item["keyId"]).lower()])
            continue
        try:
            creds.append(KeyCredential.from_graph(item))
        except ValueError as exc:
            owner = f" of {app.app_id}" if app is not None else ""
            raise bad_request(f"Invalid value for keyCredentials[{index}]{owner}: {exc}.") from exc
    ids = [c.key_id for c in creds]
    if len(set(ids)) != len(ids):
        raise bad_request("keyCredentials contain a duplicate keyId.")
    return creds


def _patch(ctx: Context, app: Application) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/application-update
    # https://learn.microsoft.com/graph/api/agentidentityblueprint-update (204)
    payload = ctx.req.json()
    _authorize_write(ctx, app, credentials_only=set(payload) <= {"keyCredentials"})
    unknown = sorted(set(payload) - _PATCHABLE)
    if unknown:
        raise bad_request(
            f"Property '{unknown[0]}' does not exist on type 'microsoft.graph.application' or cannot be set here."
        )
    if "keyCredentials" in payload:
        creds = _parse_key_credentials(payload["keyCredentials"], app)
        check_key_credentials(ctx, app, creds)
        ctx.tenant.set_key_credentials(app.object_id, creds)
    if "displayName" in payload:
        name = payload["displayName"]
        if not isinstance(name, str) or not name:
            raise bad_request("displayName must be a non-empty string.")
        app.display_name = name
    return GraphResponse(204, None)


def _delete(ctx: Context, app: Application) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/application-delete
    # https://learn.microsoft.com/graph/api/agentidentityblueprint-delete (204)
    _authorize_write(ctx, app)
    ctx.tenant.delete_application(app.object_id)
    return GraphResponse(204, None)


# --- addKey / removeKey ----------------------------------------------------------------


def _authorize_roll(ctx: Context, app: Application) -> None:
    caller = ctx.caller
    if app.kind == "blueprint":
        agent_id_write_guard(caller)
    if not caller.delegated and caller.app_id == app.app_id:
        return  # "An application does not need any specific permission to roll its own keys."
    extra = ("AgentIdentityBlueprint.AddRemoveCreds.All", "AgentIdentityBlueprint.ReadWrite.All")
    require(
        caller,
        app=("Application.ReadWrite.All", "Directory.ReadWrite.All", *(extra if app.kind == "blueprint" else ())),
        delegated=("Application.ReadWrite.All", "Directory.ReadWrite.All"),
        owners=app.owners,
        owned_app=("Application.ReadWrite.OwnedBy",),
        owned_delegated=("Application.ReadWrite.All",),
    )


def _proof_refused(app: Application, why: str) -> GraphError:
    # docs silent on the code: Graph answers a bad proof with 401 Authentication_MissingOrMalformed
    # ("Access Token missing or malformed."), as reported in microsoft-graph-docs issues 10686 / 22076.
    return GraphError(
        401,
        "Authentication_MissingOrMalformed",
        f"Access Token missing or malformed. The proof for application {app.object_id} was refused: {why}",
    )


def _verify_proof(ctx: Context, app: Application, proof: Any) -> KeyCredential:
    if not isinstance(proof, str) or not proof:
        # docs silent; Graph answers a missing proof with Authorization_RequestDenied (SDK issue 779).
        raise denied(f"addKey/removeKey on application {app.object_id} needs 'proof', a JWT signed by one of its keys.")
    now = ctx.now()
    valid = [c for c in app.key_credentials if c.valid_at(now)]
    if not valid:
        raise _proof_refused(
            app, "the application has no currently valid certificate; register one with PATCH keyCredentials instead."
        )
    try:
        jwt = jwt_codec.parse(proof)
    except jwt_codec.MalformedJwt as exc:
        raise _proof_refused(app, f"{exc}.") from exc
    header, claims = jwt.header, jwt.claims
    s256 = header.get("x5t#S256") if isinstance(header.get("x5t#S256"), str) else None
    sha1 = header.get("x5t") if isinstance(header.get("x5t"), str) else None
    if sha1 is None and isinstance(header.get("kid"), str):
        sha1 = header["kid"]  # .NET's JsonWebTokenHandler names the certificate by kid = base64url SHA-1
    cred = next(
        (
            c
            for c in valid
            if (s256 is not None and c.x5t_s256 == s256) or (s256 is None and sha1 is not None and c.x5t == sha1)
        ),
        None,
    )
    if cred is None:
        shown = s256 or sha1 or "(none: the header names no x5t#S256, x5t or kid)"
        raise _proof_refused(
            app, f"it is signed by key {shown}, which is not a currently valid certificate of the app."
        )
    alg = header.get("alg")
    if alg not in jwt_codec.VERIFY_ALGORITHMS or not jwt_codec.verify(jwt, cred.public_key, str(alg)):
        raise _proof_refused(app, f"its signature does not verify with certificate {cred.x5t_s256} (alg {alg!r}).")
    if claims.get("aud") != _PROOF_AUDIENCE:
        raise _proof_refused(app, f"aud {claims.get('aud')!r} is not {_PROOF_AUDIENCE}.")
    if str(claims.get("iss", "")).lower() != app.object_id:
        raise _proof_refused(app, f"iss {claims.get('iss')!r} is not the application's object id {app.object_id}.")
    nbf, exp = claims.get("nbf"), claims.get("exp")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (nbf, exp)):
        raise _proof_refused(app, "nbf and exp must both be present as numbers.")
    assert isinstance(nbf, (int, float)) and isinstance(exp, (int, float))
    if exp - nbf > _PROOF_MAX_LIFETIME:
        raise _proof_refused(app, f"its lifetime exp - nbf = {int(exp - nbf)} s exceeds 10 minutes.")
    if now > exp:
        raise _proof_refused(app, f"it expired at {stamp(exp)}.")
    if now < nbf - _PROOF_SKEW:
        raise _proof_refused(app, f"it is not valid before {stamp(nbf)}.")
    return cred


def _add_key(ctx: Context, app: Application) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/application-addkey (200 + keyCredential); proof: https://learn.microsoft.com/graph/application-rollkey-prooftoken
    _authorize_roll(ctx, app)
    payload = ctx.req.json()
    _verify_proof(ctx, app, payload.get("proof"))
    item = payload.get("keyCredential")
    if not isinstance(item, dict):
        raise bad_request("Property 'keyCredential' is required.")
    if item.get("type") == "X509CertAndPassword":
        raise bad_request("keyCredential type 'X509CertAndPassword' is not supported by the emulator.")
    try:
        cred = KeyCredential.from_graph(item)
    except ValueError as exc:
        raise bad_request(f"Invalid value for keyCredential of {app.app_id}: {exc}.") from exc
    if any(c.x5t_s256 == cred.x5t_s256 for c in app.key_credentials):
        # docs silent: Graph's behaviour for a certificate registered twice is not documented.
        raise bad_request(f"The certificate {cred.x5t_s256} is already registered on application {app.app_id}.")
    if any(c.key_id == cred.key_id for c in app.key_credentials):
        raise bad_request(f"keyId {cred.key_id} is already used on application {app.app_id}.")
    check_key_credentials(ctx, app, [*app.key_credentials, cred])
    ctx.tenant.set_key_credentials(app.object_id, [*app.key_credentials, cred])
    body = {"@odata.context": metadata_url(ctx, "microsoft.graph.keyCredential")}
    body.update(cred.to_graph(include_key=False))
    return GraphResponse(200, body)


def _remove_key(ctx: Context, app: Application) -> GraphResponse:
    # https://learn.microsoft.com/graph/api/application-removekey (204)
    _authorize_roll(ctx, app)
    payload = ctx.req.json()
    _verify_proof(ctx, app, payload.get("proof"))
    key_id = str(payload.get("keyId", "")).lower()
    if not GUID_RE.match(key_id):
        raise bad_request("Property 'keyId' is required and must be a GUID.")
    remaining = [c for c in app.key_credentials if c.key_id != key_id]
    if len(remaining) == len(app.key_credentials):
        raise not_found(key_id)  # docs silent on the status for an unknown keyId
    ctx.tenant.set_key_credentials(app.object_id, remaining)
    return GraphResponse(204, None)
