"""In-memory token cache: real expiry, a refresh point well before it, a tiny warm path.

Each token has a *refresh point* (``refresh_on``) and an expiry (``expires_on``, from
``expires_in``). Before the refresh point it is simply served. Between the refresh
point and expiry it is still served at once while one refresh runs in the background
(see :mod:`entraclaw.auth.credential`); only an expired token makes a caller wait.

The refresh point, as MSAL and azure-identity place it:

- when Entra sends ``refresh_in``, exactly that (clamped inside the lifetime);
- otherwise half the lifetime, and at least :data:`REFRESH_BEFORE_EXPIRY` (5 min)
  before expiry; a token too short for both (under 10 min: the emulator's test
  tokens) keeps a quarter of its lifetime as served-fresh time, so it is not
  refreshed on every call.

Keys are readable strings built from tenant, client ids, user and scopes —
never from token values — so a key can appear in a log line.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AccessToken",
    "AccessTokenInfo",
    "CachedToken",
    "MemoryTokenCache",
    "cache_key",
    "normalize_scopes",
    "refresh_margin",
]

MIN_REFRESH_MARGIN = 300.0  # kept for callers of the old name: the 5-minute rule

REFRESH_BEFORE_EXPIRY = 300.0
#: Served-fresh share of a token too short for the 5-minute rule.
SHORT_TOKEN_FRESH_SHARE = 0.25
#: How long before expiry a token stops being handed out or sent to the next hop: a token
#: that expires while a request is in flight is refused by the resource.
EXPIRY_SKEW = 30.0


class AccessToken(tuple[str, int]):
    """Same shape as ``azure.core.credentials.AccessToken``: ``(token, expires_on)``.

    A tuple subclass rather than a NamedTuple so ``repr`` can leave the token out.
    """

    __slots__ = ()

    def __new__(cls, token: str, expires_on: int) -> AccessToken:
        return tuple.__new__(cls, (token, expires_on))

    @property
    def token(self) -> str:
        return self[0]

    @property
    def expires_on(self) -> int:
        return self[1]

    def __repr__(self) -> str:
        return f"AccessToken(token=<redacted {len(self[0])} chars>, expires_on={self[1]})"


@dataclass(frozen=True)
class AccessTokenInfo:
    """Same attributes as ``azure.core.credentials.AccessTokenInfo``."""

    token: str = field(repr=False)
    expires_on: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type name, not a secret
    refresh_on: int | None = None


def refresh_margin(lifetime: float) -> float:
    """Seconds before expiry at which a token of ``lifetime`` seconds is due for refresh."""
    if lifetime <= 0:
        return 0.0
    margin = max(lifetime / 2, REFRESH_BEFORE_EXPIRY)
    return min(margin, lifetime * (1 - SHORT_TOKEN_FRESH_SHARE))


@dataclass(frozen=True)
class CachedToken:
    """One token with the times that govern it (epoch seconds)."""

    token: str = field(repr=False)
    token_type: str
    expires_on: float
    refresh_on: float
    obtained_on: float
    access_token: AccessToken = field(repr=False, compare=False)
    info: AccessTokenInfo = field(repr=False, compare=False)

    @classmethod
    def create(
        cls,
        token: str,
        *,
        expires_on: float,
        obtained_on: float,
        token_type: str = "Bearer",  # noqa: S107 - the OAuth token type name, not a secret
        refresh_on: float | None = None,
    ) -> CachedToken:
        lifetime = max(0.0, expires_on - obtained_on)
        if refresh_on is not None and math.isfinite(refresh_on):
            computed = min(refresh_on, expires_on)  # Entra's refresh_in is honoured as sent
        else:
            computed = expires_on - refresh_margin(lifetime)
        computed = max(obtained_on, computed)
        return cls(
            token=token,
            token_type=token_type,
            expires_on=expires_on,
            refresh_on=computed,
            obtained_on=obtained_on,
            access_token=AccessToken(token, int(expires_on)),
            info=AccessTokenInfo(token, int(expires_on), token_type, int(computed)),
        )

    @classmethod
    def from_response(cls, response: Mapping[str, Any], *, now: float) -> CachedToken:
        """From a checked token response: ``expires_in`` / ``refresh_in`` are relative to ``now``.

        Raises ValueError for a response without a usable token or lifetime; the exchanger
        checks responses before this, so that is a bug, not a server's doing.
        """
        token = response.get("access_token")
        expires_in = response.get("expires_in")
        if not isinstance(token, str) or not token:
            raise ValueError("token response without an access_token")
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or not math.isfinite(expires_in):
            raise ValueError("token response without a finite expires_in")
        refresh_in = response.get("refresh_in")
        refresh_on: float | None = None
        if isinstance(refresh_in, (int, float)) and not isinstance(refresh_in, bool) and math.isfinite(refresh_in):
            refresh_on = now + max(0.0, float(refresh_in))
        token_type = response.get("token_type")
        return cls.create(
            token,
            expires_on=now + float(expires_in),
            obtained_on=now,
            token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
            refresh_on=refresh_on,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "token_type": self.token_type,
            "expires_on": self.expires_on,
            "refresh_on": self.refresh_on,
            "obtained_on": self.obtained_on,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CachedToken:
        token = data["token"]
        if not isinstance(token, str) or not token:
            raise ValueError("cache entry without a token")
        try:
            times = [float(data[name]) for name in ("expires_on", "obtained_on", "refresh_on")]
        except OverflowError as exc:  # an integer too large for a float
            raise ValueError("cache entry time out of range") from exc
        if not all(math.isfinite(t) for t in times):
            raise ValueError("cache entry time is not a finite number")
        expires_on, obtained_on, refresh_on = times
        return cls.create(
            token,
            expires_on=expires_on,
            obtained_on=obtained_on,
            token_type=str(data.get("token_type") or "Bearer"),
            refresh_on=refresh_on,
        )

    def fresh_at(self, now: float) -> bool:
        return now < self.refresh_on

    @property
    def usable_until(self) -> float:
        """The must-wait point: from here on callers no longer get this token but wait for a new one."""
        return self.expires_on - min(EXPIRY_SKEW, (self.expires_on - self.obtained_on) / 10)

    def usable_at(self, now: float) -> bool:
        """Still worth handing out (or sending to the next hop): not within the expiry skew."""
        return now < self.usable_until

    def valid_at(self, now: float) -> bool:
        return now < self.expires_on


def normalize_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Scopes as a sorted, de-duplicated tuple (Entra treats them as a set)."""
    return tuple(sorted({s.strip() for s in scopes if s and s.strip()}))


