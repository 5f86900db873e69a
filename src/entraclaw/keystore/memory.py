"""An in-process store for unit tests. Never chosen by :func:`~entraclaw.keystore.default_keystore`."""

from __future__ import annotations

import threading

from entraclaw.keystore.base import EntryInfo, KeyStore, validate_entry, validate_secret

__all__ = ["MemoryStore"]


class MemoryStore(KeyStore[str]):
    """Values live in a dict of this object and die with it: nothing is protected, nothing persists."""

    name = "memory"

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()

    def put(self, entry: str, secret: str) -> None:
        entry = validate_entry(entry, backend=self.name)
        secret = validate_secret(secret, backend=self.name, entry=entry)
        with self._lock:
            self._values[entry] = secret

    def get(self, entry: str) -> str | None:
        entry = validate_entry(entry, backend=self.name)
        with self._lock:
            return self._values.get(entry)

    def delete(self, entry: str) -> bool:
        entry = validate_entry(entry, backend=self.name)
        with self._lock:
            return self._values.pop(entry, None) is not None

    def describe(self, entry: str) -> EntryInfo:
        entry = validate_entry(entry, backend=self.name)
        with self._lock:
            value = self._values.get(entry)
        size = None if value is None else len(value.encode("utf-8"))
        return EntryInfo(self.name, entry, value is not None, f"process memory (pid-local, {self.name})", size)

    def __repr__(self) -> str:
        with self._lock:
            count = len(self._values)
        return f"<MemoryStore {count} entries>"
