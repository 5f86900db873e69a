"""How often and how long to retry a throttled (429) or failing (5xx) token request.

Entra's Retry-After is a floor, not a hint: a retry sooner than it is wasted
(and, through MSAL's throttle cache, would not even reach the wire). A
Retry-After longer than :attr:`TokenRetryPolicy.max_retry_after` is not slept
through inside ``get_token``; the caller gets the error with ``retry_after``
set and decides.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from entraclaw.errors import ConfigurationError

__all__ = ["DEFAULT_RETRY_POLICY", "TokenRetryPolicy"]


@dataclass(frozen=True)
class TokenRetryPolicy:
    """Bounded exponential backoff with jitter that honours Retry-After.

    ``max_attempts`` counts the first try. ``retry_network_errors`` retries
    connection resets and timeouts (not TLS failures: those do not heal).
    """

    max_attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    jitter: float = 0.2
    retry_network_errors: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ConfigurationError(
                f"TokenRetryPolicy(max_attempts={self.max_attempts}, base_delay={self.base_delay}, "
                f"max_delay={self.max_delay}, max_retry_after={self.max_retry_after}) has a negative or zero bound.",
                remedy="Use max_attempts >= 1 and non-negative delays.",
            )
        if not 0 <= self.jitter < 1:
            raise ConfigurationError(
                f"TokenRetryPolicy jitter {self.jitter} must be in [0, 1).", remedy="Use the default 0.2."
            )

    def delay_before(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when it must not be made.

        ``attempt`` is the number of attempts already made (1 after the first).
        """
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return max(0.0, retry_after)
        backoff = min(self.max_delay, self.base_delay * float(2 ** max(0, attempt - 1)))
        return backoff * (1 + random.uniform(-self.jitter, self.jitter))


DEFAULT_RETRY_POLICY = TokenRetryPolicy()
