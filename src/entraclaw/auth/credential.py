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
cache each token until shortly before its real expiry (one refresh in flight
per key, a warm ``get_token`` is a dict lookup), optionally share tokens with
the machine's other processes through a :class:`PersistedTokenStore`, and
implement azure-core's ``TokenCredential`` / ``SupportsTokenInfo`` protocols.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from entraclaw.auth.adapters import TokenRequestOptions, client_assertion_callable
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
from entraclaw.errors import ConfigurationError, NetworkError, TokenEndpointUnavailableError

if TYPE_CHECKING:
    from entraclaw.config import AgentConfig

__all__ = ["AgentIdentityCredential", "AgentUserCredential", "ChainTokens"]

_C = TypeVar("_C", bound="_ChainCredential")

logger = logging.getLogger(__name__)

# A token due for refresh but valid this much longer is served when the
# endpoint is down, instead of failing the caller.
_STALE_GRACE = 30.0


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
    ) -> None:
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
        self._holding_store = threading.local()
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
    def _config_and_kwargs(
        cls,
        config: AgentConfig | None,
        overrides: dict[str, Any],
        *,
        required: tuple[str, ...],
        environ: Any,
        env_file: Any,
        keystore: Any,
        password: str | None,
        session: requests.Session | None,
    ) -> tuple[AgentConfig, dict[str, Any], requests.Session | None]:
        # Imported here: entraclaw.config pulls in the platform layer, which a credential built
        # from explicit arguments never needs.
        from entraclaw import config as config_module

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
        kwargs: dict[str, Any] = {
            "tenant": config.tenant_id,
            "authority_host": config.authority_host,
            "blueprint_app_id": config.blueprint_app_id,
            "agent_identity_app_id": config.agent_identity_app_id,
            "signer": signer,
            "cert_thumbprint": config.cert_x5t_s256,
            "session": session,
        }
        return config, kwargs, owned

    # --- caching -----------------------------------------------------------------------

    @property
    def signer(self) -> Signer:
        return self._assertion.signer

    @property
    def token_endpoint(self) -> str:
        return self._exchanger.token_endpoint

    def _cached(self, key: str, obtain: Callable[[], CachedToken], *, force: bool = False) -> CachedToken:
        if not force:
            entry = self._memory.get_fresh(key)
            if entry is not None:
                return entry
        if self._store is not None and not getattr(self._holding_store, "held", False):
            # Lock order, for every thread: the shared file lock first, then per-key locks (T3,
            # T2, T1, as the hops nest). Taking a key lock first and the file lock inside it
            # deadlocks against a thread that holds the file lock and needs that key for a hop.
            with self._store.lock():
                self._holding_store.held = True
                try:
                    return self._refresh_under_key_lock(key, obtain, force=force, shared=True)
                finally:
                    self._holding_store.held = False
        return self._refresh_under_key_lock(key, obtain, force=force, shared=False)

    def _refresh_under_key_lock(
        self, key: str, obtain: Callable[[], CachedToken], *, force: bool, shared: bool
    ) -> CachedToken:
        with self._memory.refresh_lock(key):
            if not force:
                entry = self._memory.get_fresh(key)
                if entry is not None:  # another thread refreshed it while we waited
                    return entry
            try:
                if shared:
                    return self._refresh_shared(key, obtain, force=force)
                return self._refresh(key, obtain)
            except (TokenEndpointUnavailableError, NetworkError) as exc:
                stale = self._memory.get_any(key)
                if stale is not None and stale.expires_on - self._clock() > _STALE_GRACE:
                    logger.warning(
                        "Refreshing %s failed (%s); serving the cached token, valid until %d.",
                        key,
                        type(exc).__name__,
                        int(stale.expires_on),
                    )
                    return stale
                raise

    def _refresh(self, key: str, obtain: Callable[[], CachedToken]) -> CachedToken:
        entry = obtain()
        self._memory.put(key, entry, replace=True)
        logger.info("Obtained %s, expires %d, refresh after %d.", key, int(entry.expires_on), int(entry.refresh_on))
        return entry

    def _refresh_shared(self, key: str, obtain: Callable[[], CachedToken], *, force: bool) -> CachedToken:
        # Check the shared file, exchange, write back -- all under the inter-process
        # lock (held by _cached), so concurrent cold processes exchange once.
        assert self._store is not None
        on_disk = self._store.load()
        for disk_key, disk_entry in on_disk.items():
            self._memory.put(disk_key, disk_entry)
        entry = None if force else self._memory.get_fresh(key)
        if entry is not None:
            logger.debug("Token %s found in the shared cache %s.", key, self._store.path)
            return entry
        entry = self._refresh(key, obtain)
        merged = dict(on_disk)
        merged.update(self._memory.snapshot())
        self._store.save(merged)
        return entry

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
        **kwargs: Any,
    ) -> AccessToken:
        """A token for ``scopes`` (azure-core ``TokenCredential``).

        A ``claims`` challenge forces a new exchange of the last hop. ``enable_cae``
        is accepted for protocol compatibility; tokens are cached the same way.
        """
        if claims is None and tenant_id is None:
            known = self._scope_keys.get(scopes)
            if known is not None:
                entry = self._memory.get_fresh(known[0])
                if entry is not None:
                    return entry.access_token
        self._check_request(claims, tenant_id)
        return self._token(scopes, claims=claims).access_token

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        """A token for ``scopes`` (azure-core ``SupportsTokenInfo``)."""
        options = options or {}
        claims = options.get("claims")
        self._check_request(claims, options.get("tenant_id"))
        return self._token(scopes, claims=claims).info

    def clear_cache(self) -> None:
        """Forget the tokens held in memory (the shared store is left alone)."""
        self._memory.clear()

    def close(self) -> None:
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
        )
        self.agent_user_id = agent_user_id
        self.agent_user_upn = agent_user_upn.strip() if agent_user_upn is not None else None
        self._user_ref = f"oid:{agent_user_id}" if agent_user_id else f"upn:{self.agent_user_upn}"

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
        from entraclaw.config import USER_TOKEN_REQUIRED

        loaded, kwargs, owned = cls._config_and_kwargs(
            config,
            overrides,
            required=USER_TOKEN_REQUIRED,
            environ=environ,
            env_file=env_file,
            keystore=keystore,
            password=password,
            session=session,
        )
        user = loaded.agent_user()
        assert user is not None
        if user[0] == "id":
            kwargs["agent_user_id"] = user[1]
        else:
            kwargs["agent_user_upn"] = user[1]
        credential = cls(cache=cache, algorithm=algorithm, **kwargs)
        credential._owned_session = owned
        return credential

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

    # The constructor is _ChainCredential's: the app-only variant needs nothing more.

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
        """Like :meth:`AgentUserCredential.from_config`; the Agent User fields are not needed."""
        from entraclaw.config import TOKEN_REQUIRED

        _loaded, kwargs, owned = cls._config_and_kwargs(
            config,
            overrides,
            required=TOKEN_REQUIRED,
            environ=environ,
            env_file=env_file,
            keystore=keystore,
            password=password,
            session=session,
        )
        credential = cls(cache=cache, algorithm=algorithm, **kwargs)
        credential._owned_session = owned
        return credential

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
