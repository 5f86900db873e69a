"""Counters the tests and benchmarks read: one record per token request."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["Stats"]


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token_requests: list[dict[str, Any]] = []

    def record_token_request(
        self, *, hop: int | None, grant_type: str | None, client_id: str | None, status: int
    ) -> None:
        entry = {"hop": hop, "grant_type": grant_type, "client_id": client_id, "status": status}
        with self._lock:
            self._token_requests.append(entry)

    @property
    def token_requests(self) -> list[dict[str, Any]]:
        """A copy: each entry is {"hop": 1|2|3|None, "grant_type", "client_id", "status"}."""
        with self._lock:
            return [dict(e) for e in self._token_requests]

    def count(self, hop: int | None = None) -> int:
        with self._lock:
            if hop is None:
                return len(self._token_requests)
            return sum(1 for e in self._token_requests if e["hop"] == hop)

    def reset(self) -> None:
        with self._lock:
            self._token_requests.clear()
