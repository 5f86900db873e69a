"""Fault injection for client tests: throttling, server errors, delays, broken bodies, dropped connections.

``inject(kind, count=N, path=...)`` arms a fault for the next ``N`` requests
whose path ends with ``path`` (or, when ``path`` has a ``*``, matches it as a
pattern: ``/v1.0/chats/*/messages``); faults fire in the order they were armed.
``skip=K`` lets the first ``K`` matching requests through untouched (to hit Hop 2
or 3 rather than Hop 1). Two kinds exist for hostile-server tests:

- ``respond``: answer with exactly ``status``, ``headers`` and ``body`` bytes;
- ``gate``: set ``entered`` when a request arrives, then hold it until
  ``release`` is set (a slow exchange the test controls with events, not time).
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass, field

from entraclaw.errors import EmulatorError

__all__ = ["FAULT_KINDS", "Fault", "FaultInjector"]

FAULT_KINDS = frozenset({"429", "5xx", "delay", "malformed", "drop", "respond", "gate"})


@dataclass
class Fault:
    kind: str
    remaining: int
    path: str
    retry_after: int
    status: int
    delay: float
    skip: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    entered: threading.Event | None = None
    release: threading.Event | None = None


class FaultInjector:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def inject(
        self,
        kind: str,
        *,
        count: int = 1,
        path: str = "/oauth2/v2.0/token",
        retry_after: int = 1,
        status: int = 503,
        delay: float = 0.0,
        skip: int = 0,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        entered: threading.Event | None = None,
        release: threading.Event | None = None,
    ) -> None:
        if kind not in FAULT_KINDS:
            raise EmulatorError(f"Unknown fault kind {kind!r}.", remedy=f"Use one of {sorted(FAULT_KINDS)}.", kind=kind)
        if count < 1:
            raise EmulatorError(f"Fault count {count} must be at least 1.", remedy="Pass count >= 1.")
        if kind == "5xx" and not 500 <= status <= 599:
            raise EmulatorError(f"Status {status} is not a 5xx status.", remedy="Pass status=500..599.")
        if kind == "delay" and delay <= 0:
            raise EmulatorError("A delay fault needs delay > 0 seconds.", remedy="Pass delay=<seconds>.")
        if kind == "respond" and not 100 <= status <= 599:
            raise EmulatorError(f"Status {status} is not an HTTP status.", remedy="Pass status=100..599.")
        if kind == "gate" and release is None:
            raise EmulatorError("A gate fault needs a release event.", remedy="Pass release=threading.Event().")
        if skip < 0:
            raise EmulatorError(f"Fault skip {skip} is negative.", remedy="Pass skip >= 0.")
        fault = Fault(kind, count, path, retry_after, status, delay, skip, dict(headers or {}), body, entered, release)
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> Fault | None:
        """The fault for a request to ``path``, consuming one use of it, or None."""
        with self._lock:
            for fault in self._faults:
                if _matches(path, fault.path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(f.remaining for f in self._faults)


def _matches(path: str, pattern: str) -> bool:
    if "*" in pattern:
        # '*' stops at '/', so /v1.0/chats/*/messages matches one chat's messages and nothing deeper.
        return fnmatch.fnmatchcase(path, pattern) and path.count("/") == pattern.count("/")
    return path.endswith(pattern) or path == pattern
