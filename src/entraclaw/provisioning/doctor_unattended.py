"""Doctor's checks for running unattended: the proxy, whether rotation needs an admin, who may use a machine key."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["machine_key_check", "proxy_check", "self_rotation_check"]


def proxy_check(report: Any, authority_host: str, proxy: str | None) -> None:
    """Which proxy (or none) reaches the authority, by the one rule sessions use."""
    from entraclaw.errors import ConfigurationError
    from entraclaw.platform.proxy import resolve_proxy_rule

    try:
        rule = resolve_proxy_rule(proxy)
    except ConfigurationError as exc:
        report.add("proxy", "fail", exc.message, exc.remedy)
        return
    report.add("proxy", "ok", f"{authority_host} via {rule.describe(authority_host)}")


def self_rotation_check(report: Any, state_dir: Path, not_after: _dt.datetime | None,
                        clock: Callable[[], float] = time.time) -> None:
    """When the daily job found the tenant refuses --as-blueprint, say so inside 30 days of expiry."""
    from entraclaw.schedule import MILESTONES, admin_command, read_state

    refused = read_state(state_dir).get("self_rotation_refused")
    if not refused or not_after is None:
        return
    left = (not_after - _dt.datetime.fromtimestamp(clock(), _dt.timezone.utc)).days
    if left > max(MILESTONES):
        return
    report.add(
        "rotation",
        "warn",
        f"the tenant refused the Blueprint rolling its own key (Graph {refused.get('http_status')}); the "
        f"certificate expires in {left} days and the daily job cannot renew it",
        f"An admin runs `{admin_command(state_dir)}` before then.",
    )


def machine_key_check(report: Any, key: Any) -> None:
    """For a LocalMachine key (``setup --machine``): which accounts may use it, from its DACL."""
    from entraclaw.errors import EntraclawError

    if not key.key_ref.startswith("cng:LocalMachine/"):
        return
    reader = getattr(key.signer, "key_access", None)
    if not callable(reader):
        return
    try:
        access = reader()
    except EntraclawError as exc:
        report.add("key access", "unknown", exc.message, exc.remedy)
        return
    users = access.users
    if len(users) == 1 and access.protected:
        report.add("key access", "ok", f"only {users[0].describe()} may use the machine key")
        return
    report.add(
        "key access",
        "warn",
        f"{len(users)} accounts may use the machine key: {access.describe()}",
        "Give it to the agent's account alone: `entraclaw setup --machine --account <account>` (elevated).",
    )
