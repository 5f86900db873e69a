"""Turning token-endpoint failures into typed errors with a remedy.

Entra answers a refused exchange with a JSON body (``error``,
``error_description`` starting ``AADSTS<code>:``, ``error_codes``,
``trace_id``, ``correlation_id``). :func:`exchange_error` keeps the fields a
caller can act on and picks a remedy for the codes people actually hit in the
three-hop flow. Descriptions are scrubbed of anything shaped like a JWT and of
every secret the caller names, because a server may echo what it was sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import requests

from entraclaw.errors import (
    NetworkError,
    ProxyAuthenticationError,
    TokenEndpointUnavailableError,
    TokenExchangeError,
)

__all__ = [
    "AADSTS_REMEDIES",
    "HOP_LABELS",
    "RedactTokensFilter",
    "exchange_error",
    "install_log_redaction",
    "network_error",
    "parse_aadsts_code",
    "redact",
    "unavailable_error",
]

HOP_LABELS: dict[int | None, str] = {
    1: "Hop 1 (Blueprint client credentials with fmi_path -> T1)",
    2: "Hop 2 (Agent Identity with T1 -> T2)",
    3: "Hop 3 (Agent Identity user_fic with T2 -> Agent User token T3)",
    None: "Token request",
}

#: Remedies for the AADSTS codes the Agent User flow runs into. Keys are the
#: numeric codes; text says what to change, not what went wrong.
AADSTS_REMEDIES: dict[int, str] = {
    700027: (
        "The Blueprint's key is not registered or the signature does not verify: `entraclaw doctor` "
        "shows which; `entraclaw setup` with an admin sign-in registers this device's certificate again; "
        "ENTRACLAW_BLUEPRINT_CERT_X5T_S256 must be that certificate's x5t#S256."
    ),
    7000274: "The registered certificate is expired or not yet valid: mint a new one and upload it.",
    700024: (
        "The client assertion is outside its valid time range: sync this machine's clock (w32tm /resync, "
        "timedatectl) and retry; assertions live at most 10 minutes."
    ),
    65001: (
        "The Agent Identity has no consent for the requested scopes: grant admin consent to the Agent "
        "Identity for the resource (oauth2PermissionGrant) or request only consented scopes."
    ),
    50034: "The Agent User does not exist: check ENTRACLAW_AGENT_USER_ID (object id) or the UPN and the tenant.",
    50000: (
        "Entra could not issue the user token: check that ENTRACLAW_AGENT_USER_ID is the Agent User's "
        "object id (a UPN must be passed as username, not as the object id) and that the user belongs "
        "to this Agent Identity."
    ),
    700016: (
        "The application was not found in the tenant: check the client id (Blueprint app id for Hop 1, "
        "Agent Identity app id for Hops 2-3) and ENTRACLAW_TENANT_ID."
    ),
    7000216: "The request carried no client credential: pass a signer (Hop 1) or T1 (Hops 2-3) as client_assertion.",
    9002324: "Send only a client_assertion; Agent identities cannot use client secrets.",
    7000215: "Agent identities authenticate with certificates; remove the client secret.",
    50027: (
        "A JWT in the request is invalid or expired (the client assertion or a T1/T2 exchange token): "
        "drop cached exchange tokens and retry; check the Agent Identity belongs to this Blueprint."
    ),
    700213: (
        "T1 does not match this Agent Identity: Hop 1's fmi_path must be the Agent Identity's app id and "
        "the Agent Identity's parent must be this Blueprint."
    ),
    700021: "The client assertion's iss/sub must equal the client id; check which app id signs which hop.",
    700023: "The client assertion's aud must be the tenant's token endpoint; check the authority URL.",
    90002: "The tenant was not found: check ENTRACLAW_TENANT_ID and the authority host.",
    70011: (
        "The scope is not valid for this grant: Hops 1-2 of the Agent User flow ask for "
        "api://AzureADTokenExchange/.default; an app-only token takes one '<resource>/.default' scope."
    ),
    500011: "The resource in the scope is not in the tenant: check the scope's resource URI.",
    50013: "The exchange token is expired, replayed or for another app: fetch fresh tokens and retry.",
    70000: "The Agent User's identity parent is a different Agent Identity: use that Agent Identity.",
}

_THROTTLED_REMEDY = (
    "The token endpoint throttled this client (HTTP 429) through every retry: wait for Retry-After, "
    "reduce the request rate (cache tokens; one credential per process) and retry."
)
_UNAVAILABLE_REMEDY = (
    "The token endpoint kept failing (HTTP 5xx) through every retry: retry later; if it persists, "
    "check the service health of the authority."
)
_GENERIC_REMEDY = (
    "Look the AADSTS code up at https://login.microsoftonline.com/error?code=<code> and use the "
    "correlation id when contacting support."
)

_AADSTS_IN_TEXT = re.compile(r"AADSTS(\d{4,9})")
# A JWS compact serialisation starts with a base64url JSON header: "eyJ".
# Truncated tokens (a body cut mid-token) have no dot, so one is not required.
_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{6,}(?:\.[A-Za-z0-9_-]*)*")
# Entra appends these to every description; they are kept as fields instead.
_DESCRIPTION_TAIL = re.compile(r"\s*(Trace ID:|Correlation ID:|Timestamp:).*$", re.DOTALL)
_MAX_DESCRIPTION = 400


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every JWT-shaped run and every given secret replaced by ``[redacted]``."""
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
    return _JWT_LIKE.sub("[redacted]", text)


