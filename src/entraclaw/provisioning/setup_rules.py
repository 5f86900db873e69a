"""Decisions ``entraclaw setup`` takes in both a dry run and a real run, kept out of setup.py so both share them.

- :func:`journal_has_progress`: whether a journal binds the next run (it made or was making something);
- :func:`certificate_action`: how this device's certificate gets onto the Blueprint, or why it cannot;
- :func:`remove_own_certificate`: rollback's removeKey of the certificate this device registered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CertificateAction", "certificate_action", "journal_has_progress", "remove_own_certificate"]


def journal_has_progress(data: Mapping[str, Any]) -> bool:
    """True when the journal records something made (or being made) in the directory or on this device."""
    key = data.get("key")
    return bool(
        data.get("created")
        or data.get("pending")
        or data.get("key_pending")
        or data.get("certificate")
        or data.get("status") == "complete"
        or (isinstance(key, Mapping) and key.get("created"))
    )


Action = Literal["exists", "patch", "add_key", "patch_keeping_others", "refuse"]


@dataclass(frozen=True)
class CertificateAction:
    action: Action
    detail: str


def certificate_action(
    *,
    registered_sha1s: set[str],
    valid_count: int,
    key_sha1: str | None,
    prover_sha1: str | None,
    patch_allowed: bool,
) -> CertificateAction:
    """The one rule: registered → nothing; no valid certificate → PATCH; a registered key of this device →
    addKey; ``--patch-key-credentials`` → read-modify-write PATCH; otherwise refuse.

    ``key_sha1`` None is a key not made yet (a dry run): it is registered nowhere.
    """
    shown = key_sha1 or "(the new key)"
    if key_sha1 is not None and key_sha1 in registered_sha1s:
        return CertificateAction("exists", f"SHA-1 {key_sha1} is registered on the Blueprint")
    if valid_count == 0:
        return CertificateAction("patch", f"SHA-1 {shown}; the Blueprint has no valid certificate")
    if prover_sha1 is not None:
        return CertificateAction("add_key", f"SHA-1 {shown}, proof signed by this device's {prover_sha1}")
    if patch_allowed:
        return CertificateAction(
            "patch_keeping_others",
            f"SHA-1 {shown} appended to {len(registered_sha1s)} certificate(s) by read-modify-write",
        )
    return CertificateAction("refuse", "")


def remove_own_certificate(
    graph: Any,
    journal: Mapping[str, Any],
    *,
    blueprint_deleted: bool,
    keystore: object | None,
    now: float,
    plan: Any,
    act: bool,
) -> None:
    """Rollback of a device that joined an existing Blueprint: removeKey the certificate of the key THIS
    run made (journal ``key.created``), and nothing else; the proof is signed by that key itself.

    Only a tenant can tell whether Graph takes a proof signed by the key being removed (the emulator
    does: any currently valid certificate of the app may sign, per the rollkey page).
    """
    from entraclaw.provisioning.keys import open_device_key
    from entraclaw.provisioning.proofs import build_proof
    from entraclaw.provisioning.state import checkpoint

    key = journal.get("key")
    blueprint = journal.get("blueprint")
    if blueprint_deleted or not isinstance(key, Mapping) or not key.get("created") or not key.get("sha1"):
        return
    if not isinstance(blueprint, Mapping) or not blueprint.get("object_id"):
        return
    object_id = str(blueprint["object_id"])
    mine = [c for c in graph.key_credentials(object_id) if c.sha1 == key["sha1"]]
    for cred in mine:
        plan("rollback", "remove certificate", f"SHA-1 {cred.sha1} (keyId {cred.key_id}) from Blueprint {object_id}")
        if act:
            device_key = open_device_key(str(key["key_ref"]), keystore=keystore)
            try:
                graph.remove_key(object_id, cred.key_id, build_proof(device_key.signer, object_id, now=now))
            finally:
                device_key.close()
            checkpoint("rollback:remove_key:sent")
