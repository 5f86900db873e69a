"""Doctor's checks for running unattended: the proxy, whether rotation needs an admin, who may use a machine key."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["machine_key_check", "proxy_check", "prune_expired_check", "self_rotation_check"]


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


def prune_expired_check(
    report: Any, graph: Any, config: dict[str, str], key: Any, current: list[Any], *, now: float, act: bool
) -> None:
    """The Blueprint's expired certificates (retired devices'), and with ``act`` their removal.

    An expired certificate signs nobody in, whichever device it was; removing them frees the
    Blueprint's certificate budget (limits.py). The removal is the fleet's PATCH (fleet.py): it
    keeps every valid certificate, this device's first, and converges against other devices'
    PATCHes. Needs an admin sign-in (the Blueprint cannot PATCH its own keyCredentials). ``current``
    is the certificate list the registration check read.
    """
    from entraclaw.errors import EntraclawError
    from entraclaw.provisioning.context import PropagationWait
    from entraclaw.provisioning.fleet import register_by_patch
    from entraclaw.provisioning.graph import BlueprintInfo
    from entraclaw.provisioning.setup import key_credential_body
    from entraclaw.provisioning.state import checkpoint

    object_id = config["ENTRACLAW_BLUEPRINT_OBJECT_ID"]
    blueprint = BlueprintInfo(object_id, config["ENTRACLAW_BLUEPRINT_APP_ID"], "")
    expired = [c for c in current if not c.valid_at(now)]
    if not expired:
        report.add("expired certificates", "ok", f"none of the {len(current)} on the Blueprint")
        return
    listed = ", ".join(c.sha1 or c.key_id for c in expired)
    if not act:
        report.add(
            "expired certificates",
            "warn",
            f"{len(expired)} of {len(current)} on the Blueprint have expired (retired devices'?): {listed}",
            "Remove them with `entraclaw doctor --prune-expired` and an admin sign-in.",
        )
        return
    if key is None or key.sha1 not in {c.sha1 for c in current} or not any(
        c.sha1 == key.sha1 and c.valid_at(now) for c in current
    ):
        report.add(
            "expired certificates",
            "fail",
            f"not removed: this device's certificate is not a valid one on the Blueprint ({listed} expired)",
            "Run `entraclaw setup` with admin credentials first, then `entraclaw doctor --prune-expired`.",
        )
        return
    try:
        register_by_patch(
            graph, blueprint, key_credential_body(key), key.sha1,
            wait=PropagationWait(timeout=60.0, echo=lambda _line: None),
            drop=lambda c: not c.valid_at(now), echo=lambda _line: None,
        )
    except EntraclawError as exc:
        report.add("expired certificates", "fail", exc.message, exc.remedy)
        return
    checkpoint("prune:sent")
    report.add("expired certificates", "ok", f"removed {len(expired)} from the Blueprint: {listed}")
