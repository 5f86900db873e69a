"""``POST /{tenant}/oauth2/v2.0/token``: the three hops of the Agent User flow, checked like Entra.

- **Hop 1** — client = Blueprint, ``client_credentials``, certificate client
  assertion, ``fmi_path`` = an Agent Identity of that Blueprint, scope
  ``api://AzureADTokenExchange/.default``. Issues **T1** (``aud`` = the token
  exchange app, ``sub`` = the fmi path, ``idtyp=app``, ``appid`` = Blueprint).
- **Hop 2** — client = Agent Identity, ``client_credentials``,
  ``client_assertion`` = T1 minted for it by its parent Blueprint. Issues **T2**.
- **Hop 3** — client = Agent Identity, ``grant_type=user_fic``,
  ``client_assertion`` = T1, ``user_federated_identity_credential`` = T2 of the
  same Agent Identity, exactly one of ``user_id`` (object id) / ``username``
  (UPN); the user's identity parent must be the Agent Identity and consent
  must cover the scope. Issues **T3** (``idtyp=user``, ``oid``, ``scp``), an
  ``id_token`` and ``client_info`` (MSAL builds its account from them).

Also: a registered app's plain ``client_credentials`` for
``https://graph.microsoft.com/.default`` gets an app-only Graph token whose
``roles`` are its app-role grants (used for Graph keyCredentials).
Refresh tokens are not issued; every hop is a fresh exchange.

The device authorization grant (:mod:`.device_code`) signs the seeded admin user in for a
delegated Graph token. Objects created over Graph are found only once they have propagated
(``Tenant.propagation_delay``): until then the app is "not found in the directory"
(AADSTS700016), and an app whose service principal does not exist (yet) is refused with
AADSTS7000229 ("The client application ... is missing service principal in the tenant"; the
code is not in Microsoft's published table, its text is what Entra returns for it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from entraclaw.auth._b64 import b64url_encode
from entraclaw.emulator import token_checks
from entraclaw.emulator.aadsts import (
    CLIENT_ASSERTION_TYPE,
    StsError,
    app_not_found,
    error_body,
    missing_parameter,
    resource_not_found,
    user_not_found,
)
from entraclaw.emulator.client_assertion import ReplayCache, verify_certificate_assertion
from entraclaw.emulator.device_code import DEVICE_CODE_GRANT, DeviceFlow, DeviceFlows
from entraclaw.emulator.issuer import TOKEN_EXCHANGE_AUDIENCE, TokenIssuer
from entraclaw.emulator.realm import Realm
from entraclaw.emulator.tenant import (
    GRAPH_APP_ID,
    GRAPH_DELEGATED_SCOPES,
    GRAPH_RESOURCE,
    AgentIdentity,
    AgentUser,
    Application,
    DirectoryUser,
    Tenant,
    first_party_resource,
)

__all__ = ["TokenResult", "TokenService"]

_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
#: The OIDC scopes Entra copies into an access token's ``scp`` when they were asked for (not
#: offline_access, which only asks for a refresh token), in the order Entra lists them.
_SCP_OIDC = ("openid", "profile", "email")
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_EXCHANGE_RESOURCES = frozenset({"api://AzureADTokenExchange", TOKEN_EXCHANGE_AUDIENCE})
_GRAPH_RESOURCES = frozenset({GRAPH_RESOURCE, GRAPH_APP_ID})


@dataclass(frozen=True)
class TokenResult:
    hop: int | None
    status: int
    body: dict[str, Any]


def _split_scope(scope: str) -> tuple[str, str]:
    """``https://graph.microsoft.com/User.Read`` -> (resource, permission); bare names are Graph's."""
    if "/" not in scope:
        return GRAPH_RESOURCE, scope
    resource, _, permission = scope.rpartition("/")
    return resource, permission


