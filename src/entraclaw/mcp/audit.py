"""The agent's audit trail: one JSON line per tool call in ``audit.jsonl`` in the state directory.

Each line says when, which tool, with which arguments (message text reduced to its SHA-256
and length, so the trail proves *what* was sent without keeping it), how it ended
(``ok``, ``error``, ``refused``, ``declined``, ``cancelled``, ``timeout``), the Graph
request ids and how long it took. Nothing JWT-shaped is ever written: every string goes
through :func:`entraclaw.auth.token_errors.redact` first.

Appends are atomic: the file is opened ``O_APPEND`` (owner-only from creation) and each
record is one ``write`` of one line, so concurrent servers never interleave half-lines and
a kill leaves at most a missing last line, never a torn one that a reader would choke on
(readers skip a line that does not parse, and say how many they skipped). Past
``max_bytes`` the file is rotated to ``audit.jsonl.1`` (``.2`` ... up to ``keep``) under
an inter-process lock, so two servers never rotate the same file twice.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entraclaw.auth.token_errors import redact
from entraclaw.errors import ConfigurationError
from entraclaw.platform import files, paths

__all__ = [
    "BODY_FIELDS",
    "DEFAULT_KEEP",
    "DEFAULT_MAX_BYTES",
    "STATUSES",
    "AuditFilter",
    "AuditLog",
    "reduce_arguments",
]

#: Argument names whose values are message content: kept as hash + length, never as text.
BODY_FIELDS = frozenset({"text", "body", "content", "subject", "html"})
#: How a call ended.
STATUSES = ("ok", "error", "refused", "declined", "cancelled", "timeout")
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_KEEP = 3
_MAX_STRING = 300
_APPEND = os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _digest(text: str) -> dict[str, Any]:
    data = text.encode("utf-8", "surrogatepass")
    return {"sha256": hashlib.sha256(data).hexdigest(), "length": len(text)}


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        text = redact(value)
        return text if len(text) <= _MAX_STRING else text[:_MAX_STRING] + f"...(+{len(text) - _MAX_STRING})"
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if depth > 4:
        return "[nested]"
    if isinstance(value, Mapping):
        return {str(k): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth + 1) for v in value[:50]]
    return _clean(str(value), depth + 1)


def reduce_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments as the trail keeps them: bodies as ``{sha256, length}``, other strings redacted."""
    reduced: dict[str, Any] = {}
    for name, value in arguments.items():
        if name in BODY_FIELDS and isinstance(value, str):
            reduced[name] = _digest(value)
        else:
            reduced[name] = _clean(value)
    return reduced


@dataclass(frozen=True)
class AuditFilter:
    """Which records :meth:`AuditLog.read` returns (all conditions must hold)."""

    tool: str | None = None
    status: str | None = None
    since: _dt.datetime | None = None
    last: int | None = None

    def matches(self, record: Mapping[str, Any]) -> bool:
        if self.tool is not None and record.get("tool") != self.tool:
            return False
        if self.status is not None and record.get("status") != self.status:
            return False
        if self.since is not None:
            try:
                when = _dt.datetime.fromisoformat(str(record.get("time", "")).replace("Z", "+00:00"))
            except ValueError:
                return False
            if when.tzinfo is None:
                when = when.replace(tzinfo=_dt.timezone.utc)
            if when < self.since:
                return False
        return True


