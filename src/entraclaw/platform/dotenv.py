"""The ``.env`` file: a strict reader that remembers line numbers, and an in-place, atomic writer.

Format (a subset every dotenv reader agrees on)::

    # comment
    KEY=value                 # unquoted; ' #' starts an inline comment
    export KEY='single quoted, taken literally'
    KEY="double quoted: \\" \\\\ and \\$ are escapes"

Values are single-line. The reader refuses what others guess at: a key given twice
(python-dotenv silently keeps one of them; here both lines are named), a line
that is neither a comment nor ``KEY=value``, invalid UTF-8, an unterminated
quote. A UTF-8 byte-order mark (what PowerShell 5's ``Set-Content -Encoding utf8``
writes) is stripped with a warning; the next write drops it.

The writer rewrites only the lines it must: an updated key keeps its line, its
``export`` prefix, its spacing and its inline comment; every other byte of the
file -- unknown keys, comments, blank lines, line endings -- is kept as it was.
Deleted keys lose their line; new keys are appended in the order given. The file
is replaced atomically and is owner-only (:func:`entraclaw.platform.files.atomic_write`);
read-modify-write cycles hold an inter-process lock on ``<file>.lock`` so that two writers
cannot drop each other's keys.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entraclaw.errors import ConfigurationError
from entraclaw.platform.files import atomic_write, ensure_private_dir

__all__ = ["EnvFile", "EnvProblem", "format_value", "parse_env_text", "read_env_file", "update_env_file"]

logger = logging.getLogger(__name__)

_BOM = "\ufeff"
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LINE = re.compile(r"(?P<lead>[ \t]*(?:export[ \t]+)?)(?P<key>[^=\s]+)[ \t]*=[ \t]*")
# Values with only these characters are written bare; anything else is quoted.
_BARE_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./~^-]*")
_LOCK_TIMEOUT = 30.0


@dataclass(frozen=True)
class _Line:
    """One physical line: its text (ending included) and, for a KEY=value line, where the value sits."""

    text: str
    key: str | None = None
    value_span: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class EnvFile:
    """A parsed ``.env``: ``entries`` maps each key to ``(value, line number)`` (1-based)."""

    path: Path
    entries: Mapping[str, tuple[str, int]]
    had_bom: bool = False
    _lines: tuple[_Line, ...] = field(default=(), repr=False, compare=False)

    def get(self, key: str) -> str | None:
        entry = self.entries.get(key)
        return entry[0] if entry is not None else None

    def line_of(self, key: str) -> int | None:
        entry = self.entries.get(key)
        return entry[1] if entry is not None else None

    def values(self) -> dict[str, str]:
        return {key: value for key, (value, _line) in self.entries.items()}


class EnvProblem(str):
    """One problem line (``"<path> line <n>: <what>"``) that also carries ``line``, ``key`` and ``what``."""

    line: int
    key: str | None
    what: str

    def __new__(cls, path: Path, line: int, what: str, key: str | None = None) -> EnvProblem:
        self = super().__new__(cls, f"{path} line {line}: {what}")
        self.line, self.key, self.what = line, key, what
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (str(self),))


def _problem(path: Path, line: int, what: str, key: str | None = None) -> EnvProblem:
    return EnvProblem(path, line, what, key)


def _parse_value(text: str, start: int) -> tuple[str, int, str | None]:
    """Decode the value starting at ``text[start]``: (value, end of the value's source, error)."""
    body = text.rstrip("\r\n")
    if start >= len(body):
        return "", start, None
    quote = body[start]
    if quote == "'":
        close = body.find("'", start + 1)
        if close < 0:
            return "", start, "the single quote is not closed on this line (values are single-line)"
        end = close + 1
        value = body[start + 1 : close]
    elif quote == '"':
        chars: list[str] = []
        i = start + 1
        while i < len(body):
            ch = body[i]
            if ch == "\\" and i + 1 < len(body) and body[i + 1] in '"\\$':
                chars.append(body[i + 1])
                i += 2
                continue
            if ch == '"':
                break
            chars.append(ch)
            i += 1
        else:
            return "", start, "the double quote is not closed on this line (values are single-line)"
        end = i + 1
        value = "".join(chars)
    else:
        comment = re.search(r"[ \t]#", body[start:])
        raw_end = start + comment.start() if comment else len(body)
        value = body[start:raw_end].rstrip(" \t")
        return value, start + len(value), None
    rest = body[end:].strip(" \t")
    if rest and not rest.startswith("#"):
        # Not quoted back: the line may hold a password or a key.
        return "", start, f"has {len(rest)} characters of unexpected text after the closing quote"
    return value, end, None


def parse_env_text(text: str, path: Path) -> tuple[EnvFile, list[EnvProblem]]:
    """Parse ``.env`` text; return the file and every problem found (empty when it is valid)."""
    had_bom = text.startswith(_BOM)
    if had_bom:
        text = text[1:]
    problems: list[EnvProblem] = []
    entries: dict[str, tuple[str, int]] = {}
    lines: list[_Line] = []
    # Split on LF only: str.splitlines() also breaks at U+2028, form feeds and the like,
    # which would shift every line number after them and split a value.
    pieces = text.split("\n")
    raw_lines = [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    for number, raw in enumerate(raw_lines, start=1):
        body = raw.rstrip("\r\n")
        stripped = body.strip(" \t")
        if not stripped or stripped.startswith("#"):
            lines.append(_Line(raw))
            continue
        if "\x00" in body or "\r" in body:
            problems.append(_problem(path, number, "contains a NUL or a stray carriage return"))
            lines.append(_Line(raw))
            continue
        match = _LINE.match(body)
        if match is None:
            problems.append(_problem(path, number, "is not a comment and not KEY=value"))
            lines.append(_Line(raw))
            continue
        key = match.group("key")
        if not _KEY.fullmatch(key):
            problems.append(
                _problem(path, number, f"{key[:40]!r} is not a valid key (letters, digits and _, not first a digit)")
            )
            lines.append(_Line(raw))
            continue
        value, end, error = _parse_value(raw, match.end())
        if error is not None:
            problems.append(_problem(path, number, f"{key}: {error}", key))
            lines.append(_Line(raw))
            continue
        if key in entries:
            problems.append(
                _problem(
                    path,
                    number,
                    f"{key} is set twice, on lines {entries[key][1]} and {number}; keep one of the two lines",
                    key,
                )
            )
        else:
            entries[key] = (value, number)
        lines.append(_Line(raw, key, (match.end(), end)))
    return EnvFile(path, entries, had_bom, tuple(lines)), problems


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigurationError(
            f"{path} line {line} is not UTF-8 (byte {exc.start}).",
            remedy=f"Save {path} as UTF-8 (without BOM), e.g. in PowerShell 7: Set-Content -Encoding utf8NoBOM.",
            path=str(path),
            line=line,
            problems=[_problem(path, line, "is not UTF-8")],
        ) from None


def read_env_file(path: str | os.PathLike[str]) -> EnvFile:
    """Parse ``path``; raise one ConfigurationError listing every malformed or duplicate line."""
    target = Path(path)
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read {target}: {exc.strerror or type(exc).__name__}.",
            remedy=f"Check that {target} exists and this user may read it, or set ENTRACLAW_HOME.",
            path=str(target),
            os_error=exc.errno,
        ) from exc
    env, problems = parse_env_text(_decode(data, target), target)
    if problems:
        raise ConfigurationError(
            f"{target} has {len(problems)} problem(s): " + "; ".join(problems) + ".",
            remedy=f"Edit {target} so every line is a comment or one KEY=value, each key once.",
            path=str(target),
            problems=problems,
        )
    if env.had_bom:
        logger.warning(
            "%s starts with a UTF-8 byte-order mark (PowerShell 5 writes one); it was ignored and the next "
            "write by entraclaw removes it.",
            target,
        )
    return env


def format_value(key: str, value: str) -> str:
    """The source text for ``value``: bare when safe, else quoted so every dotenv reader agrees."""
    if any(ch in value for ch in "\n\r\x00"):
        raise ConfigurationError(
            f"The value for {key} contains a line break or NUL; .env values are single-line.",
            remedy=f"Pass {key} as one line of text.",
            key=key,
        )
    if _BARE_SAFE.fullmatch(value):
        return value
    if "'" not in value:
        # Single quotes: no escapes and no $-interpolation in any dotenv dialect.
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def update_env_file(path: str | os.PathLike[str], updates: Mapping[str, str | None]) -> None:
    """Set (or, for ``None``, delete) keys in ``path``, changing no other line; create the file if needed."""
    target = Path(path)
    for key in updates:
        if not _KEY.fullmatch(key):
            raise ConfigurationError(
                f"{key[:40]!r} is not a valid .env key.",
                remedy="Use letters, digits and _ (not first a digit), e.g. ENTRACLAW_TENANT_ID.",
                key=key,
            )
    rendered = {key: format_value(key, value) for key, value in updates.items() if value is not None}
    with _update_lock(target):
        _update_locked(target, updates, rendered)


@contextlib.contextmanager
def _update_lock(target: Path) -> Iterator[None]:
    """Serialise read-modify-write cycles on one .env across processes (two setups must not lose a key)."""
    from entraclaw.auth.file_lock import InterProcessLock
    from entraclaw.errors import KeystoreError

    ensure_private_dir(target.parent)
    lock = InterProcessLock(target.with_name(target.name + ".lock"), timeout=_LOCK_TIMEOUT)
    try:
        lock.acquire()
    except KeystoreError as exc:
        raise ConfigurationError(
            f"Cannot lock {target} for an update: {exc.message}",
            remedy=f"Another entraclaw process is updating {target}; let it finish (or end it), then retry.",
            path=str(target),
        ) from None
    try:
        yield
    finally:
        lock.release()


def _update_locked(target: Path, updates: Mapping[str, str | None], rendered: Mapping[str, str]) -> None:
    if target.exists():
        env = read_env_file(target)
        lines = list(env._lines)
    else:
        lines = []  # atomic_write creates a missing directory, owner-only
    newline = "\n"
    for line in lines:
        if line.text.endswith("\r\n"):
            newline = "\r\n"
            break
        if line.text.endswith("\n"):
            break
    out: list[str] = []
    seen: set[str] = set()
    for line in lines:
        if line.key is None or line.key not in updates:
            out.append(line.text)
            continue
        seen.add(line.key)
        if line.key not in rendered:
            continue  # deleted
        start, end = line.value_span
        out.append(line.text[:start] + rendered[line.key] + line.text[end:])
    missing = [key for key in updates if key not in seen and key in rendered]
    if missing and out and not out[-1].endswith("\n"):
        out[-1] += newline
    out.extend(f"{key}={rendered[key]}{newline}" for key in missing)
    atomic_write(target, "".join(out).encode("utf-8"), private=True)
