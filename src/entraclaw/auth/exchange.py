"""One token request through MSAL, with retry, Retry-After and typed errors.

:class:`MsalExchanger` owns the ``ConfidentialClientApplication`` objects of one
credential and runs single hops:

- ``client_credentials`` (Hops 1 and 2, and the app-only variant) through
  ``acquire_token_for_client`` — with ``fmi_path`` on Hop 1;
- ``user_fic`` (Hop 3) through ``acquire_token_by_user_federated_identity_credential``.

The token protocol is MSAL's; this module adds what a long-running agent needs
around it. Three MSAL behaviours shape it (checked against MSAL 1.39):

1. A 5xx becomes ``MsalServiceError("HTTP Error: 503")`` without headers; a 429
   comes back as the error dict. The real status and Retry-After are read from
   :class:`~entraclaw.auth.msal_http.ObservedHttpClient`.
2. MSAL's ``ThrottledHttpClient`` replays a 429/5xx for Retry-After seconds (5 s
   without one) and a 400 for 60 s, keyed by the request. A retry would then
   never reach the wire, and a fixed consent would stay "missing" for a
   minute. The ``http_cache`` given to MSAL therefore keeps only GETs (the
   OpenID discovery document); Retry-After is honoured here instead, also
   across calls (``not_before`` per client).
3. MSAL's own token cache would hand back an old token when this layer decides
   to refresh; MSAL gets a cache that stores nothing, and
   :mod:`entraclaw.auth.token_cache` is the only cache.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from entraclaw.auth.deadline import current_deadline
from entraclaw.auth.msal_http import DEFAULT_TIMEOUT, ObservedHttpClient
from entraclaw.auth.retry import DEFAULT_RETRY_POLICY, TokenRetryPolicy
from entraclaw.auth.token_errors import (
    HOP_LABELS,
    exchange_error,
    install_log_redaction,
    network_error,
    redact,
    unavailable_error,
)
from entraclaw.errors import ConfigurationError, EntraclawError, TokenExchangeError

__all__ = ["EXCHANGE_SCOPE", "MICROSOFT_AUTHORITY_HOSTS", "MsalExchanger", "normalize_authority"]

logger = logging.getLogger(__name__)

EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"

MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)

AssertionSource = Callable[[], str]

install_log_redaction("msal")


def normalize_authority(tenant: str, authority_host: str = "https://login.microsoftonline.com") -> str:
    """An authority URL from a tenant id/domain (plus host) or from a full authority URL."""
    tenant = tenant.strip()
    if not tenant:
        raise ConfigurationError("The tenant is empty.", remedy="Set ENTRACLAW_TENANT_ID to the directory (tenant) id.")
    if "://" in tenant:
        parts = urlsplit(tenant)
        segments = [s for s in parts.path.split("/") if s]
        if parts.scheme != "https" or not parts.hostname or not segments:
            raise ConfigurationError(
                f"Authority {tenant!r} is not https://HOST/TENANT.",
                remedy="Pass a tenant id, or an authority like https://login.microsoftonline.com/<tenant-id>.",
                authority=tenant,
            )
        return f"https://{parts.netloc}/{segments[0]}"
    host = authority_host.rstrip("/")
    if "://" not in host:
        host = "https://" + host
    if not host.startswith("https://"):
        raise ConfigurationError(
            f"Authority host {authority_host!r} is not https.",
            remedy="Use https://login.microsoftonline.com (or the emulator's base_url).",
            authority=authority_host,
        )
    if "/" in tenant:
        raise ConfigurationError(
            f"Tenant {tenant!r} contains '/'.", remedy="Pass only the tenant id or domain.", tenant=tenant
        )
    return f"{host}/{tenant}"


class _NoTokenCache(msal.TokenCache):  # type: ignore[misc]
    """A token cache that keeps nothing: entraclaw's cache decides when to refresh."""

    def add(self, event: Mapping[str, Any], now: float | None = None) -> None:
        return None


class _GetOnlyHttpCache(dict[str, Any]):
    """MSAL ``http_cache`` that stores no POST answer (see module docstring, point 2)."""

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(key, str) and key.startswith("POST "):
            return
        super().__setitem__(key, value)


