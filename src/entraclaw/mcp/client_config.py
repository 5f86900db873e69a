"""Where MCP clients read their server list, and merging this install's ``entraclaw-mcp`` into it.

The three clients and their documented files (each a JSON object of named servers):

- Claude Code, project scope: ``<project>/.mcp.json``, ``{"mcpServers": {NAME: {"type": "stdio",
  "command", "args", "env"}}}`` (code.claude.com/docs/en/mcp, "Project scope").
- VS Code: ``<project>/.vscode/mcp.json``, ``{"servers": {NAME: {"type": "stdio", "command", "args",
  "env"}}}``; the file is JSON with comments (code.visualstudio.com/docs/copilot/reference/mcp-configuration).
- GitHub Copilot CLI: ``$COPILOT_HOME/mcp-config.json``, default ``~/.copilot/mcp-config.json``,
  ``{"mcpServers": {NAME: {"type": "local", "command", "args", "env", "tools": ["*"]}}}``
  (docs.github.com/copilot/how-tos/copilot-cli/customize-copilot/add-mcp-servers). ``tools`` lists
  the tools Copilot may call; ``["*"]`` is all of them.

The merge edits the text, not a re-serialised object: only the value of our own entry is
replaced (or the entry inserted), so other servers, key order, formatting and the comments
VS Code allows stay as they were. The result is checked by parsing it before it is written;
the old file is kept as ``<file>.bak``; the write is :func:`entraclaw.platform.files.atomic_write`.
A file that is not a JSON object is never overwritten: the error names it.

Where each write went is recorded in ``mcp-clients.json`` in the state directory, so
``rotate`` can refresh entries whose command moved and ``doctor`` can check them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from entraclaw.errors import ConfigurationError
from entraclaw.platform import files, paths

__all__ = [
    "CLIENTS",
    "SERVER_NAME",
    "ClientTarget",
    "ConfigChange",
    "check_recorded",
    "parse_jsonc",
    "plan_change",
    "record_path",
    "recorded_targets",
    "refresh_recorded",
    "server_command",
    "targets",
    "write_change",
]

ClientName = Literal["claude", "vscode", "copilot"]
CLIENTS: tuple[ClientName, ...] = ("claude", "vscode", "copilot")
SERVER_NAME = "entraclaw"
_DESCRIPTION = "entraclaw: act in Microsoft 365 (Teams, mail) as this device's Entra Agent User"


@dataclass(frozen=True)
class ClientTarget:
    client: ClientName
    path: Path
    root_key: str  # "mcpServers" or "servers"


@dataclass(frozen=True)
class ConfigChange:
    target: ClientTarget
    entry: dict[str, Any]
    old_text: str | None  # None: the file does not exist
    new_text: str
    action: Literal["create", "update", "unchanged"]


def server_command(*, platform: str | None = None, executable: str | None = None) -> tuple[str, list[str]]:
    """The absolute command (and args) that starts this install's server.

    The console script beside this interpreter first (a venv's ``bin/entraclaw-mcp`` or
    ``Scripts\\entraclaw-mcp.exe``), then one on PATH, else ``python -m entraclaw.mcp``.
    """
    win = (platform or sys.platform) == "win32"
    python = Path(executable or sys.executable)
    name = "entraclaw-mcp.exe" if win else "entraclaw-mcp"
    beside = python.parent / name
    if beside.is_file():
        return str(beside.absolute()), []
    found = shutil.which(name)
    if found:
        return str(Path(found).absolute()), []
    return str(python.absolute()), ["-m", "entraclaw.mcp"]


def targets(
    client: str, *, project_dir: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> list[ClientTarget]:
    env = os.environ if environ is None else environ
    project = Path(project_dir) if project_dir is not None else Path.cwd()
    wanted = CLIENTS if client == "all" else (client,)
    out: list[ClientTarget] = []
    for name in wanted:
        if name == "claude":
            out.append(ClientTarget("claude", project.absolute() / ".mcp.json", "mcpServers"))
        elif name == "vscode":
            out.append(ClientTarget("vscode", project.absolute() / ".vscode" / "mcp.json", "servers"))
        elif name == "copilot":
            home = env.get("COPILOT_HOME", "").strip()
            base = Path(home).expanduser() if home else Path.home() / ".copilot"
            out.append(ClientTarget("copilot", base.absolute() / "mcp-config.json", "mcpServers"))
        else:
            raise ConfigurationError(
                f"Unknown MCP client {client!r}.",
                remedy="Run `entraclaw mcp-config --client` with claude, vscode, copilot or all.",
            )
    return out


def entry_for(client: ClientName, command: str, args: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    kind = "local" if client == "copilot" else "stdio"
    entry: dict[str, Any] = {"type": kind, "command": command, "args": list(args)}
    if env:
        entry["env"] = dict(env)
    if client == "copilot":
        entry["tools"] = ["*"]
    if client == "claude":
        entry["description"] = _DESCRIPTION
    return entry


# --- JSON with comments: a scanner that keeps positions --------------------------------------

_TOKEN = re.compile(
    r'(?P<ws>\s+)|(?P<line>//[^\n]*)|(?P<block>/\*.*?\*/)|(?P<str>"(?:[^"\\\n]|\\.)*")'
    r"|(?P<punct>[{}\[\]:,])|(?P<lit>[-+0-9.eE]+|true|false|null)",
    re.DOTALL,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    start: int
    end: int
    text: str


def _tokens(text: str, where: Path) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            line = text.count("\n", 0, pos) + 1
            raise _bad(where, f"unexpected text at line {line}")
        kind = match.lastgroup or ""
        if kind in ("str", "punct", "lit"):
            out.append(_Tok(kind, match.start(), match.end(), match.group()))
        pos = match.end()
    return out


def _bad(where: Path, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"MCP client config {where} is not a JSON object entraclaw can merge into ({why}); it was left as it is.",
        remedy=f"Fix or move {where}, then re-run `entraclaw mcp-config --client` for that client.",
        path=str(where),
    )


def parse_jsonc(text: str, where: Path) -> dict[str, Any]:
    """A JSON-with-comments document (comments and trailing commas allowed) as a dict."""
    kept: list[str] = []
    tokens = _tokens(text, where)
    for index, tok in enumerate(tokens):
        if tok.text == "," and index + 1 < len(tokens) and tokens[index + 1].text in ("}", "]"):
            continue
        kept.append(tok.text)
    try:
        document = json.loads(" ".join(kept)) if kept else {}
    except ValueError as exc:
        raise _bad(where, str(exc)) from None
    if not isinstance(document, dict):
        raise _bad(where, "the top level is not an object")
    return document


def _value_end(tokens: list[_Tok], index: int, where: Path) -> int:
    """Index of the last token of the value starting at ``tokens[index]``."""
    opener = tokens[index].text
    if opener not in ("{", "["):
        return index
    depth = 0
    for j in range(index, len(tokens)):
        if tokens[j].text in ("{", "["):
            depth += 1
        elif tokens[j].text in ("}", "]"):
            depth -= 1
            if depth == 0:
                return j
    raise _bad(where, "an object or array is not closed")


def _members(tokens: list[_Tok], open_index: int, where: Path) -> tuple[dict[str, tuple[int, int]], int]:
    """Members of the object opened at ``open_index``: key -> (value first, value last token), and its '}'."""
    members: dict[str, tuple[int, int]] = {}
    i = open_index + 1
    while i < len(tokens) and tokens[i].text != "}":
        if tokens[i].kind != "str" or i + 2 >= len(tokens) or tokens[i + 1].text != ":":
            raise _bad(where, "an object member is not `\"key\": value`")
        key = json.loads(tokens[i].text)
        last = _value_end(tokens, i + 2, where)
        members[key] = (i + 2, last)
        i = last + 1
        if i < len(tokens) and tokens[i].text == ",":
            i += 1
    if i >= len(tokens):
        raise _bad(where, "the object is not closed")
    return members, i


def _indent_of(text: str, pos: int) -> str:
    line_start = text.rfind("\n", 0, pos) + 1
    return re.match(r"[ \t]*", text[line_start:]).group()  # type: ignore[union-attr]


def _render(value: Any, indent: str) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + indent)


def _insert_member(  # noqa: PLR0917 - private; one splice's positions
    text: str, tokens: list[_Tok], open_index: int, close_index: int, key: str, value: Any
) -> str:
    brace = tokens[open_index]
    base = _indent_of(text, brace.start)
    inner = base + "  "
    rendered = f"\n{inner}{json.dumps(key)}: {_render(value, inner)}"
    if close_index == open_index + 1:  # empty object
        return text[: brace.end] + rendered + "\n" + base + text[tokens[close_index].start :]
    return text[: brace.end] + rendered + "," + text[brace.end :]


def merge_text(old: str | None, root_key: str, name: str, entry: dict[str, Any], where: Path) -> str:
    """``old`` with ``root_key.name`` set to ``entry``; everything else byte for byte."""
    if old is None or not old.strip():
        return json.dumps({root_key: {name: entry}}, indent=2, ensure_ascii=False) + "\n"
    tokens = _tokens(old, where)
    if not tokens or tokens[0].text != "{":
        raise _bad(where, "the top level is not an object")
    top, top_close = _members(tokens, 0, where)
    if root_key not in top:
        return _insert_member(old, tokens, 0, top_close, root_key, {name: entry})
    first, _last = top[root_key]
    if tokens[first].text != "{":
        raise _bad(where, f'"{root_key}" is not an object')
    servers, servers_close = _members(tokens, first, where)
    if name not in servers:
        return _insert_member(old, tokens, first, servers_close, name, entry)
    v_first, v_last = servers[name]
    start, end = tokens[v_first].start, tokens[v_last].end
    return old[:start] + _render(entry, _indent_of(old, tokens[v_first - 2].start)) + old[end:]


# --- plan and write ----------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(path, f"it cannot be read: {getattr(exc, 'strerror', None) or type(exc).__name__}") from None


def plan_change(target: ClientTarget, command: str, args: Sequence[str], env: Mapping[str, str]) -> ConfigChange:
    entry = entry_for(target.client, command, args, env)
    old = _read(target.path)
    if old is not None and old.strip():
        current = parse_jsonc(old, target.path).get(target.root_key)
        if isinstance(current, dict) and current.get(SERVER_NAME) == entry:
            return ConfigChange(target, entry, old, old, "unchanged")
    new = merge_text(old, target.root_key, SERVER_NAME, entry, target.path)
    merged = parse_jsonc(new, target.path)
    assert merged[target.root_key][SERVER_NAME] == entry  # the splice did what it says
    return ConfigChange(target, entry, old, new, "create" if old is None else "update")


def write_change(change: ConfigChange, *, home: str | os.PathLike[str] | None = None) -> Path | None:
    """Write the change (backup first); returns the backup's path, if one was made. Records the target."""
    path = change.target.path
    backup: Path | None = None
    if change.action != "unchanged":
        if change.old_text is not None:
            backup = path.with_name(path.name + ".bak")
            files.atomic_write(backup, change.old_text.encode("utf-8"), private=False)
            files.crash_point("mcp-config:backed-up")
        files.atomic_write(path, change.new_text.encode("utf-8"), private=False)
        files.crash_point("mcp-config:written")
    _record(change, home)
    return backup