class RedactTokensFilter(logging.Filter):
    """Scrubs JWT-shaped text from records of a library logger.

    MSAL logs the raw body of a token response it cannot parse (at ERROR);
    a body cut mid-token would put a token prefix in the application's logs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        if "eyJ" in message:
            record.msg = redact(message)
            record.args = None
        return True


_FILTER = RedactTokensFilter()


def install_log_redaction(prefix: str = "msal") -> None:
    """Attach :class:`RedactTokensFilter` to every existing logger under ``prefix`` (idempotent)."""
    names = {prefix, *(n for n in logging.root.manager.loggerDict if n.startswith(prefix + "."))}
    if prefix == "msal":
        # Created lazily by MSAL's OAuth2 client, which is the one that logs raw bodies.
        names.add("msal.oauth2cli.oauth2")
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def parse_aadsts_code(body: Mapping[str, Any]) -> int | None:
    """The AADSTS code from ``error_codes`` or, failing that, from the description."""
    codes = body.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int) and not isinstance(codes[0], bool):
        return codes[0]
    description = body.get("error_description")
    if isinstance(description, str):
        match = _AADSTS_IN_TEXT.search(description)
        if match:
            return int(match.group(1))
    return None


def _text_field(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) and value else None


# Entra's error codes are snake_case words and its ids are GUIDs. Anything else in
# those fields comes from a broken or hostile server and is dropped rather than
# echoed into an exception (it could carry a token).
_ERROR_WORD = re.compile(r"[a-z][a-z0-9_]{0,63}")
_ID_TEXT = re.compile(r"[0-9A-Za-z-]{1,40}")  # a GUID is 36


def _shaped_field(body: Mapping[str, Any], name: str, shape: re.Pattern[str]) -> str | None:
    value = _text_field(body, name)
    return value if value is not None and shape.fullmatch(value) else None


def _description(body: Mapping[str, Any], secrets: Iterable[str]) -> str:
    raw = _text_field(body, "error_description") or ""
    text = _DESCRIPTION_TAIL.sub("", raw).strip()
    text = _AADSTS_IN_TEXT.sub("", text, count=1).lstrip(": ").strip()
    text = redact(text, secrets)
    if len(text) > _MAX_DESCRIPTION:
        text = text[:_MAX_DESCRIPTION].rstrip() + "..."
    return text


def exchange_error(
    body: Mapping[str, Any],
    *,
    hop: int | None,
    client_id: str,
    http_status: int | None,
    secrets: Iterable[str] = (),
) -> TokenExchangeError:
    """A :class:`TokenExchangeError` for an error body from the token endpoint."""
    secrets = tuple(secrets)
    code = parse_aadsts_code(body)
    error = _shaped_field(body, "error", _ERROR_WORD) or "unknown_error"
    description = _description(body, secrets)
    correlation_id = _shaped_field(body, "correlation_id", _ID_TEXT)
    trace_id = _shaped_field(body, "trace_id", _ID_TEXT)
    label = HOP_LABELS.get(hop, HOP_LABELS[None])
    code_text = f"AADSTS{code} " if code is not None else ""
    status_text = f", HTTP {http_status}" if http_status is not None else ""
    message = f"{label} for client {client_id} was refused: {code_text}{error}{status_text}"
    message += f": {description}" if description else "."
    if correlation_id:
        message += f" (correlation id {correlation_id})"
    remedy = AADSTS_REMEDIES.get(code or -1)
    if remedy is None:
        remedy = _THROTTLED_REMEDY if http_status == 429 else _GENERIC_REMEDY
    return TokenExchangeError(
        message,
        remedy=remedy,
        hop=hop,
        client_id=client_id,
        error=error,
        aadsts_code=code,
        description=description,
        correlation_id=correlation_id,
        trace_id=trace_id,
        http_status=http_status,
    )


def unavailable_error(
    *,
    hop: int | None,
    client_id: str,
    http_status: int | None,
    attempts: int,
    retry_after: float | None,
    body: Mapping[str, Any] | None = None,
) -> TokenEndpointUnavailableError:
    """The endpoint stayed throttled or failing; ``retry_after`` is the server's last hint."""
    body = body if isinstance(body, Mapping) else {}
    label = HOP_LABELS.get(hop, HOP_LABELS[None])
    kind = "throttled (HTTP 429)" if http_status == 429 else f"unavailable (HTTP {http_status})"
    wait = f"; the server asked to wait {retry_after:g} s" if retry_after is not None else ""
    return TokenEndpointUnavailableError(
        f"{label} for client {client_id}: the token endpoint stayed {kind} after {attempts} attempt(s){wait}.",
        remedy=_THROTTLED_REMEDY if http_status == 429 else _UNAVAILABLE_REMEDY,
        hop=hop,
        client_id=client_id,
        # The same shape check as exchange_error: a hostile 5xx body must not put a token
        # into the exception's fields (and so into pickles and logs).
        error=_shaped_field(body, "error", _ERROR_WORD) or ("throttled" if http_status == 429 else "server_error"),
        aadsts_code=parse_aadsts_code(body),
        correlation_id=_shaped_field(body, "correlation_id", _ID_TEXT),
        trace_id=_shaped_field(body, "trace_id", _ID_TEXT),
        http_status=http_status,
        attempts=attempts,
        retry_after=retry_after,
    )


