"""Sanitized transcripts: what a tenant answered, with nothing in them that identifies it.

A transcript entry keeps, per request of a conformance scenario step: the method, the path
*shape* (ids, UPNs and names replaced by placeholders), the query parameter names (and the
property names a ``$filter`` uses), the form field names and the non-secret protocol values
of a token request (``grant_type``, ``client_assertion_type``, ``requested_token_use``), the
status, the error code (Graph ``error.code``; Entra ``AADSTS<n>``) and the JSON *shape* of the
answer: property names with value types, never values. A JWT in an answer is reduced to the
names of its claims. So a transcript holds no token, key, assertion, id, name or tenant.

``compare`` is what the replay suite runs: it lists every difference between a stored
transcript and one just produced against the emulator.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from entraclaw.errors import ConfigurationError

__all__ = [
    "FORMAT",
    "Entry",
    "Transcript",
    "compare",
    "error_code",
    "json_shape",
    "path_shape",
    "query_shape",
]

FORMAT = "entraclaw-conformance/1"

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_QUOTED = re.compile(r"'(?:[^']|'')*'")
_AADSTS = re.compile(r"AADSTS(\d+)")
# Path segments that are Graph's or Entra's own vocabulary, kept as they are; anything else that is
# not a GUID (a UPN, a display name, a tenant domain, a 44-character grant id) becomes a placeholder.
# Vocabulary words are at most 40 characters: a grant id with no '-' or '_' that starts lowercase
# looks like a word otherwise.
_LITERAL_SEGMENT = re.compile(r"^(?:v1\.0|beta|v2\.0|\.well-known|openid-configuration|"
                              r"microsoft\.graph\.[A-Za-z]+|[a-z][A-Za-z0-9]{0,39}|\$[a-z]+)$")
# Form values that are protocol vocabulary, not secrets: kept so a transcript shows which grant ran.
_FORM_VALUES_KEPT = frozenset({"grant_type", "client_assertion_type", "requested_token_use"})
_JWT = re.compile(r"^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*$")


def path_shape(path: str) -> str:
    """``/v1.0/applications/<guid>/addKey`` → ``/v1.0/applications/{id}/addKey``; UPNs → ``{upn}``."""
    out = []
    for raw in path.split("/"):
        segment = unquote(raw)
        if not segment:
            out.append("")
        elif _GUID.fullmatch(segment):
            out.append("{id}")
        elif "@" in segment:
            out.append("{upn}")
        elif "(" in segment and segment.endswith(")"):  # key-as-segment: applications(appId='…')
            name, _, rest = segment.partition("(")
            out.append(f"{name}({_QUOTED.sub('{value}', _GUID.sub('{id}', rest))}")
        elif _LITERAL_SEGMENT.fullmatch(segment):
            out.append(segment)
        else:
            out.append("{name}")
    return "/".join(out)


def query_shape(query: str) -> list[str]:
    """Parameter names, sorted; a ``$filter``/``$search`` keeps its operators and property names only."""
    shaped = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in ("$filter", "$search"):
            literal_free = _GUID.sub("{id}", _QUOTED.sub("{value}", value))
            shaped.append(f"{name}={' '.join(literal_free.split())}")
        elif name in ("$select", "$expand", "$orderby", "$count"):
            shaped.append(f"{name}={value}")
        else:
            shaped.append(name)
    return sorted(shaped)


def _jwt_claim_names(token: str) -> list[str] | None:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    return sorted(claims) if isinstance(claims, dict) else None


def json_shape(value: Any) -> Any:
    """Property names with value types; a JWT-shaped string becomes its claim names; arrays by their members' shapes."""
    if isinstance(value, Mapping):
        return {str(k): json_shape(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list):
        shapes: list[Any] = []
        for item in value:
            shape = json_shape(item)
            if shape not in shapes:
                shapes.append(shape)
        return shapes
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, str) and _JWT.match(value):
        names = _jwt_claim_names(value)
        if names is not None:
            return {"jwt": names}
    return "str"


def error_code(status: int, body: Any) -> str | None:
    """Graph's ``error.code``; the token endpoint's ``AADSTS<n>`` (``error_codes`` or the text), else ``error``."""
    if status < 400 or not isinstance(body, Mapping):
        return None
    error = body.get("error")
    if isinstance(error, Mapping):
        code = error.get("code")
        return str(code) if code is not None else None
    codes = body.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        return f"AADSTS{codes[0]}"
    description = body.get("error_description")
    if isinstance(description, str) and (match := _AADSTS.search(description)):
        return f"AADSTS{match.group(1)}"
    return str(error) if isinstance(error, str) else None