# --- the record of what was written (rotate, doctor) ------------------------------------------------


def record_path(home: str | os.PathLike[str] | None = None) -> Path:
    return paths.state_dir() / "mcp-clients.json" if home is None else Path(home) / "mcp-clients.json"


def _load_record(home: str | os.PathLike[str] | None) -> list[dict[str, Any]]:
    path = record_path(home)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return []  # a damaged record only costs the refresh; mcp-config rewrites it
    rows = document.get("clients") if isinstance(document, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _record(change: ConfigChange, home: str | os.PathLike[str] | None) -> None:
    rows = [r for r in _load_record(home) if r.get("path") != str(change.target.path)]
    rows.append(
        {
            "client": change.target.client,
            "path": str(change.target.path),
            "root_key": change.target.root_key,
            "command": change.entry["command"],
            "args": change.entry["args"],
            "env": change.entry.get("env", {}),
        }
    )
    data = json.dumps({"clients": rows}, indent=2).encode("utf-8")
    files.atomic_write(record_path(home), data)


def recorded_targets(home: str | os.PathLike[str] | None = None) -> list[tuple[ClientTarget, dict[str, Any]]]:
    out: list[tuple[ClientTarget, dict[str, Any]]] = []
    for row in _load_record(home):
        client = row.get("client")
        if client in CLIENTS and isinstance(row.get("path"), str):
            out.append((ClientTarget(client, Path(row["path"]), str(row.get("root_key") or "mcpServers")), row))
    return out


def refresh_recorded(home: str | os.PathLike[str] | None = None) -> list[ConfigChange]:
    """Rewrite recorded entries whose command is no longer this install's (``rotate`` calls this)."""
    command, args = server_command()
    done: list[ConfigChange] = []
    for target, row in recorded_targets(home):
        if row.get("command") == command and row.get("args") == args:
            continue
        raw_env = row.get("env")
        env = {str(k): str(v) for k, v in raw_env.items()} if isinstance(raw_env, dict) else {}
        change = plan_change(target, command, args, env)
        write_change(change, home=home)
        done.append(change)
    return done


def check_recorded(home: str | os.PathLike[str] | None = None) -> list[tuple[str, bool, str]]:
    """(client, ok, detail) per recorded config: does its entraclaw entry start a command that exists?"""
    results: list[tuple[str, bool, str]] = []
    for target, _row in recorded_targets(home):
        try:
            text = _read(target.path)
            document = parse_jsonc(text or "{}", target.path)
        except ConfigurationError as exc:
            results.append((target.client, False, exc.message))
            continue
        servers = document.get(target.root_key)
        entry = servers.get(SERVER_NAME) if isinstance(servers, dict) else None
        if not isinstance(entry, dict):
            results.append((target.client, False, f"{target.path} has no {SERVER_NAME!r} server any more"))
            continue
        command = str(entry.get("command", ""))
        if Path(command).is_file():
            results.append((target.client, True, f"{target.path} -> {command}"))
        else:
            results.append((target.client, False, f"{target.path} starts {command}, which does not exist"))
    return results
