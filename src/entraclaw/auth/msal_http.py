"""The ``http_client`` handed to MSAL: the caller's ``requests.Session`` plus what MSAL hides.

MSAL turns a 5xx into a bare ``MsalServiceError("HTTP Error: 503")`` and keeps
no headers, so Retry-After, the status and the request id would be lost. This
wrapper records the last answer per thread (the thread that called MSAL is the
thread that sent the request) and adds a default timeout, which
``requests.Session`` does not have.
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

__all__ = ["ObservedHttpClient", "ObservedResponse", "parse_retry_after"]

DEFAULT_TIMEOUT = 30.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    # Header values are the server's text: an HTTP-date far in the future or "1e400" must not
    # turn into a wait of years (get_token's deadline would refuse it anyway).
    return max(0.0, min(seconds, 3600.0))


@dataclass(frozen=True)
class ObservedResponse:
    status: int
    retry_after: float | None
    request_id: str | None


class ObservedHttpClient:
    """Duck-typed MSAL ``HttpClient`` (``post``/``get``/``close``) over a ``requests.Session``.

    The session belongs to the caller: ``close`` does not close it.
    """

    def __init__(self, session: requests.Session, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.session = session
        self.timeout = timeout
        self._local = threading.local()

    def reset(self) -> None:
        self._local.last = None

    @contextmanager
    def timeout_for_thread(self, seconds: float) -> Iterator[None]:
        """Requests sent by this thread inside the block time out after ``seconds`` (a deadline's rest)."""
        outer = getattr(self._local, "timeout", None)
        self._local.timeout = seconds
        try:
            yield
        finally:
            self._local.timeout = outer

    def _timeout(self) -> float:
        override: float | None = getattr(self._local, "timeout", None)
        return self.timeout if override is None else override

    @property
    def last(self) -> ObservedResponse | None:
        return getattr(self._local, "last", None)

    def _observe(self, response: requests.Response) -> requests.Response:
        headers = response.headers
        self._local.last = ObservedResponse(
            status=response.status_code,
            retry_after=parse_retry_after(headers.get("Retry-After")),
            request_id=headers.get("x-ms-request-id") or headers.get("client-request-id"),
        )
        return response

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout())
        return self._observe(self.session.post(url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout())
        return self._observe(self.session.get(url, **kwargs))

    def close(self) -> None:
        """The session is the caller's; nothing to release here."""

    def __repr__(self) -> str:
        return f"<ObservedHttpClient timeout={self.timeout}s>"
