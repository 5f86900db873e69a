"""How setup, rotate and doctor authenticate to Microsoft Graph as an administrator: the ``GraphAuth`` seam.

Three real implementations, one interface (``token()``, ``invalidate()``):

- :class:`ClientCertificateAuth`: a provisioner app's client credentials with a
  certificate. The key is a :class:`~entraclaw.auth.signer.Signer` (a PEM file,
  or a CNG key through :class:`~entraclaw.cng.CngKeyHandle`); the request goes
  through the same MSAL exchanger as the three hops.
- :class:`DeviceCodeAuth`: MSAL's device-code flow for a delegated admin; the
  instruction line is printed, nothing else.
- :class:`AzureCliAuth`: ``az account get-access-token --resource
  https://graph.microsoft.com``.

Every sign-in path goes through :meth:`GraphAuth.token`, which refuses a token carrying
``Directory.AccessAsUser.All`` before it is used: the Agent ID APIs answer such a token with 403
(real tenant: upstream microsoft/entraclaw docs/runbooks/hard-won-learnings.md, Learning #1; Azure
CLI tokens always carry it), so a run would otherwise stop half-way at its first Agent ID write.

Tokens are cached in memory until five minutes before expiry; none is ever
printed or put in an error.
"""

from __future__ import annotations

import abc
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from entraclaw.auth.jwt_claims import unverified_claims
from entraclaw.auth.signer import Signer, SupportsSigner
from entraclaw.errors import (
    AdminSignInRefusedError,
    ConfigurationError,
    EntraclawError,
    TokenExchangeError,
)
from entraclaw.provisioning.diagnose import explain

__all__ = [
    "DELEGATED_ADMIN_SCOPES",
    "GRAPH_DEFAULT_SCOPE",
    "GRAPH_RESOURCE",
    "AzureCliAuth",
    "ClientCertificateAuth",
    "DeviceCodeAuth",
    "GraphAuth",
    "StaticTokenAuth",
]

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_DEFAULT_SCOPE = f"{GRAPH_RESOURCE}/.default"
# Least-privileged delegated permissions named on each Agent ID API page (not
# Directory.AccessAsUser.All, which those APIs refuse).
DELEGATED_ADMIN_SCOPES: tuple[str, ...] = (
    f"{GRAPH_RESOURCE}/AgentIdentityBlueprint.Create",
    # addKey / removeKey and PATCH keyCredentials on a Blueprint (agentidentityblueprint-addkey: least privileged).
    f"{GRAPH_RESOURCE}/AgentIdentityBlueprint.AddRemoveCreds.All",
    f"{GRAPH_RESOURCE}/AgentIdentityBlueprintPrincipal.Create",
    f"{GRAPH_RESOURCE}/AgentIdentity.Create.All",
    f"{GRAPH_RESOURCE}/AgentIdUser.ReadWrite.All",
    f"{GRAPH_RESOURCE}/Application.ReadWrite.All",
    f"{GRAPH_RESOURCE}/DelegatedPermissionGrant.ReadWrite.All",
    f"{GRAPH_RESOURCE}/Domain.Read.All",
    # Finding the Agent User (and a sponsor) by UPN before creating it: GET /users?$filter=...
    f"{GRAPH_RESOURCE}/User.Read.All",
)
# "Microsoft Graph Command Line Tools", the public client Microsoft documents for delegated Graph scripts.
GRAPH_CLI_TOOLS_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
_EARLY = 300.0
REFUSED_PERMISSION = "Directory.AccessAsUser.All"


def refuse_unusable_token(token: str, sign_in: str) -> None:
    """Raise when ``token`` carries a permission every Agent ID API refuses (no request is sent with it)."""
    try:
        scopes = str(unverified_claims(token).get("scp", "")).split()
    except (EntraclawError, ValueError):
        return  # not a JWT we can read: Graph judges it
    if REFUSED_PERMISSION in scopes:
        raise AdminSignInRefusedError(
            f"The Graph token from {sign_in} carries {REFUSED_PERMISSION}; every Agent ID API (Blueprint, Agent "
            "Identity, Agent User) answers such a token with 403, so nothing was sent with it.",
            remedy="Sign in without that permission: a provisioner app's certificate (`entraclaw setup "
            "--admin-app-id ID --admin-cert CERT --admin-key KEY`), or a device code through a public client "
            "that was never granted it (`entraclaw setup --device-code --admin-client-id ID`). Azure CLI "
            "tokens always carry it.",
            permission=REFUSED_PERMISSION,
            sign_in=sign_in,
        )


