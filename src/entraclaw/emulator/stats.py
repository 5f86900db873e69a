"""Counters the tests and benchmarks read: one record per token request.

The per-request records are a ring of the last ``max_records`` (a long-running emulator
must not grow without bound); the counts per hop are exact for the emulator's lifetime.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

__all__ = ["DEFAULT_MAX_RECORDS", "Stats"]

DEFAULT_MAX_RECORDS = 100_000


class Stats:
    def __init__(self, max_records: int = DEFAULT_MAX_RECORDS) -> None:
        self.max_records = max_records
        self._lock = threading.Lock()
        self._token_requests: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._per_hop: Counter[int | None] = Counter()
        self._total = 0

    def record_token_request(
        self, *, hop: int | None, grant_type: str | None, client_id: str | None, status: int
    ) -> None:
        entry = {"hop": hop, "grant_type": grant_type, "client_id": client_id, "status": status}
        with self._lock:
            self._token_requests.append(entry)
            self._per_hop[hop] += 1
            self._total += 1

    @property
    def token_requests(self) -> list[dict[str, Any]]:
        """A copy of the most recent records: {"hop": 1|2|3|None, "grant_type", "client_id", "status"}."""
        with self._lock:
            return [dict(e) for e in self._token_requests]

    def count(self, hop: int | None = None) -> int:
        """Requests since start (or reset), for one hop or all: exact even past ``max_records``."""
        with self._lock:
            if hop is None:
                return self._total
            return self._per_hop[hop]

    def reset(self) -> None:
        with self._lock:
            self._token_requests.clear()
            self._per_hop.clear()
            self._total = 0