@dataclass(frozen=True)
class Entry:
    """One request of one step, sanitized."""

    step: str
    method: str
    path: str
    query: list[str] = field(default_factory=list)
    form: list[str] = field(default_factory=list)
    status: int = 0
    error: str | None = None
    shape: Any = None
    source: str | None = None  # where a documentation-built entry comes from (a page or upstream file)

    @classmethod
    def from_exchange(
        cls, step: str, method: str, url: str, *, form: Mapping[str, str] | None, status: int, body: Any
    ) -> Entry:
        parts = urlsplit(url)
        shaped_form = sorted(
            f"{k}={v}" if k in _FORM_VALUES_KEPT else k for k, v in (form or {}).items()
        )
        return cls(
            step=step,
            method=method.upper(),
            path=path_shape(parts.path),
            query=query_shape(parts.query),
            form=shaped_form,
            status=status,
            error=error_code(status, body),
            shape=json_shape(body) if body is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        if document["source"] is None:
            del document["source"]
        return document


@dataclass
class Transcript:
    """A scenario's sanitized run. ``kind``: ``tenant`` (recorded on a real tenant), ``emulator`` or
    ``documentation`` (built by hand from documented examples: shapes there are abbreviated, so they
    are compared as subsets and only the steps present are compared; an ``error`` of None or a
    ``status`` of 0 is what the source does not say, and is not compared)."""

    scenario: str
    kind: str
    entries: list[Entry]
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "scenario": self.scenario,
            "kind": self.kind,
            "note": self.note,
            "entries": [e.to_json() for e in self.entries],
        }

    def save(self, path: Path) -> None:
        from entraclaw.platform.files import atomic_write

        atomic_write(path, (json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> Transcript:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if document.get("format") != FORMAT:
                raise ValueError(f"format {document.get('format')!r}")
            entries = [Entry(**item) for item in document["entries"]]
            return cls(document["scenario"], document["kind"], entries, document.get("note", ""))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"{path} is not a readable conformance transcript ({type(exc).__name__}: {exc}).",
                remedy="Record it again with `entraclaw conformance --record FILE`.",
                path=str(path),
            ) from None


def _shape_differences(where: str, want: Any, got: Any, *, subset: bool) -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for key in want:
            if key not in got:
                out.append(f"{where}.{key}: missing (expected {json.dumps(want[key])})")
            else:
                out.extend(_shape_differences(f"{where}.{key}", want[key], got[key], subset=subset))
        if not subset:
            out.extend(f"{where}.{key}: unexpected" for key in got if key not in want)
        return out
    if isinstance(want, list) and isinstance(got, list):
        if subset:
            out = []
            for index, item in enumerate(want):
                if not any(not _shape_differences("", item, g, subset=True) for g in got):
                    out.append(f"{where}[{index}]: no member has the shape {json.dumps(item)}")
            return out
        return [] if want == got else [f"{where}: {json.dumps(want)} != {json.dumps(got)}"]
    return [] if want == got else [f"{where}: expected {json.dumps(want)}, got {json.dumps(got)}"]


def compare(stored: Transcript, produced: Transcript) -> list[str]:
    """Every difference between ``stored`` and ``produced`` (empty: they agree)."""
    if stored.scenario != produced.scenario:
        return [f"scenario {stored.scenario!r} != {produced.scenario!r}"]
    subset = stored.kind == "documentation"
    differences: list[str] = []
    produced_by_step: dict[str, list[Entry]] = {}
    for entry in produced.entries:
        produced_by_step.setdefault(entry.step, []).append(entry)
    order = [e.step for e in produced.entries]
    if not subset:
        stored_steps = [e.step for e in stored.entries]
        if stored_steps != order:
            differences.append(f"steps differ: stored {stored_steps} vs produced {order}")
    for want in stored.entries:
        candidates = produced_by_step.get(want.step) or []
        if not candidates:
            differences.append(f"{want.step}: not produced")
            continue
        got = candidates.pop(0)
        for name in ("method", "path", "query", "form", "status", "error"):
            a, b = getattr(want, name), getattr(got, name)
            if subset and name in ("query", "form") and set(a) <= set(b):
                continue
            if subset and name == "error" and a is None:
                continue  # the page documents the status but not the code
            if subset and name == "status" and a == 0:
                continue  # the source names the error code but not the HTTP status
            if a != b:
                differences.append(f"{want.step}: {name} {a!r} != {b!r}")
        if want.shape is not None or not subset:
            differences.extend(_shape_differences(f"{want.step}: body", want.shape, got.shape, subset=subset))
    return differences


def steps(entries: Iterable[Entry]) -> Sequence[str]:
    return [e.step for e in entries]
