"""The total time budget of one ``get_token`` call, shared by every wait inside it.

A caller's budget is set once, at the top of ``get_token``, and read by everything that
can wait underneath it on the same thread: the per-key lock of a token another thread
is exchanging, the cross-process exchange lock, each HTTP request's timeout, and every
retry delay and Retry-After of all three hops. When a wait would run past the budget,
:meth:`Deadline.exceeded` builds the typed error naming the hop and what was waited on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from entraclaw.errors import TokenDeadlineExceededError

__all__ = ["DEFAULT_DEADLINE", "Deadline", "current_deadline", "deadline_scope"]

#: Default budget of one ``get_token`` call, in seconds (why 30: see ``AgentUserCredential``).
DEFAULT_DEADLINE = 30.0

_LOCAL = threading.local()

_HOP_NAMES = {1: "Hop 1", 2: "Hop 2", 3: "Hop 3", None: "the token request"}


@dataclass(frozen=True)
class Deadline:
    budget: float
    end: float
    clock: Callable[[], float]

    @classmethod
    def start(cls, budget: float, clock: Callable[[], float]) -> Deadline:
        return cls(budget, clock() + budget, clock)

    def remaining(self) -> float:
        return self.end - self.clock()

    def allows(self, seconds: float) -> bool:
        return self.clock() + seconds <= self.end

    def exceeded(
        self, *, hop: int | None, client_id: str | None, waited_on: str, detail: str = ""
    ) -> TokenDeadlineExceededError:
        elapsed = max(0.0, self.budget - self.remaining())
        what = {
            "Retry-After": "the server's Retry-After",
            "backoff": "a retry delay",
            "lock": "another exchange of the same token (a thread or process holding its lock)",
            "network": "an answer from the token endpoint",
        }.get(waited_on, waited_on)
        client = f" for client {client_id}" if client_id else ""
        return TokenDeadlineExceededError(
            f"{_HOP_NAMES.get(hop, 'the token request')}{client}: get_token's deadline of {self.budget:g} s ran out "
            f"after {elapsed:.1f} s waiting on {what} ({waited_on}){detail}.",
            hop=hop,
            client_id=client_id,
            error="deadline_exceeded",
            aadsts_code=None,
            correlation_id=None,
            trace_id=None,
            http_status=None,
            waited_on=waited_on,
            deadline=self.budget,
            elapsed=round(elapsed, 3),
        )


def current_deadline() -> Deadline | None:
    """The budget of the ``get_token`` call running on this thread, if any."""
    deadline: Deadline | None = getattr(_LOCAL, "deadline", None)
    return deadline


@contextmanager
def deadline_scope(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` current on this thread; an outer scope (a nested hop) keeps its own."""
    outer = current_deadline()
    if outer is not None and outer.end <= deadline.end:
        yield outer
        return
    _LOCAL.deadline = deadline
    try:
        yield deadline
    finally:
        _LOCAL.deadline = outer