def cache_key(kind: str, **parts: str | Iterable[str] | None) -> str:
    """``kind|name=value|...`` with parts in a fixed order; iterables are normalised scope sets."""
    fields = [kind]
    for name in sorted(parts):
        value = parts[name]
        if value is None:
            continue
        text = value if isinstance(value, str) else " ".join(normalize_scopes(value))
        fields.append(f"{name}={text.lower()}")
    return "|".join(fields)


class MemoryTokenCache:
    """Thread-safe map key -> :class:`CachedToken` with a per-key refresh lock."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[str, CachedToken] = {}
        self._lock = threading.Lock()
        self._refresh_locks: dict[str, threading.Lock] = {}

    def get_fresh(self, key: str) -> CachedToken | None:
        """The entry if it is before its refresh time. The hot path: one lookup under a lock."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.refresh_on:
            return entry
        return None

    def get_any(self, key: str) -> CachedToken | None:
        """The entry even if it is due for refresh (used as a fallback while it is still valid)."""
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, token: CachedToken, *, replace: bool = False) -> None:
        """Store ``token`` unless the entry held lives longer; ``replace`` stores it regardless.

        Keeping the longer-lived entry suits merging the shared store (another process may
        have written a newer token). A token this process just fetched must always win: after
        a claims challenge it replaces a refused token that may well expire later.
        """
        with self._lock:
            current = self._entries.get(key)
            if replace or current is None or token.expires_on >= current.expires_on:
                self._entries[key] = token

    def refresh_lock(self, key: str) -> threading.Lock:
        with self._lock:
            lock = self._refresh_locks.get(key)
            if lock is None:
                lock = self._refresh_locks[key] = threading.Lock()
            return lock

    def snapshot(self) -> dict[str, CachedToken]:
        with self._lock:
            return dict(self._entries)

    def remove(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"<MemoryTokenCache {len(self)} entries>"
