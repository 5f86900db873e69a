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
  retried by the background worker itself, with no caller needed, after a backoff
  (:data:`BACKGROUND_RETRY_BASE` doubling to :data:`BACKGROUND_RETRY_MAX`, sooner as the
  token nears its must-wait point, none past expiry or after ``close()``); callers keep
  getting the valid token meanwhile;
- only a token within :data:`~entraclaw.auth.token_cache.EXPIRY_SKEW` of expiry (or
  past it, or absent) makes a caller wait for an exchange.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

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

#: First wait after a failed background refresh before the worker tries that key again (seconds).
BACKGROUND_RETRY_BASE = 10.0
#: Longest such wait; retries come sooner as the token nears its must-wait point.
BACKGROUND_RETRY_MAX = 300.0
#: Shortest wait between two background attempts of one key (bounds the attempts near expiry).
BACKGROUND_RETRY_MIN = 5.0

_WORKER_IDLE_EXIT = 60.0
# How long the worker sleeps at most before it looks at the clock again: a wall clock that
# jumps (suspend, NTP) must not leave a retry waiting on a timeout computed before the jump.
_WORKER_MAX_NAP = 60.0

_HOP_OF_KIND = {"t1": 1, "t2": 2, "t3": 3, "app": 2}


def _hop_of(key: str) -> int | None:
    return _HOP_OF_KIND.get(key.split("|", 1)[0])


def _next_background_attempt(failures: int, now: float, entry: CachedToken) -> float | None:
    """When the worker tries a key again after its ``failures``-th failed background refresh.

    Backoff from :data:`BACKGROUND_RETRY_BASE` doubling to :data:`BACKGROUND_RETRY_MAX`,
    but never later than half-way to the token's must-wait point (where callers start
    waiting on the network), so the attempts come closer together as it nears: an idle
    agent gets several chances before any caller has to wait. Past that point, half-way
    to expiry. Attempts are at least :data:`BACKGROUND_RETRY_MIN` apart, which bounds
    their number (except that one closer than that to the must-wait point moves the next
    onto it); None once the next would be at or past expiry: from then on the next caller
    exchanges in the foreground.
    """
    if not entry.valid_at(now):
        return None
    backoff = min(BACKGROUND_RETRY_MAX, BACKGROUND_RETRY_BASE * 2 ** min(failures - 1, 32))
    target = entry.usable_until if entry.usable_at(now) else entry.expires_on
    remaining = target - now
    delay = min(backoff, max(min(BACKGROUND_RETRY_MIN, remaining), remaining / 2))
    at = now + delay
    return at if at < entry.expires_on else None


class _RefreshOwner(Protocol):
    def _background_refresh(self, key: str) -> None: ...

    def _background_entry(self, key: str) -> CachedToken | None: ...


