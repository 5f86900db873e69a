"""Limits on an application's certificates: object size and the tenant's app management policy.

- **Object size.** "There's a global limit of about 1000 items across all the collection properties
  on the app object" (Validation differences by supported account types,
  https://learn.microsoft.com/entra/identity-platform/supported-accounts-validation; "Microsoft Entra
  service limits and restrictions" points there). Past about 600 ``keyCredentials`` Graph answers
  ``400 Directory_ResourceSizeExceeded`` "The size of the object has exceeded its limit. Please
  reduce the number of values and retry your request." (microsoftgraph/microsoft-graph-docs#21469).
  The real limit is on the object's size; the emulator counts certificates
  (``max_key_credentials``, default 600, ``serve --max-key-credentials``).
- **App management policy.** ``tenantAppManagementPolicy`` (``GET /policies/defaultAppManagementPolicy``,
  https://learn.microsoft.com/graph/api/tenantappmanagementpolicy-get) can restrict
  ``keyCredentials`` with ``restrictionType: asymmetricKeyLifetime`` and an ISO 8601 ``maxLifetime``
  (keyCredentialConfiguration). A certificate living longer is refused with ``400
  CredentialInvalidLifetimeAsPerAppPolicy`` "Credential lifetime exceeds the max value allowed as per
  assigned policy '{id}'." (details ``InvalidKeyEndDate``, target ``EndDate``; seen in
  OfficeDev/microsoft-365-agents-toolkit#10998). ``serve --max-certificate-lifetime-days``.
  ``trustedCertificateAuthority`` restrictions (beta) are not modelled.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from entraclaw.emulator.graph._core import Context, GraphError, GraphResponse, bad_request, entity, require
from entraclaw.emulator.tenant import Application, KeyCredential

__all__ = [
    "DEFAULT_MAX_KEY_CREDENTIALS",
    "POLICY_ID",
    "AppLimits",
    "check_key_credentials",
    "handle_policies",
]

DEFAULT_MAX_KEY_CREDENTIALS = 600
#: The tenant-wide default policy's id is fixed in Graph's examples; the emulator uses one stable GUID.
POLICY_ID = "00000000-0000-0000-0000-000000000000"
_POLICY_READ = ("Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration")


@dataclass
class AppLimits:
    """What the emulated tenant enforces on an application's ``keyCredentials``."""

    max_key_credentials: int = DEFAULT_MAX_KEY_CREDENTIALS
    #: tenantAppManagementPolicy asymmetricKeyLifetime; None: no lifetime restriction (the default policy).
    max_certificate_lifetime_days: float | None = None

    def policy_json(self) -> dict[str, Any]:
        restrictions: list[dict[str, Any]] = []
        if self.max_certificate_lifetime_days is not None:
            restrictions.append(
                {
                    "restrictionType": "asymmetricKeyLifetime",
                    "state": "enabled",
                    "maxLifetime": _iso_duration(self.max_certificate_lifetime_days),
                    "restrictForAppsCreatedAfterDateTime": "2000-01-01T00:00:00Z",
                }
            )
        return {
            "id": POLICY_ID,
            "displayName": "Default app management tenant policy",
            "description": "Default tenant policy that enforces app management restrictions on applications "
            "and service principals.",
            "isEnabled": bool(restrictions),
            "applicationRestrictions": {"passwordCredentials": [], "keyCredentials": restrictions},
            "servicePrincipalRestrictions": {"passwordCredentials": [], "keyCredentials": []},
        }


class DetailedGraphError(GraphError):
    """A Graph error whose body carries ``details`` (Graph's array of inner errors)."""

    def __init__(self, status: int, code: str, message: str, *, details: list[dict[str, str]]) -> None:
        super().__init__(status, code, message)
        self.details = details


def _iso_duration(days: float) -> str:
    whole = int(days)
    seconds = round((days - whole) * 86400)
    return f"P{whole}D" + (f"T{seconds}S" if seconds else "")


def _limits(ctx: Context) -> AppLimits:
    limits = getattr(ctx.service, "app_limits", None)
    return limits if isinstance(limits, AppLimits) else AppLimits()


def check_key_credentials(ctx: Context, app: Application, creds: Sequence[KeyCredential]) -> None:
    """Refuse a new ``keyCredentials`` list as Graph would: too many values, or a certificate the policy forbids."""
    limits = _limits(ctx)
    if len(creds) > limits.max_key_credentials:
        raise bad_request(
            "The size of the object has exceeded its limit. Please reduce the number of values and retry your request.",
            "Directory_ResourceSizeExceeded",
        )
    if limits.max_certificate_lifetime_days is None:
        return
    longest = _dt.timedelta(days=limits.max_certificate_lifetime_days)
    existing = {c.key_id for c in app.key_credentials}
    for cred in creds:
        if cred.key_id not in existing and cred.end - cred.start > longest:
            message = f"Credential lifetime exceeds the max value allowed as per assigned policy '{POLICY_ID}'."
            raise DetailedGraphError(
                400,
                "CredentialInvalidLifetimeAsPerAppPolicy",
                message,
                details=[{"code": "InvalidKeyEndDate", "message": message, "target": "EndDate"}],
            )


def handle_policies(ctx: Context) -> GraphResponse:
    """``GET /policies/defaultAppManagementPolicy`` (tenantAppManagementPolicy)."""
    seg = ctx.req.segments
    if len(seg) != 2 or seg[1] != "defaultAppManagementPolicy":
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{seg[-1]}'.")
    if ctx.req.method != "GET":
        raise GraphError(405, "Request_BadRequest", f"The {ctx.req.method} method is not modelled on policies.")
    require(ctx.caller, app=_POLICY_READ, delegated=_POLICY_READ)
    return GraphResponse(200, entity(ctx, "policies/defaultAppManagementPolicy", _limits(ctx).policy_json()))
