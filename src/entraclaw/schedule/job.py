"""What the daily job does: ``entraclaw rotate --as-blueprint`` inside the expiry window, logged.

- Outside the window (and with no rotation journal to finish) it logs one line and exits 0.
- Inside it, or when a killed run left the rotate journal, it runs the same :class:`Rotate` as
  ``entraclaw rotate`` (the journal resumes a killed run), signed in as the Blueprint itself with
  its current key: an app may roll its own keys with addKey, so no admin is needed.
- When the tenant refuses that (Graph 401/403), it says so, with the command an admin runs, the
  first time the certificate is within 30, 14, 7 and 1 days of expiry (remembered in
  ``schedule-state.json``, read by ``entraclaw doctor``), and exits 1 so the scheduler shows it.

Output is appended to ``<state dir>/logs/rotate.log`` (owner-only), whatever the scheduler does
with stdout.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from entraclaw.errors import EntraclawError, GraphRequestError

__all__ = ["MILESTONES", "STATE_NAME", "admin_command", "log_path", "read_state", "run_job"]

MILESTONES = (30, 14, 7, 1)
STATE_NAME = "schedule-state.json"


def log_path(state_dir: Path) -> Path:
    return state_dir / "logs" / "rotate.log"


def admin_command(state_dir: Path) -> str:
    return f"entraclaw rotate --device-code --state-dir {state_dir}"


def read_state(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(state_dir: Path, data: dict[str, Any]) -> None:
    from entraclaw.platform.files import atomic_write

    atomic_write(state_dir / STATE_NAME, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"), private=True)


class _Log:
    def __init__(self, path: Path, echo: Callable[[str], None]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._echo = echo

    def __call__(self, line: str) -> None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._file.write(f"{stamp} {line}\n")
        self._file.flush()
        self._echo(line)

    def close(self) -> None:
        self._file.close()


def _days_left(key_ref: str, clock: Callable[[], float]) -> int:
    from entraclaw.provisioning.keys import open_device_key

    key = open_device_key(key_ref)
    try:
        not_after = key.certificate.not_valid_after_utc
    finally:
        key.close()
    return (not_after - _dt.datetime.fromtimestamp(clock(), _dt.timezone.utc)).days


def run_job(
    state_dir: Path,
    *,
    days: int = 30,
    clock: Callable[[], float] = time.time,
    echo: Callable[[str], None] = print,
    propagation_timeout: float = 180.0,
) -> int:
    """One run of the daily job; the exit code the scheduler records."""
    from entraclaw.provisioning.auth import ClientCertificateAuth
    from entraclaw.provisioning.graph import GraphClient
    from entraclaw.provisioning.keys import open_device_key
    from entraclaw.provisioning.rotate import JOURNAL_NAME, Rotate, endpoints_from_config, require_config
    from entraclaw.provisioning.state import read_device_config

    log = _Log(log_path(state_dir), echo)
    try:
        env_file = state_dir / ".env"
        config = read_device_config(env_file)
        require_config(config, env_file)
        resuming = (state_dir / JOURNAL_NAME).exists()
        left = _days_left(config["ENTRACLAW_KEY_REF"], clock)
        if not resuming and left > days:
            log(f"not due: certificate {config.get('ENTRACLAW_BLUEPRINT_CERT_SHA1')} expires in {left} days "
                f"(rotation starts {days} days before)")
            return 0
        log("resuming an interrupted rotation" if resuming else f"due: {left} days left; rotating as the Blueprint")
        endpoints = endpoints_from_config(config)
        current = open_device_key(config["ENTRACLAW_KEY_REF"])
        try:
            auth = ClientCertificateAuth(
                authority=endpoints.authority, client_id=config["ENTRACLAW_BLUEPRINT_APP_ID"],
                signer=current.signer, session=endpoints.session(),
            )
            rotation = Rotate(
                GraphClient(endpoints.graph_url, auth, session=endpoints.session()), state_dir=state_dir,
                days_before_expiry=days, echo=log, propagation_timeout=propagation_timeout, read_key_list=False,
            )
            result = rotation.run()
        finally:
            current.close()
        if result.rotated:
            log(f"OK: rotated {result.old_sha1} -> {result.new_sha1}")
        state = read_state(state_dir)
        if state.pop("self_rotation_refused", None) is not None:
            state.pop("last_warning_days", None)
            _write_state(state_dir, state)
        return 0
    except GraphRequestError as exc:
        if exc.context.get("http_status") not in (401, 403):
            log(f"error: {exc}")
            return 1
        return _refused(state_dir, log, exc, clock)
    except EntraclawError as exc:
        log(f"error: {exc}")
        return 1
    finally:
        log.close()


def _refused(state_dir: Path, log: _Log, exc: GraphRequestError, clock: Callable[[], float]) -> int:
    from entraclaw.provisioning.state import read_device_config

    config = read_device_config(state_dir / ".env")
    left = _days_left(config["ENTRACLAW_KEY_REF"], clock)
    state = read_state(state_dir)
    state["self_rotation_refused"] = {"at": int(clock()), "code": exc.context.get("code"),
                                      "http_status": exc.context.get("http_status")}
    due = [m for m in MILESTONES if left <= m]
    milestone = min(due) if due else None
    line = (f"the tenant does not let Blueprint {config.get('ENTRACLAW_BLUEPRINT_APP_ID')} roll its own key "
            f"(Graph {exc.context.get('http_status')} {exc.context.get('code')}); the certificate expires in "
            f"{left} days. An admin runs: `{admin_command(state_dir)}`")
    if milestone is not None and state.get("last_warning_days") != milestone:
        state["last_warning_days"] = milestone
        log(f"WARNING: {line}")
    else:
        log(line)
    _write_state(state_dir, state)
    return 1
