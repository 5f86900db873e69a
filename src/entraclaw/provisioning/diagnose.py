"""What a failed sign-in really means, before anyone blames a credential.

A token request can fail long before a credential is looked at: the authority does not know the
tenant (the OpenID discovery document is refused), the server's TLS certificate is not trusted,
nothing answers at the host. Only an answer from the token endpoint itself (an ``invalid_client``,
an AADSTS code) says something about the key or the app. setup, rotate and doctor all classify
through :func:`classify` so that each names the flag that is actually wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from entraclaw.errors import ConfigurationError, NetworkError, TokenEndpointUnavailableError, TokenExchangeError

__all__ = ["Cause", "aadsts_text", "check_ca_bundle", "classify", "explain"]

Cause = Literal["tenant", "tls", "unreachable", "unavailable", "network", "authority", "credential"]


def classify(exc: TokenExchangeError) -> Cause:
    """The first thing that went wrong: transport and discovery before credentials."""
    if isinstance(exc, NetworkError):
        kind = getattr(exc, "network_kind", None)
        return "tls" if kind == "tls" else "unreachable" if kind == "connection" else "network"
    if isinstance(exc, TokenEndpointUnavailableError):
        return "unavailable"
    if getattr(exc, "error", None) == "invalid_authority":
        # Entra answers discovery for an unknown tenant with 400 (AADSTS90002); a 404 is a wrong host path.
        return "tenant" if getattr(exc, "http_status", None) in (400, 404) else "authority"
    return "credential"


def aadsts_text(exc: BaseException) -> str:
    """``AADSTS<code>`` when the answer had one, else what the answer was (never "AADSTSNone")."""
    code = getattr(exc, "aadsts_code", None)
    if code is not None:
        return f"AADSTS{code}"
    error = getattr(exc, "error", None)
    return str(error) if error else "no AADSTS code"


def explain(
    exc: TokenExchangeError,
    *,
    who: str,
    tenant_id: str,
    authority_host: str,
    credential_remedy: str,
    tenant_flag: str = "--tenant",
) -> TokenExchangeError:
    """``exc`` re-worded for the person who ran the command: the cause, and the flag that fixes it.

    ``who`` names the identity signing in; ``credential_remedy`` is used only when the token endpoint
    itself refused the credential. The class and structured fields of ``exc`` are kept.
    """
    cause = classify(exc)
    context = {k: v for k, v in exc.context.items() if k != "remedy"}
    if cause == "tenant":
        message = f"{who} could not sign in: the authority {authority_host} does not know tenant {tenant_id}. "
        remedy = (
            f"Check {tenant_flag} (the directory id, or a verified domain of the tenant) and --authority-host; "
            "for the emulator, the tenant_id and base_url `entraclaw emulator serve` printed."
        )
    elif cause == "tls":
        message = f"{who} could not sign in: TLS verification of {authority_host} failed. "
        remedy = (
            "Pass --ca-bundle with the CA that issued the server's certificate (or set ENTRACLAW_CA_BUNDLE); "
            "for the emulator, the ca_bundle line `entraclaw emulator serve` printed. REQUESTS_CA_BUNDLE is "
            "ignored by design."
        )
    elif cause == "unreachable":
        message = f"{who} could not sign in: nothing answered at {authority_host}. "
        remedy = (
            "Check --authority-host and that the server is running and reachable (for the emulator: start "
            "`entraclaw emulator serve` and use the base_url it prints)."
        )
    elif cause == "credential":
        message = f"{who} could not sign in ({aadsts_text(exc)}). "
        remedy = credential_remedy
    else:
        message = f"{who} could not sign in. "
        remedy = exc.remedy
    return type(exc)(message + exc.message, remedy=remedy, **context)


def check_ca_bundle(path: str | None, *, flag: str = "--ca-bundle") -> None:
    """Refuse a CA bundle path that is not a readable file, before any request (requests says only OSError)."""
    if not path:
        return
    bundle = Path(path)
    if bundle.is_file():
        try:
            with bundle.open("rb"):
                return
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
    else:
        reason = "no such file" if not bundle.exists() else "not a file"
    raise ConfigurationError(
        f"The CA bundle {path} ({flag} / ENTRACLAW_CA_BUNDLE) cannot be read: {reason}.",
        remedy="Pass --ca-bundle with an existing PEM file of the CA that issued the server's certificate (for "
        "the emulator: the ca_bundle line `entraclaw emulator serve` printed), or leave it out for a real tenant.",
        path=str(path),
    )