class GraphAuth(abc.ABC):
    """Something that yields a bearer token for Microsoft Graph."""

    description: str = "Graph admin"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._token: str | None = None
        self._expires_on = 0.0

    def token(self) -> str:
        if self._token is None or self._clock() >= self._expires_on - _EARLY:
            token, expires_on = self._acquire()
            refuse_unusable_token(token, self.description)
            self._token, self._expires_on = token, expires_on
        return self._token

    def invalidate(self) -> None:
        self._token = None

    @abc.abstractmethod
    def _acquire(self) -> tuple[str, float]:
        """A fresh token and its expiry (epoch seconds)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class StaticTokenAuth(GraphAuth):
    """A token obtained elsewhere (tests, a pipeline that already holds one)."""

    def __init__(self, token: str, *, expires_on: float | None = None, description: str = "static token") -> None:
        super().__init__()
        self._given = token
        self._given_expiry = expires_on if expires_on is not None else time.time() + 3600
        self.description = description

    def _acquire(self) -> tuple[str, float]:
        return self._given, self._given_expiry


class ClientCertificateAuth(GraphAuth):
    """A provisioner app (client id + certificate) gets an app-only Graph token."""

    def __init__(
        self,
        *,
        authority: str,
        client_id: str,
        signer: Signer | SupportsSigner,
        session: requests.Session,
        scopes: Sequence[str] = (GRAPH_DEFAULT_SCOPE,),
        who: str | None = None,
        credential_remedy: str | None = None,
    ) -> None:
        super().__init__()
        from entraclaw.auth.adapters import client_assertion_callable
        from entraclaw.auth.exchange import MsalExchanger

        self.client_id = client_id
        self.description = f"provisioner app {client_id} (certificate)"
        # Who signs in and what fixes a refused credential: rotate --as-blueprint signs in as the
        # Blueprint with the device key and has no --admin-* flags to point at.
        self._who = who or f"The provisioner app {client_id} (--admin-app-id)"
        self._credential_remedy = credential_remedy or (
            "Check that --admin-app-id, --admin-cert and --admin-key belong to one provisioner app of this tenant "
            "and that the certificate is registered on it (for the emulator: the admin_* lines `entraclaw "
            "emulator serve` printed for this tenant)."
        )
        self._authority = authority
        self._exchanger = MsalExchanger(authority, session=session)
        self._assertion = client_assertion_callable(signer, client_id, self._exchanger.token_endpoint)
        self._scopes = list(scopes)

    @classmethod
    def from_files(
        cls, *, authority: str, client_id: str, cert_path: str, key_path: str, session: requests.Session
    ) -> ClientCertificateAuth:
        from entraclaw.auth.signer import PemSigner

        try:
            with open(key_path, "rb") as handle:
                key_pem = handle.read()
            with open(cert_path, "rb") as handle:
                cert_pem = handle.read()
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read the provisioner certificate/key ({exc.filename}): {exc.strerror}.",
                remedy="Pass --admin-cert and --admin-key with the provisioner app's certificate and PEM key.",
                path=str(exc.filename),
            ) from None
        try:
            signer = PemSigner.from_pem(key_pem, certificate=cert_pem)
        except EntraclawError as exc:
            # The signer's own remedy speaks of keystore entries; here the user passed two files by flag.
            raise type(exc)(
                f"The provisioner key --admin-key {key_path} with certificate --admin-cert {cert_path} cannot be "
                f"used: {exc.message}",
                remedy="Pass the provisioner app's PEM certificate and its PEM private key "
                "(`entraclaw emulator serve` prints them as admin_cert and admin_key).",
                path=str(key_path),
            ) from None
        return cls(authority=authority, client_id=client_id, signer=signer, session=session)

    def _acquire(self) -> tuple[str, float]:
        try:
            response = self._exchanger.client_credentials(
                hop=None, client_id=self.client_id, scopes=self._scopes, client_assertion=self._assertion
            )
        except TokenExchangeError as exc:
            # Discovery, TLS and connection failures come before any credential check: name those first.
            host, _, tenant = self._authority.rstrip("/").rpartition("/")
            raise explain(
                exc, who=self._who, tenant_id=tenant, authority_host=host, credential_remedy=self._credential_remedy
            ) from None
        token = str(response["access_token"])
        return token, self._clock() + float(response.get("expires_in") or 3599)


class DeviceCodeAuth(GraphAuth):
    """MSAL device-code flow for a delegated admin; ``echo`` shows the sign-in instruction."""

    def __init__(
        self,
        *,
        authority: str,
        client_id: str = GRAPH_CLI_TOOLS_CLIENT_ID,
        session: requests.Session,
        scopes: Sequence[str] = DELEGATED_ADMIN_SCOPES,
        echo: Callable[[str], None] = print,
        microsoft_authority: bool = True,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.description = f"delegated admin (device code, client {client_id})"
        self._authority = authority
        self._session = session
        self._scopes = list(scopes)
        self._echo = echo
        self._microsoft = microsoft_authority
        self._app: Any = None

    def _public_app(self) -> Any:
        if self._app is None:
            import msal

            kwargs: dict[str, Any] = {}
            if not self._microsoft:
                kwargs.update(validate_authority=False, instance_discovery=False)
            self._app = msal.PublicClientApplication(
                self.client_id, authority=self._authority, http_client=self._session, **kwargs
            )
        return self._app

    def _acquire(self) -> tuple[str, float]:
        app = self._public_app()
        # A second token in the same run (expiry, a 401) comes from MSAL's refresh token, not
        # from a second sign-in prompt.
        for account in app.get_accounts():
            silent = app.acquire_token_silent(self._scopes, account=account)
            if silent and "access_token" in silent:
                return str(silent["access_token"]), self._clock() + float(silent.get("expires_in") or 3599)
        try:
            flow = app.initiate_device_flow(scopes=self._scopes)
        except (requests.exceptions.RequestException, ValueError) as exc:
            raise TokenExchangeError(
                f"Device-code sign-in at {self._authority} could not start ({type(exc).__name__}).",
                remedy="Check the tenant id / authority host and network access, then re-run.",
                hop=None,
                client_id=self.client_id,
                error="device_flow_failed",
                http_status=None,
            ) from None
        if "user_code" not in flow:
            raise TokenExchangeError(
                f"Device-code sign-in at {self._authority} was refused: {flow.get('error')} "
                f"{str(flow.get('error_description', ''))[:200]}.",
                remedy="Check that the client id allows public-client (device code) flows in this tenant.",
                hop=None,
                client_id=self.client_id,
                error=str(flow.get("error")),
                http_status=None,
            )
        self._echo(str(flow.get("message") or f"Sign in with code {flow['user_code']}"))
        result = app.acquire_token_by_device_flow(flow)
        if "access_token" not in result:
            raise TokenExchangeError(
                f"Device-code sign-in for client {self.client_id} failed: {result.get('error')} "
                f"{str(result.get('error_description', ''))[:200]}.",
                remedy="Sign in again with an account that holds the Agent ID administrator permissions.",
                hop=None,
                client_id=self.client_id,
                error=str(result.get("error")),
                http_status=None,
            )
        return str(result["access_token"]), self._clock() + float(result.get("expires_in") or 3599)


class AzureCliAuth(GraphAuth):
    """The Azure CLI's token for Graph (``az account get-access-token``)."""

    def __init__(
        self,
        *,
        tenant: str | None = None,
        az: str | None = None,
        runner: Callable[[list[str]], subprocess.CompletedProcess[str]] | None = None,
    ) -> None:
        super().__init__()
        self.description = "Azure CLI (az account get-access-token)"
        self._tenant = tenant
        self._az = az
        self._runner = runner or self._run

    @staticmethod
    def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603

    def _acquire(self) -> tuple[str, float]:
        az = self._az or shutil.which("az") or shutil.which("az.cmd")
        if az is None:
            raise ConfigurationError(
                "The Azure CLI (az) is not on PATH, so --azure-cli cannot get a Graph token.",
                remedy=(
                    "Install the Azure CLI and run `az login`, or use --admin-cert/--admin-key "
                    "(provisioner app) or --device-code instead."
                ),
            )
        argv = [az, "account", "get-access-token", "--resource", GRAPH_RESOURCE, "--output", "json"]
        if self._tenant:
            argv += ["--tenant", self._tenant]
        try:
            done = self._runner(argv)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigurationError(
                f"Running {az} failed ({type(exc).__name__}).",
                remedy="Check the Azure CLI installation (`az version`), then `az login`.",
            ) from None
        if done.returncode != 0:
            first = (done.stderr or "").strip().splitlines()
            hint = first[0][:200] if first else f"exit code {done.returncode}"
            raise ConfigurationError(
                f"`az account get-access-token` failed: {hint}.",
                remedy="Run `az login` (with --tenant for the right tenant) and re-run.",
            )
        try:
            document = json.loads(done.stdout)
            token = str(document["accessToken"])
        except (ValueError, KeyError, TypeError):
            raise ConfigurationError(
                "`az account get-access-token` printed something that is not its JSON answer.",
                remedy="Update the Azure CLI (`az upgrade`) and re-run.",
            ) from None
        expires = document.get("expires_on")
        try:
            expires_on = float(expires) if expires is not None else self._clock() + 3000
        except (TypeError, ValueError):
            expires_on = self._clock() + 3000
        return token, expires_on
