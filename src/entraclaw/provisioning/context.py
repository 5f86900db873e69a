"""What setup, rotate and doctor share: where the tenant is, how to reach it, how to say things."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

from entraclaw.auth.exchange import normalize_authority
from entraclaw.auth.retry import TokenRetryPolicy
from entraclaw.config import DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_URL
from entraclaw.config import make_session as config_make_session
from entraclaw.errors import GraphRequestError, TokenExchangeError

__all__ = ["DEFAULT_AUTHORITY_HOST", "DEFAULT_GRAPH_URL", "Endpoints", "PropagationWait", "make_session"]

T = TypeVar("T")


def make_session(ca_bundle: str | None, proxy: str | None = None) -> requests.Session:
    """The config's one trust and proxy rule: ENTRACLAW_CA_BUNDLE (or certifi), REQUESTS_CA_BUNDLE ignored;
    ENTRACLAW_PROXY (``proxy``) > HTTPS_PROXY/NO_PROXY > the Windows system proxy."""
    return config_make_session(ca_bundle or None, proxy=proxy or None)


@dataclass(frozen=True)
class Endpoints:
    tenant_id: str
    authority_host: str = DEFAULT_AUTHORITY_HOST
    graph_url: str = DEFAULT_GRAPH_URL
    ca_bundle: str | None = None
    #: ENTRACLAW_PROXY (--proxy): a proxy URL or ``direct``; None: the environment's / system's proxy.
    proxy: str | None = None

    @property
    def authority(self) -> str:
        return normalize_authority(self.tenant_id, self.authority_host)

    @property
    def is_microsoft(self) -> bool:
        return self.authority_host.rstrip("/").lower() == DEFAULT_AUTHORITY_HOST

    def session(self) -> requests.Session:
        return make_session(self.ca_bundle, self.proxy)


# A new principal takes seconds to minutes to be usable across Entra's replicas.
_PROPAGATION_CODES = frozenset(
    {
        "Request_ResourceNotFound",
        "ResourceNotFound",
        "NotFound",
    }
)
# AADSTS70000 is what a Hop 1 gets while a new Agent Identity is not yet visible to the token service.
_PROPAGATION_AADSTS = frozenset({70000, 700016, 7000112, 500011, 700027, 65001, 50034})


def http_status(exc: BaseException) -> int | None:
    status = getattr(exc, "http_status", None)
    return status if isinstance(status, int) else None


def is_propagation_error(exc: BaseException) -> bool:
    """Errors real Entra gives for an object created moments ago and not yet replicated."""
    if isinstance(exc, GraphRequestError):
        status = http_status(exc)
        if status == 404:
            return True
        message = str(getattr(exc, "message", ""))
        return status == 400 and (getattr(exc, "code", None) in _PROPAGATION_CODES or "does not exist" in message)
    if isinstance(exc, TokenExchangeError):
        return getattr(exc, "aadsts_code", None) in _PROPAGATION_AADSTS
    return False


@dataclass
class PropagationWait:
    """Bounded exponential backoff while a new object propagates, with one progress line per wait."""

    timeout: float = 180.0
    first_delay: float = 1.0
    max_delay: float = 15.0
    echo: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    waits: int = field(default=0)

    def run(self, what: str, action: Callable[[], T], *, retry_if: Callable[[BaseException], bool] | None = None) -> T:
        check = retry_if or is_propagation_error
        # The project's one backoff rule (auth/retry.py), bounded here by time, not by count;
        # no jitter, so the progress lines say exactly when the next try comes.
        policy = TokenRetryPolicy(
            max_attempts=sys.maxsize, base_delay=self.first_delay, max_delay=self.max_delay, jitter=0.0
        )
        started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return action()
            except (GraphRequestError, TokenExchangeError) as exc:
                elapsed = self.clock() - started
                delay = policy.delay_before(attempt, None)
                if not check(exc) or delay is None or elapsed + delay > self.timeout:
                    raise
                self.waits += 1
                self.echo(
                    f"      waiting for {what} to propagate in the directory "
                    f"(attempt {attempt}, {elapsed:.0f}s so far, next try in {delay:.0f}s, gives up after "
                    f"{self.timeout:.0f}s)"
                )
                self.sleep(delay)


def describe(value: Any) -> str:
    return str(value) if value is not None else "-"


def path_text(path: Path) -> str:
    return str(path)