def _local_error(
    message: str, *, remedy: str, hop: int | None, client_id: str, error: str, http_status: int | None
) -> TokenExchangeError:
    """A failure found on this side (no AADSTS answer to read): the same fields as a refusal, empty."""
    return TokenExchangeError(
        message,
        remedy=remedy,
        hop=hop,
        client_id=client_id,
        error=error,
        aadsts_code=None,
        correlation_id=None,
        trace_id=None,
        http_status=http_status,
    )


# A compact JWS (RFC 7515 7.1): three base64url runs. Entra's access tokens for Graph and the
# exchange tokens T1/T2 are all JWS; anything else is not passed to the next hop or the caller.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]{2,8192}\.[A-Za-z0-9_-]{2,65536}\.[A-Za-z0-9_-]{0,8192}")
# Entra's lifetimes are 60-90 minutes (configurable up to a day); a month bounds anything sane.
_MAX_EXPIRES_IN = 31 * 86400.0


def _seconds(value: Any) -> float | None:
    """A JSON number (or numeric text) of seconds as a finite float, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,6})?", text):
            return None
        value = text
    if not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _is_compact_jws(token: str) -> bool:
    if not _COMPACT_JWS.fullmatch(token):
        return False
    header = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return False
    return isinstance(decoded, dict) and isinstance(decoded.get("alg"), str)


def _checked_token_response(outcome: Mapping[str, Any]) -> dict[str, Any] | str:
    """The token fields a caller may use, checked; or a phrase saying what is wrong (no values)."""
    token = outcome.get("access_token")
    if not isinstance(token, str) or not token:
        return "has no access_token"
    if not _is_compact_jws(token):
        return "has an access_token that is not a compact JWS"
    expires_in = _seconds(outcome.get("expires_in"))
    if expires_in is None or not 0 < expires_in <= _MAX_EXPIRES_IN:
        return "has no usable expires_in (a positive number of seconds up to 31 days)"
    token_type = outcome.get("token_type")
    checked: dict[str, Any] = {
        "access_token": token,
        "expires_in": expires_in,
        "token_type": token_type if isinstance(token_type, str) and token_type.isalpha() else "Bearer",
    }
    # MSAL turns Entra's refresh_in into an absolute refresh_on (on the real clock); it goes
    # back to a relative refresh_in here so the credential can apply it on its own clock.
    refresh_on = _seconds(outcome.get("refresh_on"))
    if refresh_on is not None:
        refresh_in = refresh_on - time.time()
        if 0 < refresh_in < expires_in:
            checked["refresh_in"] = refresh_in
    return checked


def _is_retryable_network_error(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.SSLError) or getattr(exc, "auth_required", False):
        return False  # a TLS failure or a proxy's 407 is the same on every retry
    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))


class MsalExchanger:
    """Runs token requests for one authority through MSAL over one ``requests.Session``."""

    def __init__(
        self,
        authority: str,
        *,
        session: requests.Session | None = None,
        retry_policy: TokenRetryPolicy = DEFAULT_RETRY_POLICY,
        timeout: float = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.authority = authority.rstrip("/")
        self.token_endpoint = f"{self.authority}/oauth2/v2.0/token"
        host = urlsplit(self.authority).hostname or ""
        self._microsoft = host.lower() in MICROSOFT_AUTHORITY_HOSTS
        self.http = ObservedHttpClient(session if session is not None else requests.Session(), timeout=timeout)
        self.retry_policy = retry_policy
        self._sleep = sleep
        self._clock = clock
        self._http_cache = _GetOnlyHttpCache()
        self._apps: dict[tuple[str, int], msal.ConfidentialClientApplication] = {}
        self._apps_lock = threading.Lock()
        self._current_assertion = threading.local()
        self._capped = threading.local()
        self._not_before: dict[str, float] = {}
        self._not_before_lock = threading.Lock()

    # --- MSAL applications ---------------------------------------------------------

    def _thread_assertion(self) -> str:
        value: str | None = getattr(self._current_assertion, "value", None)
        if value is None:  # pragma: no cover - only reachable if MSAL calls it outside a request
            raise ConfigurationError(
                "No exchange token is set for this request.", remedy="This is a bug in entraclaw; please report it."
            )
        return value

    def _app(
        self, client_id: str, signer: AssertionSource | None, *, hop: int | None
    ) -> msal.ConfidentialClientApplication:
        """The app for ``client_id``; ``signer`` None means "client assertion is an exchange token".

        Building an app fetches the OpenID discovery document, so this is where a 5xx, a
        429, a dropped connection or a malformed document shows up: each is retried under
        the same policy and deadline as a token request, then raised as a typed error.
        """
        key = (client_id, id(signer) if signer is not None else 0)
        with self._apps_lock:
            app = self._apps.get(key)
            if app is not None:
                return app
            url = f"{self.authority}/v2.0/.well-known/openid-configuration"
            attempts = 0
            while True:
                attempts += 1
                app, failure = self._try_app(client_id, signer)
                if app is not None:
                    self._apps[key] = app
                    return app
                # MSAL keeps a good discovery answer for a day; a bad one must not be replayed
                # from its cache on the retry.
                self._http_cache.clear()
                observed = self.http.last
                status = observed.status if observed is not None else None
                retry_after = observed.retry_after if observed is not None else None
                delay: float | None
                if isinstance(failure, requests.exceptions.RequestException):
                    if self._timed_out_on_deadline(failure):
                        raise self._deadline_error(hop, client_id, "network", " (OpenID discovery)")
                    retryable = self.retry_policy.retry_network_errors and _is_retryable_network_error(failure)
                    delay = self.retry_policy.delay_before(attempts, None) if retryable else None
                    if delay is None:
                        raise network_error(failure, hop=hop, client_id=client_id, url=url, attempts=attempts)
                elif status is not None and 400 <= status < 500 and status != 429:
                    raise _local_error(
                        f"{HOP_LABELS.get(hop, HOP_LABELS[None])} for client {client_id}: the OpenID discovery "
                        f"document of {self.authority} was refused (HTTP {status}).",
                        remedy="Check the tenant id and authority host (ENTRACLAW_TENANT_ID, "
                        "ENTRACLAW_AUTHORITY_HOST); the discovery document must be reachable.",
                        hop=hop,
                        client_id=client_id,
                        error="invalid_authority",
                        http_status=status,
                    )
                else:
                    delay = self.retry_policy.delay_before(attempts, retry_after)
                    if delay is None:
                        if status is not None and (status == 429 or status >= 500):
                            raise unavailable_error(
                                hop=hop,
                                client_id=client_id,
                                http_status=status,
                                attempts=attempts,
                                retry_after=retry_after,
                            )
                        raise _local_error(
                            f"{HOP_LABELS.get(hop, HOP_LABELS[None])} for client {client_id}: the OpenID discovery "
                            f"document of {self.authority} is unusable (HTTP "
                            f"{status if status is not None else 'unknown'}, {type(failure).__name__}) after "
                            f"{attempts} attempt(s).",
                            remedy="Check that the authority URL points at Entra (or the emulator) and not at a "
                            "proxy page.",
                            hop=hop,
                            client_id=client_id,
                            error="invalid_authority",
                            http_status=status,
                        )
                logger.info(
                    "OpenID discovery for %s: attempt %d failed (%s), retrying in %.2f s",
                    client_id,
                    attempts,
                    type(failure).__name__,
                    delay,
                )
                self._wait(delay, hop, client_id, "Retry-After" if retry_after else "backoff")

    def _try_app(
        self, client_id: str, signer: AssertionSource | None
    ) -> tuple[msal.ConfidentialClientApplication | None, BaseException | None]:
        """One attempt at building the app: (app, None) or (None, the failure). Never raises
        (but an entraclaw error): the caller raises typed errors outside any except block, so
        no raw exception (and no body MSAL quoted in it) hides in ``__context__``."""
        # Exchange tokens change every hour, the app should not: the callable
        # reads the token this thread is sending right now.
        assertion: AssertionSource = signer if signer is not None else self._thread_assertion
        kwargs: dict[str, Any] = {}
        if not self._microsoft:
            # A non-Microsoft authority (the emulator, a test server) cannot be
            # validated against Microsoft's instance discovery.
            kwargs.update(validate_authority=False, instance_discovery=False)
        self.http.reset()
        try:
            with self.http.timeout_for_thread(self._request_timeout()):
                app = msal.ConfidentialClientApplication(
                    client_id,
                    client_credential={"client_assertion": assertion},
                    authority=self.authority,
                    http_client=self.http,
                    http_cache=self._http_cache,
                    token_cache=_NoTokenCache(),
                    **kwargs,
                )
        except EntraclawError:
            raise
        except Exception as exc:  # MSAL raises ValueError, RuntimeError, HTTPError, JSON and key errors here
            return None, exc
        return app, None

    # --- deadline --------------------------------------------------------------------------

    def _request_timeout(self) -> float:
        deadline = current_deadline()
        remaining = deadline.remaining() if deadline is not None else math.inf
        self._capped.value = remaining < self.http.timeout
        return max(0.001, min(self.http.timeout, remaining))

    def _timed_out_on_deadline(self, failure: BaseException) -> bool:
        """A timeout that the deadline, not the request timeout, cut short."""
        return isinstance(failure, requests.exceptions.Timeout) and bool(getattr(self._capped, "value", False))

    def _deadline_error(self, hop: int | None, client_id: str, waited_on: str, detail: str = "") -> EntraclawError:
        deadline = current_deadline()
        assert deadline is not None
        return deadline.exceeded(hop=hop, client_id=client_id, waited_on=waited_on, detail=detail)

    def _wait(self, seconds: float, hop: int | None, client_id: str, waited_on: str) -> None:
        """Sleep ``seconds`` unless that would run past the caller's deadline (then raise)."""
        deadline = current_deadline()
        if deadline is not None and not deadline.allows(seconds):
            raise deadline.exceeded(
                hop=hop, client_id=client_id, waited_on=waited_on, detail=f"; {seconds:g} s more were needed"
            )
        if seconds > 0:
            self._sleep(seconds)

    # --- requests ----------------------------------------------------------------------

    def client_credentials(
        self,
        *,
        hop: int | None,
        client_id: str,
        scopes: Sequence[str],
        client_assertion: AssertionSource | str,
        fmi_path: str | None = None,
        claims_challenge: str | None = None,
    ) -> dict[str, Any]:
        """``acquire_token_for_client``: a signer callable (Hop 1) or an exchange token (Hop 2)."""
        signer = client_assertion if callable(client_assertion) else None
        exchange_token = client_assertion if isinstance(client_assertion, str) else None

        def call(app: msal.ConfidentialClientApplication) -> Any:
            if fmi_path is not None:
                return app.acquire_token_for_client(list(scopes), fmi_path=fmi_path, claims_challenge=claims_challenge)
            return app.acquire_token_for_client(list(scopes), claims_challenge=claims_challenge)

        return self._run(hop, client_id, signer, exchange_token, call)

    def user_fic(
        self,
        *,
        client_id: str,
        scopes: Sequence[str],
        client_assertion: str,
        user_assertion: str,
        user_object_id: str | None = None,
        username: str | None = None,
        claims_challenge: str | None = None,
        hop: int = 3,
    ) -> dict[str, Any]:
        """``acquire_token_by_user_federated_identity_credential`` (Hop 3)."""

        def call(app: msal.ConfidentialClientApplication) -> Any:
            return app.acquire_token_by_user_federated_identity_credential(
                list(scopes),
                assertion=user_assertion,
                user_object_id=user_object_id,
                username=username,
                claims_challenge=claims_challenge,
            )

        return self._run(hop, client_id, None, client_assertion, call, extra_secrets=(user_assertion,))

    def _wait_not_before(self, hop: int | None, client_id: str, attempts: int) -> None:
        with self._not_before_lock:
            not_before = self._not_before.get(client_id, 0.0)
        remaining = not_before - self._clock()
        if remaining <= 0:
            return
        if remaining > self.retry_policy.max_retry_after:
            raise unavailable_error(
                hop=hop, client_id=client_id, http_status=429, attempts=attempts, retry_after=remaining
            )
        self._wait(remaining, hop, client_id, "Retry-After")

    def _remember_retry_after(self, client_id: str, retry_after: float | None) -> None:
        if retry_after:
            with self._not_before_lock:
                self._not_before[client_id] = self._clock() + retry_after

    def _run(
        self,
        hop: int | None,
        client_id: str,
        signer: AssertionSource | None,
        exchange_token: str | None,
        call: Callable[[msal.ConfidentialClientApplication], Any],
        *,
        extra_secrets: Sequence[str] = (),
    ) -> dict[str, Any]:
        secrets = tuple(s for s in (exchange_token, *extra_secrets) if s)
        label = HOP_LABELS.get(hop, HOP_LABELS[None])
        attempts = 0
        while True:
            self._wait_not_before(hop, client_id, attempts)
            app = self._app(client_id, signer, hop=hop)
            attempts += 1
            self.http.reset()
            self._current_assertion.value = exchange_token
            outcome: Mapping[str, Any] | None = None
            failure: BaseException | None = None
            try:
                with self.http.timeout_for_thread(self._request_timeout()):
                    result = call(app)
                if isinstance(result, Mapping):
                    outcome = result
                else:
                    failure = TypeError(f"MSAL returned {type(result).__name__}")
            except EntraclawError:
                raise  # from the signer: already typed, never retried here
            except Exception as exc:
                # Whatever MSAL raised on a hostile body (TypeError on a JSON null, RecursionError on
                # deep nesting, OverflowError/ValueError on expires_in NaN or 1e400, ...) is kept and
                # raised as a typed error below, outside this block, so its text (which may quote
                # the body) is not chained to the error the caller sees.
                failure = exc
            finally:
                self._current_assertion.value = None
            observed = self.http.last
            status = observed.status if observed is not None else None
            retry_after = observed.retry_after if observed is not None else None

            if isinstance(failure, requests.exceptions.RequestException):
                logger.debug(
                    "%s for %s: attempt %d got no answer (%s)", label, client_id, attempts, type(failure).__name__
                )
                if self._timed_out_on_deadline(failure):
                    raise self._deadline_error(hop, client_id, "network")
                delay = (
                    self.retry_policy.delay_before(attempts, None)
                    if self.retry_policy.retry_network_errors and _is_retryable_network_error(failure)
                    else None
                )
                if delay is None:
                    raise network_error(
                        failure, hop=hop, client_id=client_id, url=self.token_endpoint, attempts=attempts
                    ) from None
                self._wait(delay, hop, client_id, "backoff")
                continue

            if status is not None and (status == 429 or status >= 500):
                self._remember_retry_after(client_id, retry_after)
                delay = self.retry_policy.delay_before(attempts, retry_after)
                logger.info(
                    "%s for %s: HTTP %d on attempt %d%s",
                    label,
                    client_id,
                    status,
                    attempts,
                    f", retrying in {delay:.2f} s" if delay is not None else ", giving up",
                )
                if delay is None:
                    raise unavailable_error(
                        hop=hop,
                        client_id=client_id,
                        http_status=status,
                        attempts=attempts,
                        retry_after=retry_after,
                        body=outcome,
                    )
                self._wait(delay, hop, client_id, "Retry-After" if retry_after is not None else "backoff")
                continue

            if isinstance(failure, ValueError) and observed is None:
                # MSAL validates its inputs with ValueError before sending anything.
                raise ConfigurationError(
                    f"{label} for client {client_id}: MSAL rejected the request before sending it "
                    f"({redact(str(failure))[:200]}).",
                    remedy="Check the scopes, the Agent User id/UPN and the client ids passed to the credential.",
                    hop=hop,
                    client_id=client_id,
                )

            if failure is not None:
                # A body that is not JSON, or not a JSON object, or one MSAL choked on. Never
                # include the body: it might be a half-sent token.
                raise _local_error(
                    f"{label} for client {client_id}: the token endpoint sent an unusable response "
                    f"(HTTP {status if status is not None else 'unknown'}, {type(failure).__name__}).",
                    remedy="Check that the authority URL points at Entra (or the emulator) and not at a proxy page.",
                    hop=hop,
                    client_id=client_id,
                    error="invalid_response",
                    http_status=status,
                )

            assert outcome is not None
            if "error" in outcome:
                raise exchange_error(outcome, hop=hop, client_id=client_id, http_status=status, secrets=secrets)
            checked = _checked_token_response(outcome)
            if isinstance(checked, str):
                raise _local_error(
                    f"{label} for client {client_id}: the token response {checked} (HTTP {status}); "
                    "the token was not used.",
                    remedy="Check that the authority URL points at Entra (or the emulator).",
                    hop=hop,
                    client_id=client_id,
                    error="invalid_response",
                    http_status=status,
                )
            logger.debug("%s for %s: token received (expires_in=%s)", label, client_id, checked["expires_in"])
            return checked

    def close(self) -> None:
        with self._apps_lock:
            self._apps.clear()

    def __repr__(self) -> str:
        return f"<MsalExchanger authority={self.authority}>"