def _network_kind(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls", (
            "TLS verification failed: trust the authority's CA with ENTRACLAW_CA_BUNDLE in the .env or the "
            "environment (setup/rotate/doctor: --ca-bundle); for the emulator, the ca_bundle that "
            "`entraclaw emulator serve` printed. REQUESTS_CA_BUNDLE is ignored by design; in Python, pass a "
            "session that verifies with that CA (the emulator's emu.session())."
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout", "The token endpoint did not answer in time: check connectivity or raise the timeout."
    if isinstance(exc, requests.exceptions.ProxyError):
        from entraclaw.platform.proxy import proxy_failure

        failed = proxy_failure(exc)
        where = f"the proxy {failed.proxy} (from {failed.source})" if failed is not None else "the proxy"
        if failed is not None and failed.auth_required:
            return "proxy_auth", (
                f"{where} asks for credentials (HTTP 407): put them in the proxy URL, "
                "http://USER:PASSWORD@host:port, in ENTRACLAW_PROXY (setup/rotate/doctor: --proxy) or "
                "HTTPS_PROXY; only Basic proxy authentication is supported. `entraclaw doctor` shows the proxy in use."
            )
        return "proxy", (
            f"{where} could not be reached or refused the tunnel: start it or fix its address in ENTRACLAW_PROXY "
            "(setup/rotate/doctor: --proxy) or HTTPS_PROXY; set ENTRACLAW_PROXY=direct to go without it, or list "
            "the host in NO_PROXY. `entraclaw doctor` shows the proxy in use."
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection", (
            "Could not connect to the token endpoint (refused, reset or DNS failure): check the authority "
            "URL and network access; behind a proxy set ENTRACLAW_PROXY (setup/rotate/doctor: --proxy) or "
            "HTTPS_PROXY, since entraclaw goes direct when neither (nor the Windows system proxy) names one."
        )
    return "other", (
        "Check network access to the authority host; behind a proxy set ENTRACLAW_PROXY (setup/rotate/doctor: "
        "--proxy) or HTTPS_PROXY, then retry."
    )


_OS_REASON = re.compile(r"(\[Errno -?\d+\] [^'\")]+|certificate verify failed[^'\")]*|Read timed out|timed out)")


def _reason(exc: BaseException) -> str:
    # requests nests the OS reason several layers deep in one long string; the
    # innermost "[Errno 111] Connection refused" is the part a human needs.
    match = _OS_REASON.search(str(exc))
    return redact(match.group(1).strip()) if match else type(exc).__name__


def network_error(exc: BaseException, *, hop: int | None, client_id: str, url: str, attempts: int = 1) -> NetworkError:
    """A :class:`NetworkError` for a request that got no HTTP answer. The URL carries no secret."""
    from entraclaw.platform.proxy import proxy_failure

    kind, remedy = _network_kind(exc)
    label = HOP_LABELS.get(hop, HOP_LABELS[None])
    failed = proxy_failure(exc)
    through = f" through the proxy {failed.proxy} (from {failed.source})" if failed is not None else ""
    cls = ProxyAuthenticationError if kind == "proxy_auth" else NetworkError
    return cls(
        f"{label} for client {client_id} got no answer from {url}{through} ({kind} error: "
        f"{'HTTP 407 Proxy Authentication Required' if kind == 'proxy_auth' else _reason(exc)}) "
        f"after {attempts} attempt(s).",
        remedy=remedy,
        hop=hop,
        client_id=client_id,
        error=f"network_{kind}",
        aadsts_code=None,
        correlation_id=None,
        trace_id=None,
        http_status=None,
        network_kind=kind,
        url=url,
        proxy=failed.proxy if failed is not None else None,
        attempts=attempts,
    )
