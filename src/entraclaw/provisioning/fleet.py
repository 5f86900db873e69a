"""A fleet on one Blueprint: registering a device certificate by PATCH without losing another's.

Graph's ``PATCH /applications/{id}`` replaces the whole ``keyCredentials`` list and takes no ETag
(https://learn.microsoft.com/graph/api/application-update), so a device that appends its
certificate does a read-modify-write: two devices that read the same list and PATCH one after the
other leave only the second one's certificate (seen: 8 devices at once, 2 ended with AADSTS700027).
addKey cannot help a device that holds no registered key yet (its proof must be signed by one).

So after every PATCH the device reads the list back and checks that its own certificate is there
and that no certificate it saw before was dropped; a dropped one is put back (its public part is in
what Graph returned), and the device retries with jittered backoff until two reads, a settle time
apart, agree. A PATCH in flight from another device that read an older list lands within that
settle time, so the last writer always finds what it overwrote.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from entraclaw.auth.retry import TokenRetryPolicy
from entraclaw.errors import ConfigurationError
from entraclaw.provisioning.graph import BlueprintInfo, GraphClient, KeyCredentialInfo
from entraclaw.provisioning.propagation import PropagationWait

__all__ = ["FLEET_RETRY_POLICY", "patch_keeping_others", "register_by_patch"]

#: Backoff between PATCH rounds when another device's PATCH overwrote this one's: the project's
#: retry rule with wide jitter, so devices that collided once spread out.
FLEET_RETRY_POLICY = TokenRetryPolicy(max_attempts=10_000, base_delay=0.5, max_delay=8.0, jitter=0.5)


def _kept_body(cred: KeyCredentialInfo, blueprint: BlueprintInfo) -> dict[str, Any]:
    if not cred.key_b64:
        raise ConfigurationError(
            f"Graph did not return the certificate of key {cred.key_id} on Blueprint {blueprint.app_id}, so a "
            "PATCH would drop it.",
            remedy="Register this device's certificate from a device that holds a registered key (addKey).",
            client_id=blueprint.app_id,
        )
    return {
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
        "key": cred.key_b64,
        "keyId": cred.key_id,
        "displayName": cred.display_name,
    }


def patch_keeping_others(
    graph: GraphClient,
    blueprint: BlueprintInfo,
    credentials: list[KeyCredentialInfo],
    body: dict[str, Any],
    *,
    drop_sha1: str | None = None,
) -> None:
    """One PATCH: keyCredentials = ``credentials`` (minus ``drop_sha1``) + ``body``.

    A single read-modify-write; :func:`register_by_patch` is what makes it safe against other devices.
    """
    kept = [_kept_body(c, blueprint) for c in credentials if drop_sha1 is None or c.sha1 != drop_sha1]
    graph.patch_key_credentials(blueprint.object_id, [*kept, body])


def register_by_patch(
    graph: GraphClient,
    blueprint: BlueprintInfo,
    body: dict[str, Any],
    sha1: str,
    *,
    wait: PropagationWait,
    drop: Callable[[KeyCredentialInfo], bool] = lambda _c: False,
    contended: bool = True,
    known: list[KeyCredentialInfo] | None = None,
    settle: float = 2.0,
    timeout: float = 180.0,
    echo: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    policy: TokenRetryPolicy = FLEET_RETRY_POLICY,
) -> int:
    """PATCH this device's certificate (``body``, thumbprint ``sha1``) onto the Blueprint until it sticks.

    ``drop`` names certificates this call removes on purpose (expired ones, the key a rotation
    replaces). ``contended=False`` (a Blueprint this process created moments ago, which no other
    device knows yet) skips the settle read, and with the ``known`` list also the reads: one PATCH.
    Returns the number of PATCH requests sent.
    """
    if not contended and known is not None:
        kept = [c for c in known if c.sha1 != sha1 and not drop(c)]
        wait.run(
            f"Blueprint {blueprint.app_id}",
            lambda: patch_keeping_others(graph, blueprint, kept, body),
            step="certificate",
        )
        return 1
    started = clock()
    seen: dict[str, KeyCredentialInfo] = {}  # other devices' certificates this device has read
    patches = 0
    backoff_due = False
    verified = False
    what = f"Blueprint {blueprint.app_id}"
    while True:
        current = wait.run(what, lambda: graph.key_credentials(blueprint.object_id), step="certificate")
        present = {c.sha1 for c in current if c.sha1}
        for cred in current:
            if cred.sha1 and cred.sha1 != sha1 and not drop(cred):
                seen.setdefault(cred.sha1, cred)
        lost = [c for s, c in seen.items() if s not in present]
        converged = sha1 in present and not lost and not any(drop(c) for c in current)
        if converged:
            if not contended or patches == 0 or verified:
                return patches
            verified = True
            sleep(settle * (1 + random.uniform(0, 0.5)))  # another device's stale PATCH would land by now
            continue
        verified = False
        if backoff_due:
            backoff_due = False
            delay = policy.delay_before(patches, None) or policy.max_delay
            elapsed = clock() - started
            if elapsed + delay > timeout:
                raise ConfigurationError(
                    f"The certificate list of Blueprint {blueprint.app_id} kept changing under this device for "
                    f"{elapsed:.0f}s: another device's PATCH overwrote this device's certificate {sha1} each time.",
                    remedy="Re-run `entraclaw setup` once the other devices have finished; it resumes here.",
                    client_id=blueprint.app_id,
                    thumbprint=sha1,
                )
            missing = "this device's certificate" if sha1 not in present else f"{len(lost)} other certificate(s)"
            echo(
                f"      another device changed the certificate list of {what} at the same time ({missing} "
                f"missing); PATCH again in {delay:.1f}s"
            )
            sleep(delay)
            continue
        kept = [c for c in current if c.sha1 != sha1 and not drop(c)] + lost
        wait.run(
            what,
            lambda kept=kept: patch_keeping_others(graph, blueprint, kept, body),  # type: ignore[misc]
            step="certificate",
        )
        patches += 1
        backoff_due = True
