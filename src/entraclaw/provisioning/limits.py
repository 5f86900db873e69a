"""Entra's limits on a Blueprint's certificates, checked before a write instead of failing half-way.

- **How many.** "There's a global limit of about 1000 items across all the collection properties on
  the app object" (Validation differences by supported account types,
  https://learn.microsoft.com/entra/identity-platform/supported-accounts-validation, linked from
  "Microsoft Entra service limits and restrictions"); past about 600 ``keyCredentials`` Graph answers
  ``400 Directory_ResourceSizeExceeded`` (microsoftgraph/microsoft-graph-docs#21469: the limit is
  the object's size). Every device on a Blueprint adds one certificate, so setup stops a device at
  :data:`KEY_CREDENTIALS_GUARD` certificates, before Graph would, and says what to do.
- **How long.** A tenant's app management policy (``GET /policies/defaultAppManagementPolicy``,
  ``applicationRestrictions.keyCredentials`` with ``restrictionType: asymmetricKeyLifetime`` and
  ``maxLifetime``) refuses longer-lived certificates with ``CredentialInvalidLifetimeAsPerAppPolicy``.
  Setup and rotate read the policy (``Policy.Read.All``) and issue a certificate inside it; without
  that permission they keep the default lifetime and, if refused, name the policy.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from entraclaw.errors import ConfigurationError, EntraclawError, GraphRequestError
from entraclaw.provisioning.graph import BlueprintInfo, GraphClient

__all__ = [
    "DEFAULT_CERTIFICATE_DAYS",
    "KEY_CREDENTIALS_GUARD",
    "CertificatePolicy",
    "explain_refusal",
    "read_certificate_policy",
    "refuse_if_full",
]

#: Setup stops adding devices here: clear of Graph's refusal past about 600 certificates and of the
#: ~1000-item budget the app object shares with its other collections.
KEY_CREDENTIALS_GUARD = 500
DEFAULT_CERTIFICATE_DAYS = 365
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


@dataclass(frozen=True)
class CertificatePolicy:
    """What the tenant allows a new certificate: its lifetime in days, and which policy said so."""

    days: int = DEFAULT_CERTIFICATE_DAYS
    policy_id: str | None = None
    max_lifetime: str | None = None

    def describe(self) -> str:
        if self.policy_id is None:
            return f"{self.days} days"
        return f"{self.days} days (app management policy {self.policy_id} allows at most {self.max_lifetime})"


def _duration_days(text: str) -> float | None:
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return days + hours / 24 + minutes / 1440 + seconds / 86400


def read_certificate_policy(graph: GraphClient, *, default_days: int = DEFAULT_CERTIFICATE_DAYS) -> CertificatePolicy:
    """The certificate lifetime the tenant's app management policy allows (the default when unreadable)."""
    try:
        body = graph.request("GET", "policies/defaultAppManagementPolicy", what="read the app management policy")
    except GraphRequestError as exc:
        if getattr(exc, "http_status", None) in (400, 403, 404):
            return CertificatePolicy(default_days)  # no Policy.Read.All: a refusal below names the policy
        raise
    if not body.get("isEnabled"):
        return CertificatePolicy(default_days)
    restrictions = body.get("applicationRestrictions") or {}
    now = _dt.datetime.now(_dt.timezone.utc)
    for item in restrictions.get("keyCredentials") or []:
        if not isinstance(item, dict) or item.get("restrictionType") != "asymmetricKeyLifetime":
            continue
        if item.get("state", "enabled") != "enabled":
            continue
        after = item.get("restrictForAppsCreatedAfterDateTime")
        if isinstance(after, str) and after:
            starts = _dt.datetime.fromisoformat(after.replace("Z", "+00:00"))
            if starts.tzinfo is None:
                starts = starts.replace(tzinfo=_dt.timezone.utc)
            if starts > now:
                continue
        longest = _duration_days(str(item.get("maxLifetime") or ""))
        if longest is None:
            continue
        # A day's margin: the certificate starts a few minutes back (clock skew) and must end inside.
        days = max(1, min(default_days, int(longest) - 1))
        return CertificatePolicy(days, str(body.get("id") or "defaultAppManagementPolicy"), str(item["maxLifetime"]))
    return CertificatePolicy(default_days)


def refuse_if_full(blueprint: BlueprintInfo, count: int, *, limit: int = KEY_CREDENTIALS_GUARD) -> None:
    """Refuse, before any write, a device that would take the Blueprint past ``limit`` certificates."""
    if count + 1 <= limit:
        return
    raise ConfigurationError(
        f"Blueprint {blueprint.app_id} already holds {count} certificates; one more would pass the {limit} "
        "setup allows (Entra refuses an application object past about 600 certificates, "
        "Directory_ResourceSizeExceeded, and about 1000 items across its collections).",
        remedy=(
            "Remove the expired certificates of retired devices with `entraclaw doctor --prune-expired` and an "
            "admin sign-in (valid ones: Entra admin center > App registrations > Certificates & secrets), or put "
            "this device on a Blueprint of its own with `entraclaw setup --blueprint-name`."
        ),
        client_id=blueprint.app_id,
    )


def explain_refusal(
    exc: GraphRequestError, blueprint: BlueprintInfo, *, certificate: str, policy_fix: str | None = None
) -> EntraclawError | None:
    """A typed error naming the limit Graph applied to a certificate write, or None for other refusals.

    ``policy_fix`` replaces the lifetime refusal's remedy (rotate as the Blueprint cannot be granted
    Policy.Read.All; an admin rotation reads the policy).
    """
    code = getattr(exc, "code", None)
    if code == "Directory_ResourceSizeExceeded":
        return ConfigurationError(
            f"Graph refused certificate {certificate} on Blueprint {blueprint.app_id}: the application object is "
            "at its size limit (Directory_ResourceSizeExceeded).",
            remedy=(
                "Remove the expired certificates of retired devices with `entraclaw doctor --prune-expired` and an "
                "admin sign-in (valid ones: Entra admin center), or put this device on a Blueprint of its own with "
                "`entraclaw setup --blueprint-name`."
            ),
            client_id=blueprint.app_id,
            thumbprint=certificate,
        )
    if code == "CredentialInvalidLifetimeAsPerAppPolicy":
        named = re.search(r"policy '([^']+)'", str(getattr(exc, "message", "")))
        policy = named.group(1) if named else "the tenant's app management policy"
        return ConfigurationError(
            f"App management policy {policy} refuses certificate {certificate} on Blueprint {blueprint.app_id}: "
            "it lives longer than the policy's asymmetricKeyLifetime allows.",
            remedy=policy_fix
            or (
                "Grant the provisioner Policy.Read.All so that setup can read the allowed lifetime and issue a "
                "certificate inside it, then re-run `entraclaw setup` (or ask an administrator to exempt the "
                "Blueprint from the policy)."
            ),
            client_id=blueprint.app_id,
            thumbprint=certificate,
        )
    return None


def explained(
    action: Callable[[], Any], blueprint: BlueprintInfo, *, certificate: str, policy_fix: str | None = None
) -> Any:
    """``action()``, with a limit refusal turned into the typed error that names it."""
    try:
        return action()
    except GraphRequestError as exc:
        better = explain_refusal(exc, blueprint, certificate=certificate, policy_fix=policy_fix)
        if better is not None:
            raise better from None
        raise
