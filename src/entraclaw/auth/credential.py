"""Credentials for Entra Agent identities: the Agent User (three hops) and the Agent Identity (two).

:class:`AgentUserCredential` acts as an Agent User:

- Hop 1: the Blueprint (``blueprint_app_id``) signs a client assertion with its
  key and asks for ``api://AzureADTokenExchange/.default`` with
  ``fmi_path`` = the Agent Identity's app id -> **T1**;
- Hop 2: the Agent Identity (``agent_identity_app_id``) presents T1 as its
  client assertion for the same scope -> **T2**;
- Hop 3: the Agent Identity presents T1 again and T2 as the
  ``user_federated_identity_credential`` for the Agent User (object id or UPN)
  -> **T3**, a delegated token for the resource (``idtyp=user``).

:class:`AgentIdentityCredential` is the app-only variant: Hop 1, then Hop 2 for
the resource scope itself.

Both run every request through MSAL (see :mod:`entraclaw.auth.exchange`),
optionally share tokens with the machine's other processes through a
:class:`PersistedTokenStore`, and implement azure-core's ``TokenCredential`` /
``SupportsTokenInfo`` protocols.

Refresh policy (the same for T1, T2 and T3, so Hop 1 -- the only signature with the
Blueprint's key -- runs about once per T1 refresh period per device, whatever the
number of processes and scopes):

- before a token's refresh point (:mod:`entraclaw.auth.token_cache`: Entra's
  ``refresh_in``, else half the lifetime and at least 5 minutes before expiry) a
  warm ``get_token`` is a dict lookup;
- past it, the caller still gets the cached token at once, and one refresh of that
  key runs on a background thread (single-flight per key; a refresh that finds a
  fresher token written by another process adopts it instead of exchanging);
- a failed background refresh is logged (key and error type, never token text) and
  retried by the next caller after a backoff (:data:`BACKGROUND_RETRY_BASE` doubling
  to :data:`BACKGROUND_RETRY_MAX`); callers keep getting the valid token meanwhile;
- only a token within :data:`~entraclaw.auth.token_cache.EXPIRY_SKEW` of expiry (or
  past it, or absent) makes a caller wait for an exchange.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from entraclaw.auth.adapters import TokenRequestOptions, client_assertion_callable
from entraclaw.auth.deadline import DEFAULT_DEADLINE, Deadline, current_deadline, deadline_scope
from entraclaw.auth.exchange import EXCHANGE_SCOPE, MsalExchanger, normalize_authority
from entraclaw.auth.msal_http import DEFAULT_TIMEOUT
from entraclaw.auth.persisted_cache import PersistedTokenStore
from entraclaw.auth.retry import DEFAULT_RETRY_POLICY, TokenRetryPolicy
from entraclaw.auth.signer import Algorithm, Signer, SupportsSigner
from entraclaw.auth.token_cache import (
    AccessToken,
    AccessTokenInfo,
    CachedToken,
    MemoryTokenCache,
    cache_key,
    normalize_scopes,
)
from entraclaw.errors import ConfigurationError, KeystoreError

if TYPE_CHECKING:
    from entraclaw.config import AgentConfig

__all__ = [
    "BACKGROUND_RETRY_BASE",
    "BACKGROUND_RETRY_MAX",
    "AgentIdentityCredential",
    "AgentUserCredential",
    "ChainTokens",
]

_C = TypeVar("_C", bound="_ChainCredential")

logger = logging.getLogger(__name__)

#: First wait after a failed background refresh before a caller may start another (seconds).
BACKGROUND_RETRY_BASE = 10.0
#: Longest such wait; an expiring token is refreshed in the foreground regardless.
BACKGROUND_RETRY_MAX = 300.0

_WORKER_IDLE_EXIT = 60.0

_HOP_OF_KIND = {"t1": 1, "t2": 2, "t3": 3, "app": 2}


def _hop_of(key: str) -> int | None:
    return _HOP_OF_KIND.get(key.split("|", 1)[0])


class _BackgroundRefresher:
    """At most one background refresh per key, run by one daemon worker thread per credential.

    Scheduling is a queue put: the caller that finds its token due does not wait for a
    thread to start (starting one per refresh put a GIL hand-off of milliseconds into that
    caller's call). The worker is started on first use and ends with the process.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[str, Callable[[], None]]] = collections.deque()
        self._in_flight: set[str] = set()
        self._failures: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self._worker: threading.Thread | None = None
        self._closed = False

    def schedule(self, key: str, refresh: Callable[[], None]) -> None:
        now = self._clock()
        with self._cond:
            if self._closed or key in self._in_flight or now < self._not_before.get(key, -math.inf):
                return
            self._in_flight.add(key)
            self._queue.append((key, refresh))
            if self._worker is None:
                worker = threading.Thread(target=self._work, name="entraclaw-token-refresh", daemon=True)
                try:
                    worker.start()
                except RuntimeError:  # interpreter shutting down: the caller still has its valid token
                    self._queue.clear()
                    self._in_flight.clear()
                    self._cond.notify_all()
                    return
                self._worker = worker
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                # An idle worker (or one of a closed credential) ends; the next schedule starts
                # another, so credentials that are dropped do not each leave a thread behind.
                if not self._cond.wait_for(lambda: self._queue or self._closed, timeout=_WORKER_IDLE_EXIT):
                    self._worker = None
                    return
                if not self._queue:
                    self._worker = None
                    return
                key, refresh = self._queue.popleft()
            self._run(key, refresh)

    def _run(self, key: str, refresh: Callable[[], None]) -> None:
        try:
            refresh()
        except Exception as exc:  # logged, retried later: the caller already has a valid token
            with self._cond:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                delay = min(BACKGROUND_RETRY_MAX, BACKGROUND_RETRY_BASE * 2 ** (failures - 1))
                self._not_before[key] = self._clock() + delay
            logger.warning(
                "Background refresh of %s failed (%s, attempt %d); the cached token is still served; "
                "next attempt in %.0f s or when it expires.",
                key,
                type(exc).__name__,
                failures,
                delay,
            )
        else:
            with self._cond:
                self._failures.pop(key, None)
                self._not_before.pop(key, None)
        finally:
            with self._cond:
                self._in_flight.discard(key)
                self._cond.notify_all()

    def wait(self, timeout: float | None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._in_flight, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@dataclass(frozen=True)
class ChainTokens:
    """The tokens of one run of the chain (T3 is None for the app-only credential)."""

    t1: CachedToken
    t2: CachedToken
    t3: CachedToken | None = None


class _ChainCredential:
    """Shared machinery: configuration checks, the MSAL exchanger, the caches."""

    def __init__(
        self,
        *,
        tenant: str,
        blueprint_app_id: str,
        agent_identity_app_id: str,
        signer: Signer | SupportsSigner | str | bytes,
        cert_thumbprint: str | None = None,
        algorithm: Algorithm = "RS256",
        authority_host: str = "https://login.microsoftonline.com",
        session: requests.Session | None = None,
        cache: PersistedTokenStore | None = None,
        retry_policy: TokenRetryPolicy = DEFAULT_RETRY_POLICY,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self.deadline = _check_deadline(deadline)
        self.blueprint_app_id = _require_id(blueprint_app_id, "blueprint_app_id", "ENTRACLAW_BLUEPRINT_APP_ID")
        self.agent_identity_app_id = _require_id(
            agent_identity_app_id, "agent_identity_app_id", "ENTRACLAW_AGENT_IDENTITY_ID"
        )
        if self.blueprint_app_id.lower() == self.agent_identity_app_id.lower():
            raise ConfigurationError(
                f"The Blueprint and the Agent Identity have the same app id {self.blueprint_app_id}.",
                remedy="ENTRACLAW_AGENT_IDENTITY_ID is the Agent Identity's app id, not the Blueprint's.",
                client_id=self.blueprint_app_id,
            )
        self.authority = normalize_authority(tenant, authority_host)
        self.tenant_id = self.authority.rsplit("/", 1)[1]
        self._clock = clock
        self._exchanger = MsalExchanger(
            self.authority, session=session, retry_policy=retry_policy, timeout=timeout, sleep=sleep, clock=clock
        )
        self._assertion = client_assertion_callable(
            signer,
            self.blueprint_app_id,
            self._exchanger.token_endpoint,
            algorithm,
            cert_thumbprint=cert_thumbprint,
        )
        self.algorithm: Algorithm = algorithm
        self._memory = MemoryTokenCache(clock)
        self._store = cache
        self._refresher = _BackgroundRefresher(clock)
        self._scope_keys: dict[tuple[str, ...], tuple[str, tuple[str, ...]]] = {}
        # The authority (host + tenant), not the tenant id alone: a sovereign cloud, the public
        # cloud and an emulator may reuse one tenant id, and must not share tokens in one file.
        self._t1_key = cache_key(
            "t1", tenant=self.authority, client=self.blueprint_app_id, fmi_path=self.agent_identity_app_id
        )
        self._t2_key = cache_key(
            "t2", tenant=self.authority, client=self.agent_identity_app_id, blueprint=self.blueprint_app_id
        )
        self._owned_session: requests.Session | None = None

    @classmethod
    def from_config(
        cls: type[_C],
        config: AgentConfig | None = None,
        *,
        environ: Any = None,
        env_file: Any = None,
        keystore: Any = None,
        password: str | None = None,
        session: requests.Session | None = None,
        cache: PersistedTokenStore | None = None,
        algorithm: Algorithm = "RS256",
        **overrides: Any,
    ) -> _C:
        """A credential from the configuration (:func:`entraclaw.config.load_config`'s precedence).

        ``config`` is used as loaded (``overrides``, field names such as ``agent_user_upn=``,
        still win over it); without it the configuration is loaded from the process
        environment (or ``environ``) and the state directory's ``.env`` (or ``env_file``).
        The key comes from ``config.key_ref`` (``keystore`` replaces the OS default store);
        without ``session`` one is made that trusts ``ENTRACLAW_CA_BUNDLE`` (else the public
        CAs) and ignores REQUESTS_CA_BUNDLE, and is closed with the credential.
        """
        # Imported here: entraclaw.config pulls in the platform layer, which a credential built
        # from explicit arguments never needs.
        from entraclaw import config as config_module

        required = cls._config_required()
        if config is None:
            config = config_module.load_config(overrides, environ=environ, env_file=env_file, required=required)
        else:
            # A config given is complete by intent: only the overrides go on top of it, not the
            # environment or a .env, and it is checked for what this credential needs.
            config = config_module.load_config(overrides, base=config, environ={}, env_file=False, required=required)
        if password is None:
            password = (os.environ if environ is None else environ).get(config_module.ENV_KEY_PASSWORD) or None
        signer = config_module.open_signer(config, keystore=keystore, password=password)
        owned = None
        if session is None:
            session = owned = config_module.make_session(config)
        assert config.tenant_id is not None and config.blueprint_app_id is not None
        assert config.agent_identity_app_id is not None
        credential = cls(
            tenant=config.tenant_id,
            authority_host=config.authority_host,
            blueprint_app_id=config.blueprint_app_id,
            agent_identity_app_id=config.agent_identity_app_id,
            signer=signer,
            cert_thumbprint=config.cert_x5t_s256,
            session=session,
            cache=cache,
            algorithm=algorithm,
            **cls._config_extra_kwargs(config),
        )
        credential._owned_session = owned
        return credential

    @classmethod
    def _config_required(cls) -> tuple[str, ...]:
        from entraclaw.config import TOKEN_REQUIRED

        return TOKEN_REQUIRED

    @classmethod
    def _config_extra_kwargs(cls, config: AgentConfig) -> dict[str, Any]:
        return {}

    # --- caching -----------------------------------------------------------------------

    @property
    def signer(self) -> Signer:
        return self._assertion.signer

    @property
    def token_endpoint(self) -> str:
        return self._exchanger.token_endpoint

    def _cached(self, key: str, obtain: Callable[[], CachedToken], *, force: bool = False) -> CachedToken:
        """The token for ``key``: served from memory or the shared file while usable, else exchanged.

        Past its refresh point a usable token is still returned at once, and one background
        refresh is scheduled. Only ``force`` (a claims challenge) or a token that is not
        usable any more makes the caller wait for an exchange.
        """
        if not force:
            now = self._clock()
            entry = self._memory.get_any(key)
            if (entry is None or not entry.usable_at(now)) and self._store is not None:
                # Not in memory (or expiring): another process may have written it. The file
                # is read without any lock: a reader never waits for someone's exchange.
                on_disk = self._store.load().get(key)
                if on_disk is not None:
                    self._memory.put(key, on_disk)
                    entry = self._memory.get_any(key)
            if entry is not None and entry.usable_at(now):
                if not entry.fresh_at(now):
                    self._refresher.schedule(key, lambda: self._refresh_in_background(key, obtain))
                return entry
        return self._refresh_now(key, obtain, force=force)

    def _deadline(self) -> Deadline:
        return current_deadline() or Deadline.start(self.deadline, self._clock)

    def _client_of(self, key: str) -> str:
        return self.blueprint_app_id if key.startswith("t1|") else self.agent_identity_app_id

    def _refresh_now(self, key: str, obtain: Callable[[], CachedToken], *, force: bool) -> CachedToken:
        """Exchange ``key`` in the foreground (single-flight per key across threads and processes)."""
        deadline = self._deadline()
        lock = self._memory.refresh_lock(key)
        if not lock.acquire(timeout=max(0.0, deadline.remaining())):
            raise deadline.exceeded(hop=_hop_of(key), client_id=self._client_of(key), waited_on="lock")
        try:
            if not force:
                entry = self._memory.get_any(key)
                if entry is not None and entry.usable_at(self._clock()):
                    return entry  # another thread exchanged it while we waited
            with deadline_scope(deadline):
                if self._store is None:
                    return self._exchange(key, obtain)
                return self._exchange_shared(key, obtain, deadline, force=force)
        finally:
            lock.release()

    def _exchange(self, key: str, obtain: Callable[[], CachedToken]) -> CachedToken:
        entry = obtain()
        self._memory.put(key, entry, replace=True)
        logger.info("Obtained %s, expires %d, refresh after %d.", key, int(entry.expires_on), int(entry.refresh_on))
        return entry

    def _exchange_shared(
        self, key: str, obtain: Callable[[], CachedToken], deadline: Deadline, *, force: bool
    ) -> CachedToken:
        # Lock order for every thread and process: the exchange lock of the outer hop first, then
        # those of the hops it needs (T3, T2, T1), each taken inside obtain(). No other lock is
        # held across an exchange (the write lock is taken only around the file write), so the
        # order has no cycle.
        assert self._store is not None
        budget = max(0.0, deadline.remaining())
        wait = min(self._store.lock_timeout, budget)
        try:
            exchange_lock = self._store.exchange_lock(key, timeout=wait)
            exchange_lock.acquire()
        except KeystoreError:
            if wait < self._store.lock_timeout:
                raise deadline.exceeded(
                    hop=_hop_of(key),
                    client_id=self._client_of(key),
                    waited_on="lock",
                    detail=f" (the exchange lock of {self._store.path})",
                ) from None
            raise
        try:
            if not force:
                on_disk = self._store.load().get(key)
                if on_disk is not None and on_disk.usable_at(self._clock()):
                    logger.debug("Token %s found in the shared cache %s.", key, self._store.path)
                    self._memory.put(key, on_disk)
                    return on_disk
            entry = self._exchange(key, obtain)
            self._store.merge_save({key: entry}, timeout=max(1.0, min(self._store.lock_timeout, deadline.remaining())))
            return entry
        finally:
            exchange_lock.release()

    def _refresh_in_background(self, key: str, obtain: Callable[[], CachedToken]) -> None:
        """The background refresh of a due (still usable) token; raises to the refresher on failure."""
        lock = self._memory.refresh_lock(key)
        if not lock.acquire(blocking=False):
            return  # a caller is refreshing it in the foreground right now
        try:
            with deadline_scope(Deadline.start(self.deadline, self._clock)) as deadline:
                if self._store is None:
                    self._exchange(key, obtain)
                    return
                with self._store.exchange_lock(key, timeout=min(self._store.lock_timeout, self.deadline)):
                    on_disk = self._store.load().get(key)
                    if on_disk is not None and on_disk.fresh_at(self._clock()):
                        # Another process refreshed it: adopt its token, exchange nothing.
                        self._memory.put(key, on_disk)
                        return
                    entry = self._exchange(key, obtain)
                    self._store.merge_save(
                        {key: entry}, timeout=max(1.0, min(self._store.lock_timeout, deadline.remaining()))
                    )
        finally:
            lock.release()

    def wait_for_refresh(self, timeout: float | None = None) -> bool:
        """Block until no background refresh is running (tests, orderly shutdown); False on timeout."""
        return self._refresher.wait(timeout)

    def _scopes_key(self, kind: str, scopes: tuple[str, ...], **parts: str | None) -> tuple[str, tuple[str, ...]]:
        """Cache key and normalised scopes for the scopes exactly as the caller passed them."""
        known = self._scope_keys.get(scopes)
        if known is not None:
            return known
        normalized = normalize_scopes(scopes)
        if not normalized:
            raise ConfigurationError(
                "get_token needs at least one scope, for example https://graph.microsoft.com/.default.",
                remedy="Pass the resource's scope(s) to get_token().",
            )
        if EXCHANGE_SCOPE.lower() in (s.lower() for s in normalized):
            raise ConfigurationError(
                f"{EXCHANGE_SCOPE} is the exchange scope of Hops 1-2, not a resource scope.",
                remedy="Ask for the resource, e.g. https://graph.microsoft.com/.default.",
            )
        result = (cache_key(kind, tenant=self.authority, scopes=normalized, **parts), normalized)
        self._scope_keys[scopes] = result
        return result

    def _t1(self) -> CachedToken:
        def obtain() -> CachedToken:
            response = self._exchanger.client_credentials(
                hop=1,
                client_id=self.blueprint_app_id,
                scopes=[EXCHANGE_SCOPE],
                client_assertion=self._assertion,
                fmi_path=self.agent_identity_app_id,
            )
            return CachedToken.from_response(response, now=self._clock())

        return self._cached(self._t1_key, obtain)

    def _check_request(self, claims: str | None, tenant_id: str | None) -> None:
        if tenant_id is not None and tenant_id.lower() != self.tenant_id.lower():
            raise ConfigurationError(
                f"This credential is for tenant {self.tenant_id}; a token for tenant {tenant_id} was requested.",
                remedy="Create a credential for that tenant; Agent identities are single-tenant.",
                tenant_id=tenant_id,
            )

    # --- azure-core TokenCredential / SupportsTokenInfo ---------------------------------

    def _token(self, scopes: tuple[str, ...], *, claims: str | None) -> CachedToken:
        """The resource token for ``scopes`` (T3, or the app-only token); each credential says which."""
        raise NotImplementedError

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> AccessToken:
        """A token for ``scopes`` (azure-core ``TokenCredential``).

        A ``claims`` challenge forces a new exchange of the last hop. ``enable_cae``
        is accepted for protocol compatibility; tokens are cached the same way.
        ``deadline`` (seconds) overrides the credential's total time budget for this call.
        """
        if claims is None and tenant_id is None:
            known = self._scope_keys.get(scopes)
            if known is not None:
                entry = self._memory.get_fresh(known[0])
                if entry is not None:
                    return entry.access_token
        self._check_request(claims, tenant_id)
        with deadline_scope(self._start_deadline(deadline)):
            return self._token(scopes, claims=claims).access_token

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        """A token for ``scopes`` (azure-core ``SupportsTokenInfo``); ``options["deadline"]`` as in get_token."""
        options = options or {}
        claims = options.get("claims")
        if claims is None and options.get("tenant_id") is None:
            known = self._scope_keys.get(scopes)
            if known is not None:
                entry = self._memory.get_fresh(known[0])
                if entry is not None:
                    return entry.info
        self._check_request(claims, options.get("tenant_id"))
        with deadline_scope(self._start_deadline(options.get("deadline"))):
            return self._token(scopes, claims=claims).info

    def _start_deadline(self, seconds: float | None) -> Deadline:
        budget = self.deadline if seconds is None else _check_deadline(seconds)
        return Deadline.start(budget, self._clock)

    def clear_cache(self) -> None:
        """Forget the tokens held in memory (the shared store is left alone)."""
        self._memory.clear()

    def close(self) -> None:
        self._refresher.close()
        self._exchanger.close()
        owned, self._owned_session = self._owned_session, None
        if owned is not None:
            owned.close()

    def __enter__(self) -> _ChainCredential:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _check_deadline(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigurationError(
            f"deadline {value!r} is not a positive number of seconds.",
            remedy=f"Pass deadline= in seconds (the default is {DEFAULT_DEADLINE:g}).",
        )
    return float(value)


def _require_id(value: str | None, name: str, env: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} is empty.", remedy=f"Pass {name}= or set {env}.")
    text = value.strip()
    if any(ch.isspace() for ch in text) or "/" in text:
        raise ConfigurationError(
            f"{name} {text[:60]!r} is not an application id.",
            remedy=f"Pass the GUID from the app registration ({env}).",
        )
    return text


class AgentUserCredential(_ChainCredential):
    """Tokens for an Entra Agent User, through the three-hop exchange.

    ``tenant`` is a tenant id (with ``authority_host``) or a full authority
    URL (``emu.authority`` for the emulator). ``signer`` is the Blueprint's key:
    a :class:`Signer` (PEM or CNG), a key handle with ``as_signer()`` or PEM
    text; ``cert_thumbprint`` (x5t#S256) is needed only when the signer has no
    certificate. Give exactly one of ``agent_user_id`` (object id) and
    ``agent_user_upn``. ``session`` is the ``requests.Session`` MSAL sends with
    (``emu.session()`` for the emulator). ``cache`` shares tokens with other
    processes; without it tokens are cached in memory only.

    ``deadline`` is the total time budget of one ``get_token`` call in seconds (all
    hops, retries, Retry-After waits, lock waits and network time); past it the call
    raises :class:`~entraclaw.errors.TokenDeadlineExceededError` naming the hop and what
    it waited on. The default, 30 s, is half the cache's 60 s lock wait, so a caller
    behind a stuck exchange gets that typed error (with the hop) before a bare lock
    timeout; it still covers a cold three-hop chain with a few retries and a typical
    Entra Retry-After of a few seconds, and with refresh-ahead a warm caller never
    spends it. Pass ``deadline=`` per call to ``get_token`` for a different budget.

    ``clock`` and ``sleep`` exist for tests; the defaults are the real ones.
    """

    def __init__(
        self,
        *,
        tenant: str,
        blueprint_app_id: str,
        agent_identity_app_id: str,
        signer: Signer | SupportsSigner | str | bytes,
        agent_user_id: str | None = None,
        agent_user_upn: str | None = None,
        cert_thumbprint: str | None = None,
        algorithm: Algorithm = "RS256",
        authority_host: str = "https://login.microsoftonline.com",
        session: requests.Session | None = None,
        cache: PersistedTokenStore | None = None,
        retry_policy: TokenRetryPolicy = DEFAULT_RETRY_POLICY,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        if (agent_user_id is None) == (agent_user_upn is None):
            raise ConfigurationError(
                "Give exactly one of agent_user_id (object id) and agent_user_upn.",
                remedy="Set ENTRACLAW_AGENT_USER_ID to the Agent User's object id (preferred) or pass its UPN.",
            )
        if agent_user_id is not None:
            agent_user_id = _require_id(agent_user_id, "agent_user_id", "ENTRACLAW_AGENT_USER_ID")
            if "@" in agent_user_id:
                raise ConfigurationError(
                    f"agent_user_id {agent_user_id!r} looks like a UPN, not an object id.",
                    remedy="Pass the UPN as agent_user_upn= (or --upn), or use the Agent User's object id.",
                )
        if agent_user_upn is not None and "@" not in agent_user_upn:
            raise ConfigurationError(
                f"agent_user_upn {agent_user_upn!r} is not a UPN (user@domain).",
                remedy="Pass the Agent User's userPrincipalName, or its object id as agent_user_id=.",
            )
        super().__init__(
            tenant=tenant,
            blueprint_app_id=blueprint_app_id,
            agent_identity_app_id=agent_identity_app_id,
            signer=signer,
            cert_thumbprint=cert_thumbprint,
            algorithm=algorithm,
            authority_host=authority_host,
            session=session,
            cache=cache,
            retry_policy=retry_policy,
            timeout=timeout,
            clock=clock,
            sleep=sleep,
            deadline=deadline,
        )
        self.agent_user_id = agent_user_id
        self.agent_user_upn = agent_user_upn.strip() if agent_user_upn is not None else None
        self._user_ref = f"oid:{agent_user_id}" if agent_user_id else f"upn:{self.agent_user_upn}"

    @classmethod
    def _config_required(cls) -> tuple[str, ...]:
        from entraclaw.config import USER_TOKEN_REQUIRED

        return USER_TOKEN_REQUIRED

    @classmethod
    def _config_extra_kwargs(cls, config: AgentConfig) -> dict[str, Any]:
        user = config.agent_user()
        assert user is not None  # USER_TOKEN_REQUIRED made load_config insist on one
        return {"agent_user_id": user[1]} if user[0] == "id" else {"agent_user_upn": user[1]}

    def _t2(self) -> CachedToken:
        def obtain() -> CachedToken:
            t1 = self._t1()
            response = self._exchanger.client_credentials(
                hop=2,
                client_id=self.agent_identity_app_id,
                scopes=[EXCHANGE_SCOPE],
                client_assertion=t1.token,
            )
            return CachedToken.from_response(response, now=self._clock())

        return self._cached(self._t2_key, obtain)

    def _t3(self, scopes: tuple[str, ...], *, claims: str | None = None) -> CachedToken:
        key, normalized = self._scopes_key("t3", scopes, client=self.agent_identity_app_id, user=self._user_ref)

        def obtain() -> CachedToken:
            t2 = self._t2()
            t1 = self._t1()
            response = self._exchanger.user_fic(
                client_id=self.agent_identity_app_id,
                scopes=list(normalized),
                client_assertion=t1.token,
                user_assertion=t2.token,
                user_object_id=self.agent_user_id,
                username=self.agent_user_upn,
                claims_challenge=claims,
            )
            return CachedToken.from_response(response, now=self._clock())

        return self._cached(key, obtain, force=claims is not None)

    def _token(self, scopes: tuple[str, ...], *, claims: str | None) -> CachedToken:
        return self._t3(scopes, claims=claims)

    def acquire_chain(self, scopes: Iterable[str]) -> ChainTokens:
        """T1, T2 and T3 for ``scopes`` (cached where fresh): for tracing and diagnostics."""
        t3 = self._t3(tuple(scopes))
        return ChainTokens(t1=self._t1(), t2=self._t2(), t3=t3)

    def __repr__(self) -> str:
        user = self.agent_user_id or self.agent_user_upn
        return (
            f"<AgentUserCredential authority={self.authority} blueprint={self.blueprint_app_id} "
            f"agent_identity={self.agent_identity_app_id} agent_user={user} signer={self.signer.key_description}>"
        )


class AgentIdentityCredential(_ChainCredential):
    """App-only tokens for the Agent Identity itself: Hop 1, then Hop 2 for the resource scope."""

    # The constructor and from_config are _ChainCredential's: the app-only variant needs
    # nothing more.

    def _app_token(self, scopes: tuple[str, ...], *, claims: str | None = None) -> CachedToken:
        key, normalized = self._scopes_key("app", scopes, client=self.agent_identity_app_id)
        if len(normalized) != 1 or not normalized[0].endswith("/.default"):
            raise ConfigurationError(
                f"App-only tokens take one '<resource>/.default' scope, not {list(normalized)}.",
                remedy="Ask for e.g. https://graph.microsoft.com/.default; app permissions come from app roles.",
                client_id=self.agent_identity_app_id,
            )

        def obtain() -> CachedToken:
            t1 = self._t1()
            response = self._exchanger.client_credentials(
                hop=2,
                client_id=self.agent_identity_app_id,
                scopes=list(normalized),
                client_assertion=t1.token,
                claims_challenge=claims,
            )
            return CachedToken.from_response(response, now=self._clock())

        return self._cached(key, obtain, force=claims is not None)

    def _token(self, scopes: tuple[str, ...], *, claims: str | None) -> CachedToken:
        return self._app_token(scopes, claims=claims)

    def acquire_chain(self, scopes: Sequence[str]) -> ChainTokens:
        app = self._app_token(tuple(scopes))
        return ChainTokens(t1=self._t1(), t2=app)

    def __repr__(self) -> str:
        return (
            f"<AgentIdentityCredential authority={self.authority} blueprint={self.blueprint_app_id} "
            f"agent_identity={self.agent_identity_app_id} signer={self.signer.key_description}>"
        )