class _BackgroundRefresher:
    """At most one background refresh per key, run by one daemon worker thread per credential.

    Scheduling is a dict entry and a notify: the caller that finds its token due does not
    wait for a thread to start. A key whose refresh failed stays scheduled for its next
    attempt (:func:`_next_background_attempt`), and the worker runs it then by itself: an
    idle agent has no caller to trigger it, and its token would otherwise expire first.

    The worker holds its credential only through a weak reference (and the credential's
    finalizer closes it), so a credential dropped without ``close()`` is collected and its
    worker ends; the worker also ends when nothing is scheduled for a while.
    """

    def __init__(self, owner: _RefreshOwner, clock: Callable[[], float]) -> None:
        self._owner: weakref.ref[_RefreshOwner] = weakref.ref(owner)
        self._clock = clock
        self._cond = threading.Condition()
        # key -> when it is due (on the credential's clock); insertion order breaks ties.
        self._due: dict[str, float] = {}
        self._in_flight: set[str] = set()
        self._failures: dict[str, int] = {}
        self._worker: threading.Thread | None = None
        self._closed = False

    def schedule(self, key: str) -> None:
        now = self._clock()
        with self._cond:
            # A key already waiting for a retry keeps its backoff: callers do not hasten it.
            if self._closed or key in self._in_flight or key in self._due:
                return
            self._due[key] = now
            if not self._ensure_worker():
                self._due.pop(key, None)
                return
            self._cond.notify_all()

    def _ensure_worker(self) -> bool:
        if self._worker is not None:
            return True
        worker = threading.Thread(target=self._work, name="entraclaw-token-refresh", daemon=True)
        try:
            worker.start()
        except RuntimeError:  # interpreter shutting down: the caller still has its valid token
            return False
        self._worker = worker
        return True

    def _next(self) -> str | None:
        """The key to run now, waiting for one to fall due; None when the worker should end."""
        with self._cond:
            while True:
                if self._closed:
                    break
                if not self._due:
                    if self._cond.wait_for(lambda: self._due or self._closed, timeout=_WORKER_IDLE_EXIT):
                        continue
                    break  # idle: the next schedule() starts another worker
                now = self._clock()
                key = min(self._due, key=self._due.__getitem__)
                if self._due[key] <= now:
                    del self._due[key]
                    self._in_flight.add(key)
                    return key
                # Woken early by schedule(), close() or wait() (which a test calls after moving
                # its fake clock): the clock is read again on every wake-up.
                self._cond.wait(min(self._due[key] - now, _WORKER_MAX_NAP))
            self._worker = None
            self._due.clear()
            self._cond.notify_all()
            return None

    def _work(self) -> None:
        try:
            while (key := self._next()) is not None:
                self._run(key)
        finally:
            with self._cond:
                if self._worker is threading.current_thread():
                    # Ended by something _run does not catch (SystemExit in a refresh): forget the
                    # worker so the next schedule() starts one, and drop the retries that no
                    # thread would run (wait() would otherwise wait for them).
                    self._worker = None
                    self._due.clear()
                    self._cond.notify_all()

    def _run(self, key: str) -> None:
        # The credential is held only for the length of one refresh; this frame ends before the
        # worker waits again, so a pending retry never keeps a dropped credential alive.
        owner = self._owner()
        if owner is None:
            self.close()
            with self._cond:
                self._in_flight.discard(key)
            return
        try:
            owner._background_refresh(key)
        except Exception as exc:  # logged, retried below: the caller already has a valid token
            entry = owner._background_entry(key)
            with self._cond:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                at = None if self._closed or entry is None else _next_background_attempt(failures, self._clock(), entry)
                if at is None:
                    self._failures.pop(key, None)
                else:
                    self._due[key] = at
            # Key and error type only: an exception's text may carry a server's body.
            if at is None:
                logger.warning(
                    "Background refresh of %s failed (%s, attempt %d); no further background attempt "
                    "(the token expires first or the credential is closed); the next caller exchanges.",
                    key,
                    type(exc).__name__,
                    failures,
                )
            else:
                logger.warning(
                    "Background refresh of %s failed (%s, attempt %d); the cached token is still served; "
                    "next attempt in %.0f s.",
                    key,
                    type(exc).__name__,
                    failures,
                    at - self._clock(),
                )
        else:
            with self._cond:
                self._failures.pop(key, None)
        finally:
            with self._cond:
                self._in_flight.discard(key)
                self._cond.notify_all()

    def wait(self, timeout: float | None) -> bool:
        """Until nothing runs and nothing is due by the clock (retries due later do not count)."""

        def settled() -> bool:
            if self._in_flight:
                return False
            now = self._clock()
            return self._closed or all(due > now for due in self._due.values())

        with self._cond:
            self._cond.notify_all()  # the clock may have moved (a test's fake clock): look again
            return self._cond.wait_for(settled, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._due.clear()
            self._failures.clear()
            self._cond.notify_all()


@dataclass(frozen=True)
class ChainTokens:
    """The tokens of one run of the chain (T3 is None for the app-only credential)."""

    t1: CachedToken
    t2: CachedToken
    t3: CachedToken | None = None


class _ChainCredential:
    """Shared machinery: configuration checks, the MSAL exchanger, the caches."""

    #: T1 and T2 are never handed to a caller: they only feed the exchange of the next hop, and
    #: that exchange runs in the background for every caller after the first. So they are renewed
    #: on need (when an outer refresh finds them no longer usable), not at their own refresh point:
    #: Hop 1, the TPM signature, then runs at most once per T1 lifetime instead of once per half
    #: lifetime. True restores refresh-ahead for them (bench/bench_longrun.py's baseline).
    _inner_refresh_ahead = False

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
        self._refresher = _BackgroundRefresher(self, clock)
        # What the worker runs for a key; kept here, not in the worker, so the worker needs only
        # a weak reference to this credential.
        self._background_obtain: dict[str, Callable[[], CachedToken]] = {}
        # A credential dropped without close() still stops its worker's retries.
        weakref.finalize(self, self._refresher.close)
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

    def _cached(
        self, key: str, obtain: Callable[[], CachedToken], *, force: bool = False, ahead: bool = True
    ) -> CachedToken:
        """The token for ``key``: served from memory or the shared file while usable, else exchanged.

        Past its refresh point a usable token is still returned at once, and (``ahead``) one
        background refresh is scheduled. Only ``force`` (a claims challenge) or a token that is
        not usable any more makes the caller wait for an exchange. With ``ahead`` False (T1, T2:
        tokens no caller holds, only the next hop's exchange uses) nothing is refreshed ahead:
        the token is exchanged when an outer refresh needs it and it is no longer usable.
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
                if ahead and not entry.fresh_at(now):
                    self._background_obtain.setdefault(key, obtain)
                    self._refresher.schedule(key)
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

    def _background_entry(self, key: str) -> CachedToken | None:
        return self._memory.get_any(key)

    def _background_refresh(self, key: str) -> None:
        """The background refresh of a due token; raises to the refresher on failure.

        Run when a caller found the token due, and again by the worker alone after a failure.
        By then a caller may have refreshed it (nothing to do), or it may have expired or been
        cleared (nothing to refresh ahead of: the next caller exchanges in the foreground).
        """
        # Taken out while it runs and put back only for a retry: the closure refers to this
        # credential, and a cycle left in place would outlive the refresh for nothing.
        obtain = self._background_obtain.pop(key, None)
        entry = self._memory.get_any(key)
        now = self._clock()
        if obtain is None or entry is None or not entry.valid_at(now) or entry.fresh_at(now):
            return
        try:
            self._refresh_due(key, obtain)
        except BaseException:
            self._background_obtain.setdefault(key, obtain)
            raise

    def _refresh_due(self, key: str, obtain: Callable[[], CachedToken]) -> None:
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
        """Block until no background refresh is running or due (tests, orderly shutdown); False on timeout.

        A retry scheduled for later (after a failure) is not waited for: the worker runs it
        by itself when the clock reaches it. Calling this also makes the worker read the clock
        again, which is how tests with an injected clock move it forward.
        """
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

        return self._cached(self._t1_key, obtain, ahead=self._inner_refresh_ahead)

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

        return self._cached(self._t2_key, obtain, ahead=self._inner_refresh_ahead)

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