class TokenService:
    def __init__(
        self,
        tenant: Tenant,
        issuer: TokenIssuer,
        realm: Callable[[], Realm],
        clock: Callable[[], float],
        token_lifetime: int,
    ) -> None:
        self.tenant = tenant
        self.issuer = issuer
        self._realm = realm
        self._clock = clock
        self.token_lifetime = token_lifetime
        self.replay = ReplayCache()
        self.device_flows = DeviceFlows()
        #: UPN of the seeded user whose device codes are approved as soon as they are issued.
        self.auto_approve_upn: str | None = None
        #: Who approves a device code when the approval names no user (the seeded admin).
        self.admin_upn: str | None = None

    # --- entry point ------------------------------------------------------------------

    def handle(self, tenant_in_path: str, form: Mapping[str, str], correlation_id: str | None) -> TokenResult:
        now = self._clock()
        hop: int | None = None
        try:
            realm = self._realm()
            self._check_tenant(tenant_in_path, realm)
            hop, body = self._dispatch(form, realm, now)
        except StsError as err:
            return TokenResult(
                hop if hop is not None else self.hop_hint(form),
                err.status,
                error_body(err, correlation_id=correlation_id, now=now),
            )
        return TokenResult(hop, 200, body)

    def _check_tenant(self, tenant_in_path: str, realm: Realm) -> None:
        if tenant_in_path.lower() not in (realm.tenant_id, "organizations", "common"):
            raise StsError(
                90002,
                "invalid_request",
                f"Tenant '{tenant_in_path}' not found. Check to make sure you have the correct tenant ID.",
            )

    def device_authorization(
        self, tenant_in_path: str, form: Mapping[str, str], correlation_id: str | None
    ) -> TokenResult:
        """``POST /{tenant}/oauth2/v2.0/devicecode``: start a device-code sign-in."""
        now = self._clock()
        try:
            realm = self._realm()
            self._check_tenant(tenant_in_path, realm)
            client_id = form.get("client_id")
            if not client_id:
                raise missing_parameter("client_id")
            if not form.get("scope"):
                raise missing_parameter("scope")
            app = self.tenant.application(client_id, include_hidden=False)
            if app is None:
                raise app_not_found(client_id, realm.tenant_id)
            if not app.public_client:
                raise StsError(
                    7000218,
                    "invalid_client",
                    f"The request body must contain the following parameter: 'client_assertion' or 'client_secret': "
                    f"application {client_id} is not a public client, so it cannot use the device code flow.",
                )
            scopes = self._delegated_scopes(form["scope"], client_id)
            flow = self.device_flows.start(client_id, scopes, now)
            if self.auto_approve_upn:
                person = self.tenant.person_by_upn(self.auto_approve_upn)
                if person is not None:
                    self.device_flows.decide(flow.user_code, approve=True, user_id=person.object_id, now=now)
        except StsError as err:
            return TokenResult(None, err.status, error_body(err, correlation_id=correlation_id, now=now))
        uri = f"{realm.base_url}/devicelogin"
        return TokenResult(
            None,
            200,
            {
                "user_code": flow.user_code,
                "device_code": flow.device_code,
                "verification_uri": uri,
                "expires_in": int(flow.expires_at - now),
                "interval": flow.interval,
                # Entra's sentence first (clients show it verbatim); the emulator has no sign-in page,
                # so it adds the command that approves the code instead.
                "message": f"To sign in, use a web browser to open the page {uri} and enter the code "
                f"{flow.user_code} to authenticate. (Emulator: there is no sign-in page; approve with "
                f"`entraclaw emulator approve {flow.user_code} --url {realm.base_url}` plus --ca-bundle as "
                "`entraclaw emulator serve` printed it, or start serve with --auto-approve.)",
            },
        )

    def decide_device_code(self, user_code: str, *, approve: bool, username: str | None) -> str | None:
        """Approve or decline a pending user code as ``username`` (default: the admin); None when done."""
        now = self._clock()
        upn = username or self.admin_upn
        person = self.tenant.person_by_upn(upn) if upn else None
        if approve and person is None:
            return f"User {upn or '(none given)'} does not exist in tenant {self.tenant.tenant_id}."
        flow = self.device_flows.decide(
            user_code, approve=approve, user_id=person.object_id if person else None, now=now
        )
        if flow is None:
            return f"No pending device code {user_code}: it is unknown, expired or already decided."
        return None

    def _delegated_scopes(self, scope: str, client_id: str) -> tuple[str, ...]:
        out: list[str] = []
        for item in scope.split():
            if item in _OIDC_SCOPES:
                out.append(item)
                continue
            resource, permission = _split_scope(item)
            if resource not in _GRAPH_RESOURCES or (
                permission != ".default" and permission not in GRAPH_DELEGATED_SCOPES
            ):
                raise StsError(
                    70011,
                    "invalid_scope",
                    f"The provided value for the input parameter 'scope' is not valid for {client_id}. "
                    f"The scope {item} is not valid: the emulator publishes Microsoft Graph's delegated "
                    "permissions only.",
                )
            out.append(permission)
        if not any(s not in _OIDC_SCOPES for s in out):
            out.append("User.Read")
        return tuple(out)

    def _device_code_token(self, form: Mapping[str, str], client_id: str, realm: Realm, now: float) -> dict[str, Any]:
        device_code = form.get("device_code")
        if not device_code:
            raise missing_parameter("device_code")
        flow: DeviceFlow = self.device_flows.poll(device_code, client_id, now)
        person = self.tenant.person(flow.user_id or "")
        if person is None:
            raise user_not_found(str(flow.user_id), realm.tenant_id)
        named = {s for s in flow.scopes if s not in _OIDC_SCOPES}
        if ".default" in named:
            # .default: what the client was consented to; the admin approving consents to named scopes.
            named = (named - {".default"}) | set(
                self.tenant.consented_scopes(client_id, GRAPH_RESOURCE, person.object_id)
            )
        oidc = [s for s in flow.scopes if s in _OIDC_SCOPES]
        # The device flow answers with an id_token only when it was asked for openid (OIDC).
        return self._user_token(
            realm,
            now,
            person,
            client_id=client_id,
            appidacr="0",
            scp=sorted(named),
            oidc=oidc,
            id_token="openid" in oidc,
        )

    def _user_token(
        self,
        realm: Realm,
        now: float,
        user: AgentUser | DirectoryUser,
        *,
        client_id: str,
        appidacr: str,
        scp: list[str],
        oidc: list[str],
        id_token: bool,
    ) -> dict[str, Any]:
        """A delegated Graph token for ``user`` (T3 or a device-code token), with what MSAL builds its account from."""
        access = self._mint(
            realm,
            now,
            aud=GRAPH_RESOURCE,
            sub=user.object_id,
            oid=user.object_id,
            upn=user.upn,
            unique_name=user.upn,
            name=user.display_name,
            scp=" ".join(scp),
            idtyp="user",
            appid=client_id,
            azp=client_id,
            appidacr=appidacr,
        )
        body = self._token_response(access)
        body["scope"] = " ".join([*scp, *oidc])
        if id_token:
            body["id_token"] = self._mint(
                realm,
                now,
                aud=client_id,
                sub=user.object_id,
                oid=user.object_id,
                preferred_username=user.upn,
                name=user.display_name,
            )
        body["client_info"] = b64url_encode(
            json.dumps({"uid": user.object_id, "utid": realm.tenant_id}, separators=(",", ":")).encode()
        )
        return body

    def _dispatch(self, form: Mapping[str, str], realm: Realm, now: float) -> tuple[int | None, dict[str, Any]]:
        grant_type = form.get("grant_type")
        if not grant_type:
            raise missing_parameter("grant_type")
        client_id = form.get("client_id")
        if not client_id:
            raise missing_parameter("client_id")
        if grant_type == DEVICE_CODE_GRANT:
            return None, self._device_code_token(form, client_id, realm, now)
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret and assertion:
            raise StsError(
                9002324,
                "invalid_request",
                f"Only one client credential may be sent for {client_id}: both 'client_secret' and "
                "'client_assertion' were present.",
            )
        if grant_type not in ("client_credentials", "user_fic", JWT_BEARER_GRANT):
            raise StsError(
                70003, "unsupported_grant_type", f"The app requested an unsupported grant type '{grant_type}'."
            )
        if not form.get("scope"):
            raise missing_parameter("scope")

        # Objects created over Graph are not found until they have propagated.
        app = self.tenant.application(client_id, include_hidden=False)
        identity = self.tenant.agent_identity(client_id, include_hidden=False)
        if app is None and identity is None:
            raise app_not_found(client_id, realm.tenant_id)
        if app is not None and self.tenant.service_principal_by_app_id(client_id, include_hidden=False) is None:
            raise StsError(
                7000229,
                "invalid_client",
                f"The client application {client_id} is missing service principal in the tenant "
                f"{realm.tenant_id}. Create it with POST /servicePrincipals (for a Blueprint: "
                "/servicePrincipals/microsoft.graph.agentIdentityBlueprintPrincipal).",
            )
        if secret:
            raise StsError(7000215, "invalid_client", f"Invalid client secret provided for app '{client_id}'.")
        if not assertion:
            raise StsError(
                7000216,
                "invalid_client",
                f"'client_assertion', 'client_secret' or 'request' is required for the '{grant_type}' grant type.",
            )
        assertion_type = form.get("client_assertion_type")
        if not assertion_type:
            raise missing_parameter("client_assertion_type")
        if assertion_type != CLIENT_ASSERTION_TYPE:
            raise StsError(
                700021,
                "invalid_client",
                f"The client_assertion_type '{assertion_type}' is not supported; use '{CLIENT_ASSERTION_TYPE}'.",
            )

        if app is not None:
            if grant_type == "user_fic":
                raise StsError(
                    70000,
                    "invalid_grant",
                    f"The user_fic grant is only available to Agent Identities; '{client_id}' is an application.",
                )
            verify_certificate_assertion(
                assertion, app=app, audiences=realm.assertion_audiences, now=now, replay=self.replay
            )
            if grant_type == JWT_BEARER_GRANT:
                token_checks.refuse_on_behalf_of(self.issuer, client_id, form, realm)
            fmi_path = form.get("fmi_path")
            if fmi_path is not None:
                return 1, self._hop1(app, fmi_path, form["scope"], realm, now)
            return None, self._app_token(app, form["scope"], realm, now)

        assert identity is not None
        token_checks.verify_t1(self.issuer, assertion, identity, realm, now)
        if grant_type == JWT_BEARER_GRANT:
            token_checks.refuse_on_behalf_of(self.issuer, client_id, form, realm)
        if grant_type == "client_credentials":
            return 2, self._hop2(identity, form["scope"], realm, now)
        return 3, self._hop3(identity, form, realm, now)

    # --- hops -------------------------------------------------------------------------

    def _single_default_scope(self, scope: str, client_id: str) -> str:
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise StsError(
                70011,
                "invalid_scope",
                f"The provided value for the input parameter 'scope' is not valid for {client_id}. "
                f"The scope {scope} is not valid: client credential flows need one '<resource>/.default' scope.",
            )
        return scopes[0][: -len("/.default")]

    def _hop1(self, app: Application, fmi_path: str, scope: str, realm: Realm, now: float) -> dict[str, Any]:
        resource = self._single_default_scope(scope, app.app_id)
        if resource not in _EXCHANGE_RESOURCES:
            raise StsError(
                70011,
                "invalid_scope",
                f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid "
                "with fmi_path: request 'api://AzureADTokenExchange/.default'.",
            )
        identity = self.tenant.agent_identity(fmi_path, include_hidden=False)
        if app.kind != "blueprint" or identity is None or identity.blueprint_app_id != app.app_id:
            raise StsError(
                70000,
                "invalid_grant",
                f"The fmi_path '{fmi_path}' does not name an Agent Identity of Blueprint '{app.app_id}'.",
            )
        return self._token_response(
            self._mint_app(realm, now, aud=TOKEN_EXCHANGE_AUDIENCE, sub=fmi_path, appid=app.app_id, oid=app.object_id)
        )

    def _app_token(self, app: Application, scope: str, realm: Realm, now: float) -> dict[str, Any]:
        # An app-only token's oid is the app's service principal, not its application object.
        sp = self.tenant.service_principal_by_app_id(app.app_id)
        oid = sp.object_id if sp else app.object_id
        if self._single_default_scope(scope, app.app_id) in _EXCHANGE_RESOURCES:
            # The exchange audience without fmi_path: a token about the app itself (sub = its
            # principal), not a T1 for any Agent Identity; Hop 2 refuses it with AADSTS700211.
            return self._token_response(
                self._mint_app(realm, now, aud=TOKEN_EXCHANGE_AUDIENCE, sub=oid, appid=app.app_id, oid=oid)
            )
        return self._resource_token(app.app_id, oid, scope, realm, now)

    def _resource_token(self, app_id: str, object_id: str, scope: str, realm: Realm, now: float) -> dict[str, Any]:
        """An app-only token for a resource (Graph), carrying the app roles granted to ``app_id``."""
        resource = self._single_default_scope(scope, app_id)
        audience = first_party_resource(resource)
        if audience is None:
            raise resource_not_found(resource, realm.tenant_id)
        extra: dict[str, Any] = {}
        roles = sorted(self.tenant.app_roles(app_id, audience))
        if roles:
            extra["roles"] = roles
        return self._token_response(
            self._mint_app(realm, now, aud=audience, sub=object_id, appid=app_id, oid=object_id, **extra)
        )

    def _hop2(self, identity: AgentIdentity, scope: str, realm: Realm, now: float) -> dict[str, Any]:
        resource = self._single_default_scope(scope, identity.app_id)
        if resource not in _EXCHANGE_RESOURCES:
            # The Agent Identity asking for its own app-only token for a resource (the
            # autonomous-agent flow): Entra answers with a resource token, not T2.
            return self._resource_token(identity.app_id, identity.object_id, scope, realm, now)
        return self._token_response(
            self._mint_app(
                realm,
                now,
                aud=TOKEN_EXCHANGE_AUDIENCE,
                sub=identity.object_id,
                appid=identity.app_id,
                oid=identity.object_id,
            )
        )

    def _mint(self, realm: Realm, now: float, **claims: Any) -> str:
        """A token of this tenant's issuer, valid for the service's token lifetime from ``now``."""
        return self.issuer.mint(
            issuer=realm.issuer, tenant_id=realm.tenant_id, now=now, lifetime=self.token_lifetime, **claims
        )

    def _mint_app(self, realm: Realm, now: float, *, aud: str, sub: str, appid: str, oid: str, **extra: Any) -> str:
        """An app-only token (T1, T2 or a resource token): ``idtyp=app``, certificate-authenticated client."""
        return self._mint(
            realm,
            now,
            aud=aud,
            sub=sub,
            appid=appid,
            azp=appid,
            oid=oid,
            idtyp="app",
            appidacr="2",
            **extra,
        )

    def _hop3(self, identity: AgentIdentity, form: Mapping[str, str], realm: Realm, now: float) -> dict[str, Any]:
        t2 = form.get("user_federated_identity_credential")
        if not t2:
            raise missing_parameter("user_federated_identity_credential")
        token_checks.verify_t2(self.issuer, t2, identity, realm, now)

        requested_use = form.get("requested_token_use")
        if requested_use is not None and requested_use != "on_behalf_of":
            raise StsError(
                9002313,
                "invalid_request",
                f"Invalid request: requested_token_use '{requested_use}' is not supported (use 'on_behalf_of').",
            )
        user_id, username = form.get("user_id"), form.get("username")
        if user_id and username:
            raise StsError(
                9002313,
                "invalid_request",
                "Invalid request. Request is malformed or invalid: send either 'user_id' or 'username', not both.",
            )
        if not user_id and not username:
            raise missing_parameter("user_id")
        if user_id:
            if "@" in user_id:
                raise StsError(
                    50000,
                    "invalid_grant",
                    f"There was an error issuing a token: user_id '{user_id}' is a UPN, but user_id takes the "
                    "user's object id; send a UPN as 'username'.",
                )
            user = self.tenant.user(user_id, include_hidden=False)
            lookup = user_id
        else:
            user = self.tenant.user_by_upn(str(username), include_hidden=False)
            lookup = str(username)
        if user is None:
            raise user_not_found(lookup, realm.tenant_id)
        if user.identity_parent_id != identity.object_id:
            raise StsError(
                70000,
                "invalid_grant",
                f"The Agent User {user.object_id} belongs to another Agent Identity; Agent Identity "
                f"{identity.app_id} cannot act as it.",
            )

        asked_oidc = [s for s in form["scope"].split() if s in _OIDC_SCOPES]
        if not any(s not in _OIDC_SCOPES for s in form["scope"].split()) and "openid" in asked_oidc:
            # Sign-in only (upstream HWL Learning #40: user_fic + scope=openid -> 200 with an id_token
            # whose aud is the Agent Identity): no resource scope, so no consent to check.
            return self._user_token(
                realm, now, user, client_id=identity.app_id, appidacr="2",
                scp=[s for s in _SCP_OIDC if s in asked_oidc], oidc=[], id_token=True,
            )  # fmt: skip
        resource, wanted = self._user_scopes(form["scope"], identity)
        granted = self.tenant.consented_scopes(identity.app_id, resource, user.object_id)
        if not granted or not (wanted == {".default"} or wanted <= granted):
            missing = sorted(wanted - granted) if wanted != {".default"} else [".default"]
            raise StsError(
                65001,
                "invalid_grant",
                f"The user or administrator has not consented to use the application with ID '{identity.app_id}' "
                f"named '{identity.display_name}'. Missing consent for {resource}: {', '.join(missing)}.",
            )
        return self._user_token(
            realm,
            now,
            user,
            client_id=identity.app_id,
            appidacr="2",
            # Entra lists the asked OIDC scopes in scp too (openid profile email; upstream HWL:385-395).
            scp=[*sorted(granted if wanted == {".default"} else wanted), *(s for s in _SCP_OIDC if s in asked_oidc)],
            oidc=[s for s in asked_oidc if s not in _SCP_OIDC],
            id_token=True,
        )

    def _user_scopes(self, scope: str, identity: AgentIdentity) -> tuple[str, set[str]]:
        resources: set[str] = set()
        wanted: set[str] = set()
        for item in scope.split():
            if item in _OIDC_SCOPES:
                continue
            resource, permission = _split_scope(item)
            resources.add(GRAPH_RESOURCE if resource in _GRAPH_RESOURCES else resource)
            wanted.add(permission)
        if not wanted:
            raise StsError(
                70011,
                "invalid_scope",
                f"The provided value for the input parameter 'scope' is not valid for {identity.app_id}: "
                "name a resource scope (for example https://graph.microsoft.com/.default).",
            )
        if len(resources) != 1 or (".default" in wanted and len(wanted) > 1):
            raise StsError(
                70011,
                "invalid_scope",
                f"The provided value for the input parameter 'scope' is not valid: the scope '{scope}' mixes "
                "resources or combines '.default' with named scopes.",
            )
        resource = resources.pop()
        # First-party resources (Graph, Azure Storage, ...) have a principal in every tenant: a
        # scope for one is a consent question (AADSTS65001, upstream HWL Learning #34), never 500011.
        known = first_party_resource(resource)
        if known is None:
            raise resource_not_found(resource, self.tenant.tenant_id)
        return known, wanted

    def hop_hint(self, form: Mapping[str, str]) -> int | None:
        """Which hop a refused (or faulted) request was attempting, for the stats."""
        client_id = form.get("client_id") or ""
        if form.get("grant_type") == "user_fic":
            return 3
        if self.tenant.agent_identity(client_id) is not None:
            return 2
        if "fmi_path" in form:
            return 1
        return None

    def _token_response(self, access_token: str) -> dict[str, Any]:
        return {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": access_token,
        }
