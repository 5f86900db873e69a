"""The one rule for "this object is still propagating" and the one bounded wait that retries it.

Entra is eventually consistent: for seconds to minutes after a create, a write that references the
new object can land on a replica that does not know it yet. What real Entra answers then (sources):

- ``400 Object with id {id} not found`` for a dependent write right after a create — Microsoft Entra
  Agent ID FAQ, "Why do sequential Microsoft Graph API requests sometimes fail when creating agent
  identity objects?" (https://learn.microsoft.com/entra/agent-id/faq);
- ``404`` on a read or update of an object just created — Microsoft Entra developer support blog,
  "Why do I sometimes get a 404 when trying to update an Azure directory object after I just
  created it?";
- ``Principal was not found`` / ``… does not exist`` on a consent grant for a new Agent User, the
  Blueprint principal create returning non-2xx while the Blueprint propagates — upstream
  microsoft/entraclaw ``scripts/create_entra_agent_ids.py`` (its retry loops);
- ``AgentIdentity_AgentBlueprintPrincipalDoesNotExist`` ("The Agent Blueprint Principal for the
  Agent Blueprint does not exist") — upstream ``docs/runbooks/hard-won-learnings.md``;
- ``Permission being assigned was not found on application`` on an app role assignment — upstream
  ``docs/reference/agent-foundry-create-entra-agent-ids.py``.

Every dependent write setup and rotate send goes through :class:`PropagationWait` with
:func:`is_propagation_error` deciding; the backoff is :mod:`entraclaw.auth.retry`'s rule.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from entraclaw.auth.retry import TokenRetryPolicy
from entraclaw.errors import GraphRequestError, TokenExchangeError

__all__ = ["PropagationWait", "http_status", "is_propagation_error"]

T = TypeVar("T")

# Graph error codes that mean "not (yet) in this replica".
_PROPAGATION_CODES = frozenset(
    {
        "Request_ResourceNotFound",
        "ResourceNotFound",
        "NotFound",
        "AgentIdentity_AgentBlueprintPrincipalDoesNotExist",
    }
)
# The texts real Entra gives on a 400 for a referenced object it does not know yet.
_PROPAGATION_TEXT = re.compile(
    r"object with id \S+ not found"
    r"|principal was not found"
    r"|permission being assigned was not found"
    r"|does not exist(?! on type)",  # "Property 'x' does not exist on type ..." is a schema error, not a lag
    re.IGNORECASE,
)
# A Hop 1 while a new Blueprint / Agent Identity / consent is not yet visible to the token service.
_PROPAGATION_AADSTS = frozenset({70000, 700016, 7000112, 500011, 700027, 65001, 50034})


def http_status(exc: BaseException) -> int | None:
    status = getattr(exc, "http_status", None)
    return status if isinstance(status, int) else None


def is_propagation_error(exc: BaseException) -> bool:
    """True for the answers real Entra gives about an object created moments ago and not yet replicated."""
    if isinstance(exc, GraphRequestError):
        status = http_status(exc)
        if status == 404:
            return True
        if status != 400:
            return False
        return getattr(exc, "code", None) in _PROPAGATION_CODES or bool(
            _PROPAGATION_TEXT.search(str(getattr(exc, "message", "")))
        )
    if isinstance(exc, TokenExchangeError):
        return getattr(exc, "aadsts_code", None) in _PROPAGATION_AADSTS
    return False


@dataclass
class PropagationWait:
    """Bounded exponential backoff while a new object propagates, with one progress line per wait.

    ``retries`` counts the waits per step (``run(..., step=)``), for the bench and the summary.
    """

    timeout: float = 180.0
    first_delay: float = 1.0
    max_delay: float = 15.0
    echo: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    waits: int = field(default=0)
    retries: Counter[str] = field(default_factory=Counter)

    def run(
        self,
        what: str,
        action: Callable[[], T],
        *,
        retry_if: Callable[[BaseException], bool] | None = None,
        step: str | None = None,
    ) -> T:
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
                self.retries[step or what] += 1
                self.echo(
                    f"      waiting for {what} to propagate in the directory "
                    f"(attempt {attempt}, {elapsed:.0f}s so far, next try in {delay:.0f}s, gives up after "
                    f"{self.timeout:.0f}s)"
                )
                self.sleep(delay)
