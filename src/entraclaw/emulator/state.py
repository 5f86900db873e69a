"""The state file: one JSON document holding the tenant, the CA and the token signing key.

It holds private keys (the emulator's own, never a client's), so it is written
atomically with mode 0600. Loading validates the shape and reports the path
and the part that is wrong.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from entraclaw.errors import EmulatorError

__all__ = ["STATE_VERSION", "load_state", "save_state"]

STATE_VERSION = 1
# A hand-written seed may hold only "tenant" (and "tenant_id"); CA and signing key are then generated.
_REQUIRED = ("tenant",)


def save_state(path: Path, data: dict[str, Any]) -> None:
    path = Path(path)
    document = {"version": STATE_VERSION, **data}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            os.chmod(tmp, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(document, fh, indent=2, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise EmulatorError(
            f"Cannot write emulator state file {path}: {exc.strerror or exc}.",
            remedy="Pass a --state path in a writable directory.",
            path=str(path),
        ) from exc


def load_state(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EmulatorError(
            f"Cannot read emulator state file {path}: {exc.strerror or exc}.",
            remedy="Check the path, or delete the file to start a fresh tenant.",
            path=str(path),
        ) from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EmulatorError(
            f"Emulator state file {path} is not valid JSON (line {getattr(exc, 'lineno', '?')}).",
            remedy="Restore the file from a backup, or delete it to start a fresh tenant.",
            path=str(path),
        ) from exc
    if not isinstance(data, dict):
        raise EmulatorError(
            f"Emulator state file {path} does not hold a JSON object.",
            remedy="Delete it to start a fresh tenant.",
            path=str(path),
        )
    if data.get("version") != STATE_VERSION:
        raise EmulatorError(
            f"Emulator state file {path} has version {data.get('version')!r}; this emulator reads {STATE_VERSION}.",
            remedy="Delete the file to start a fresh tenant.",
            path=str(path),
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise EmulatorError(
            f"Emulator state file {path} lacks {', '.join(missing)}.",
            remedy="Delete the file to start a fresh tenant.",
            path=str(path),
        )
    return data