class AuditLog:
    """Appends to and reads ``audit.jsonl``. ``path`` defaults to the state directory's."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep: int = DEFAULT_KEEP,
    ) -> None:
        self.path = Path(path) if path is not None else paths.audit_log_path()
        if max_bytes < 1024 or keep < 1:
            raise ConfigurationError(
                f"Audit log {self.path}: max_bytes={max_bytes} keep={keep} is too small to keep a trail.",
                remedy="Use max_bytes >= 1024 and keep >= 1 (the defaults are 5 MiB and 3).",
                path=str(self.path),
            )
        self.max_bytes = max_bytes
        self.keep = keep
        self.skipped = 0  # unparseable lines the last read() passed over
        self._lock = threading.Lock()

    # --- writing ----------------------------------------------------------------------------

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record (a line); ``time`` is added when missing. Raises ConfigurationError on I/O failure."""
        entry = {"time": _now(), **record}
        line = (json.dumps(_clean(entry), ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            fd = self._open()
            try:
                if self._due(fd, len(line)):
                    os.close(fd)
                    fd = -1
                    self._rotate(len(line))
                    fd = self._open()
                written = os.write(fd, line)
                if written != len(line):  # a full disk: say so rather than leave half a record unnoticed
                    raise OSError(28, "short write")
            except OSError as exc:
                raise self._error("append to", exc) from exc
            finally:
                if fd >= 0:
                    os.close(fd)

    def _open(self) -> int:
        """The log opened for appending; created owner-only (and its directory) when missing.

        A tool call pays one ``open`` and one ``fstat`` here: the directory and the file are looked
        at only when the open says they are missing."""
        try:
            return os.open(self.path, _APPEND, 0o600)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error("open", exc) from exc
        try:
            files.ensure_private_dir(self.path.parent)
            fd = os.open(self.path, _APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another server created it in between
            return self._open()
        except OSError as exc:
            raise self._error("open", exc) from exc
        try:
            if sys.platform == "win32":
                files.restrict_to_owner(self.path)
            else:
                os.fchmod(fd, 0o600)  # owner-only whatever the umask
        except OSError as exc:
            os.close(fd)
            raise self._error("open", exc) from exc
        return fd

    def _due(self, fd: int, incoming: int) -> bool:
        try:
            size = os.fstat(fd).st_size
        except OSError as exc:
            raise self._error("stat", exc) from exc
        return size > 0 and size + incoming > self.max_bytes

    def _rotate(self, incoming: int) -> None:
        from entraclaw.auth.file_lock import InterProcessLock

        with InterProcessLock(self.path.with_name(self.path.name + ".lock"), timeout=10.0):
            try:
                if self.path.stat().st_size + incoming <= self.max_bytes:
                    return  # another process rotated while this one waited
            except FileNotFoundError:
                return
            try:
                for index in range(self.keep - 1, 0, -1):
                    older = self._rotated(index)
                    if older.exists():
                        os.replace(older, self._rotated(index + 1))
                os.replace(self.path, self._rotated(1))
                files.fsync_dir(self.path.parent)
            except OSError as exc:
                raise self._error("rotate", exc) from exc

    def _rotated(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def _error(self, action: str, exc: OSError) -> ConfigurationError:
        return ConfigurationError(
            f"Cannot {action} the audit log {self.path}: {exc.strerror or type(exc).__name__}.",
            remedy=f"Make {self.path.parent} writable by this user (or set ENTRACLAW_HOME to a directory that is); "
            "`entraclaw doctor` checks the state directory.",
            path=str(self.path),
            os_error=exc.errno,
        )

    # --- reading ----------------------------------------------------------------------------

    def files_oldest_first(self) -> list[Path]:
        return [p for p in (*(self._rotated(i) for i in range(self.keep, 0, -1)), self.path) if p.exists()]

    def _records(self) -> Iterator[dict[str, Any]]:
        self.skipped = 0
        for path in self.files_oldest_first():
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise self._error("read", exc) from exc
            for raw in data.splitlines():
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    self.skipped += 1
                    continue
                if isinstance(record, dict):
                    yield record
                else:
                    self.skipped += 1

    def read(self, query: AuditFilter | None = None) -> list[dict[str, Any]]:
        """Matching records, oldest first (the last ``query.last`` of them when set)."""
        query = query or AuditFilter()
        matched = [r for r in self._records() if query.matches(r)]
        if query.last is not None:
            matched = matched[-query.last :] if query.last > 0 else []
        return matched


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_record(record: Mapping[str, Any]) -> str:
    """One human line: time, tool, status, duration, the request ids and the arguments."""
    parts = [
        str(record.get("time", "?")),
        f"{record.get('tool', '?'):<20}",
        f"{record.get('status', '?'):<9}",
        f"{record.get('duration_ms', '?')} ms",
    ]
    if record.get("error_code"):
        parts.append(f"code={record['error_code']}")
    if record.get("consent"):
        parts.append(f"consent={record['consent']}")
    ids: Iterable[str] = record.get("graph_request_ids") or ()
    if ids:
        parts.append("request-id=" + ",".join(ids))
    arguments = record.get("arguments")
    if arguments:
        parts.append(json.dumps(arguments, ensure_ascii=False, separators=(",", ":")))
    return "  ".join(parts)
