"""Graph as the Agent User, for the tools: one session, tokens per tool scope, a deadline per call.

The transport is :class:`entraclaw.provisioning.graph.GraphClient` (trust rule, ``@odata.nextLink``
paging, 429/503 ``Retry-After`` under :data:`~entraclaw.provisioning.graph.GRAPH_RETRY_POLICY`,
one fresh token on a 401). What this module adds for the agent:

- tokens come from :class:`~entraclaw.auth.credential.AgentUserCredential` (refresh ahead; a
  warm call is a dict lookup). The ``.default`` token carries every consented scope in ``scp``;
  a tool whose permission is not in it asks for that scope by name, which Entra answers with
  AADSTS65001 when it is not consented: that becomes :class:`ConsentRequiredError` naming
  the ``entraclaw setup --scope`` command, before any Graph call is made;
- every call runs under a deadline: a ``Retry-After`` that does not fit in what is left is not
  slept through, the tool fails at once saying how long Graph asked to wait;
- the ``request-id`` of every Graph answer is collected for the audit trail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from entraclaw.auth.jwt_claims import unverified_claims
from entraclaw.errors import (
    ConsentRequiredError,
    EncodingError,
    GraphRequestError,
    TokenDeadlineExceededError,
    TokenExchangeError,
)
from entraclaw.provisioning.auth import GraphAuth
from entraclaw.provisioning.graph import GRAPH_RETRY_POLICY, GraphClient

__all__ = ["GRAPH_RESOURCE", "AgentGraph", "Permission", "consent_command"]

GRAPH_RESOURCE = "https://graph.microsoft.com"
_DEFAULT = f"{GRAPH_RESOURCE}/.default"
_CONSENT_MISSING = 65001  # AADSTS65001: the user or administrator has not consented


@dataclass(frozen=True)
class Permission:
    """A tool's delegated Graph permission: the least-privileged one (what setup consents) and the
    higher ones Graph also accepts for the call (a tenant that consented those works as is)."""

    least: str
    also: tuple[str, ...] = ()

    def satisfied_by(self, granted: frozenset[str]) -> bool:
        return self.least in granted or any(p in granted for p in self.also)


def consent_command(scopes: Sequence[str]) -> str:
    return "entraclaw setup " + " ".join(f"--scope {s}" for s in scopes)


class _CallState(threading.local):
    deadline: float | None = None
    request_ids: list[str] | None = None
    retry_after: float | None = None  # the last Retry-After Graph sent in this call


class _CredentialAuth(GraphAuth):
    """GraphAuth over the Agent User credential; the credential does the caching and refresh ahead."""

    def __init__(self, graph: AgentGraph, scope: str) -> None:
        super().__init__()
        self._graph = graph
        self._scope = scope
        self.description = f"Agent User ({scope})"

    def token(self) -> str:
        return self._graph._token(self._scope)

    def invalidate(self) -> None:
        self._graph.credential.clear_cache()

    def _acquire(self) -> tuple[str, float]:  # pragma: no cover - token() is overridden
        raise NotImplementedError


class AgentGraph:
    """The tools' Graph: ``client(scope).request(method, path, ...)`` and ``pages(scope, path, ...)``."""

    def __init__(self, credential: Any, graph_url: str, session: requests.Session, *, timeout: float = 30.0) -> None:
        self.credential = credential
        self.graph_url = graph_url.rstrip("/")
        self.session = session
        self.timeout = timeout
        self._state = _CallState()
        self._clients: dict[str, GraphClient] = {}
        self._lock = threading.Lock()
        self._granted: tuple[str, frozenset[str]] | None = None  # (token, scp) of the last .default token
        session.hooks.setdefault("response", []).append(self._on_response)

    # --- per call -------------------------------------------------------------------------

    @contextmanager
    def deadline(self, seconds: float) -> Iterator[list[str]]:
        """Run this thread's Graph calls within ``seconds``; yields the request ids collected."""
        ids: list[str] = []
        self._state.deadline, self._state.request_ids = time.monotonic() + seconds, ids
        self._state.retry_after = None
        try:
            yield ids
        finally:
            self._state.deadline, self._state.request_ids = None, None

    def remaining(self) -> float | None:
        end = self._state.deadline
        return None if end is None else end - time.monotonic()

    def last_retry_after(self) -> float | None:
        return self._state.retry_after

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        ids = self._state.request_ids
        request_id = response.headers.get("request-id")
        if ids is not None and request_id:
            ids.append(str(request_id))
        if response.status_code in (429, 503) and ids is not None:
            from entraclaw.auth.msal_http import parse_retry_after

            self._state.retry_after = parse_retry_after(response.headers.get("Retry-After"))

    def _sleep(self, delay: float) -> None:
        left = self.remaining()
        if left is not None and delay > left:
            raise GraphRequestError(
                f"Graph asked to wait {delay:.1f} s before a retry (Retry-After); this call has {max(left, 0):.1f} s "
                "left of its deadline, so it stops here.",
                remedy=f"Graph is throttling this Agent User: try the tool again in {delay:.0f} s or more.",
                http_status=429,
                code="TooManyRequests",
                request_id=None,
                url=self.graph_url,
                retry_after=delay,
            )
        time.sleep(delay)

    # --- tokens -----------------------------------------------------------------------------

    def _get_token(self, *scopes: str) -> str:
        left = self.remaining()
        if left is not None and left <= 0:
            raise TokenDeadlineExceededError(
                "The tool call ran out of its deadline before a token was ready.",
                remedy="Try the tool again; `entraclaw doctor` checks the token chain if it keeps happening.",
                hop=None,
                waited_on="network",
            )
        return str(self.credential.get_token(*scopes, deadline=left if left is not None else None).token)

    def _token(self, scope: str) -> str:
        if scope == _DEFAULT:
            return self._get_token(_DEFAULT)
        return self._get_token(scope)

    def granted(self) -> frozenset[str]:
        """The delegated permissions in the ``.default`` token (its ``scp``)."""
        token = self._get_token(_DEFAULT)
        cached = self._granted
        if cached is not None and cached[0] == token:
            return cached[1]
        try:
            scp = unverified_claims(token).get("scp")
        except EncodingError:
            scp = None
        granted = frozenset(str(scp).split()) if isinstance(scp, str) else frozenset()
        self._granted = (token, granted)
        return granted

    def scope_for(self, permission: Permission, tool: str) -> str:
        """The token scope to call with: ``.default`` when it covers ``permission``, else the permission
        by name (a fresh exchange, for consent given since the last token), else ConsentRequiredError."""
        if permission.satisfied_by(self.granted()):
            return _DEFAULT
        named = f"{GRAPH_RESOURCE}/{permission.least}"
        try:
            self._get_token(named)
        except TokenExchangeError as exc:
            if getattr(exc, "aadsts_code", None) == _CONSENT_MISSING:
                raise ConsentRequiredError(
                    f"Tool {tool} needs the delegated Graph permission {permission.least}, which the Agent User "
                    "has not been consented (Entra answered AADSTS65001).",
                    remedy=f"An administrator runs `{consent_command([permission.least])}` with the admin sign-in "
                    "options setup was run with, then the tool works without restarting the server.",
                    tool=tool,
                    scopes=(permission.least,),
                    code="AADSTS65001",
                    http_status=getattr(exc, "http_status", None),
                    request_id=getattr(exc, "correlation_id", None),
                ) from None
            raise
        return named

    # --- calls --------------------------------------------------------------------------------

    def client(self, scope: str) -> GraphClient:
        """The Graph transport (GraphClient: retries, paging, the 401 refresh) calling with ``scope``'s token;
        one per scope, sharing this session, deadline and request-id collection. Tools call its ``request``."""
        with self._lock:
            client = self._clients.get(scope)
            if client is None:
                client = GraphClient(
                    self.graph_url,
                    _CredentialAuth(self, scope),
                    session=self.session,
                    retry_policy=GRAPH_RETRY_POLICY,
                    timeout=self.timeout,
                    sleep=self._sleep,
                )
                self._clients[scope] = client
            return client

    def pages(
        self, scope: str, path: str, *, what: str, params: Mapping[str, str] | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Items of a collection across ``@odata.nextLink`` pages, at most ``limit``."""
        out: list[dict[str, Any]] = []
        for item in self.client(scope).pages(path, what=what, params=params):
            out.append(item)
            if limit is not None and len(out) >= limit:
                break
        return out
