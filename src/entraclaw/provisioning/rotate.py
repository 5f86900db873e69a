"""``entraclaw rotate``: replace this device's Blueprint key without a moment of lost authentication.

Seed 000's deploy script replaced the certificate list first and smoke-tested
after, so a failed smoke test stranded the device. The order here keeps a
working key in the config at every instant:

1. ``new_key``         new key + certificate in the same storage as the old one
2. ``add_key``         Graph addKey, proof signed by the OLD key (the old stays registered)
3. ``prove``           a real Hop 1 with the NEW key (waits out propagation, bounded)
4. ``switch_config``   the config names the new key (one atomic write)
5. ``remove_key``      Graph removeKey of the old certificate, proof signed by the NEW key
6. ``delete_old_key``  the old local key and certificate
7. ``invalidate_cache`` cached tokens obtained with the old key are dropped

Until step 4 the config names the old key, which is registered; from step 4
the config names the new key, which Hop 1 has proven. A run killed anywhere
leaves the journal (``rotate-journal.json``) at the last completed step and
the next run finishes the job.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entraclaw.errors import ConfigurationError, EntraclawError, GraphRequestError
from entraclaw.platform import paths
from entraclaw.provisioning.context import Endpoints, PropagationWait
from entraclaw.provisioning.fleet import register_by_patch
from entraclaw.provisioning.graph import BlueprintInfo, GraphClient, KeyCredentialInfo
from entraclaw.provisioning.keys import (
    DeviceKey,
    KeyStorage,
    create_device_key,
    delete_device_key,
    open_device_key,
    unclaimed_key_refs,
)
from entraclaw.provisioning.limits import DEFAULT_CERTIFICATE_DAYS, explained, read_certificate_policy
from entraclaw.provisioning.machine_steps import keep_single_grant
from entraclaw.provisioning.plan import PlanStep, describe
from entraclaw.provisioning.proofs import build_proof
from entraclaw.provisioning.setup import key_credential_body, key_id_for
from entraclaw.provisioning.smoke import prove_hop1
from entraclaw.provisioning.state import Journal, checkpoint, read_device_config, resolve_state_dir, write_device_config

__all__ = [
    "DEFAULT_DAYS_BEFORE_EXPIRY",
    "ROTATE_STEPS",
    "Rotate",
    "RotateResult",
    "endpoints_from_config",
    "invalidate_cached_tokens",
]

ROTATE_STEPS: tuple[str, ...] = (
    "new_key",
    "add_key",
    "prove",
    "switch_config",
    "remove_key",
    "delete_old_key",
    "invalidate_cache",
)
DEFAULT_DAYS_BEFORE_EXPIRY = 30
JOURNAL_NAME = "rotate-journal.json"
_REQUIRED = (
    "ENTRACLAW_TENANT_ID",
    "ENTRACLAW_BLUEPRINT_APP_ID",
    "ENTRACLAW_BLUEPRINT_OBJECT_ID",
    "ENTRACLAW_AGENT_IDENTITY_ID",
    "ENTRACLAW_KEY_REF",
)


def endpoints_from_config(config: dict[str, str]) -> Endpoints:
    from entraclaw.provisioning.context import DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_URL

    return Endpoints(
        tenant_id=config["ENTRACLAW_TENANT_ID"],
        authority_host=config.get("ENTRACLAW_AUTHORITY_HOST") or DEFAULT_AUTHORITY_HOST,
        graph_url=config.get("ENTRACLAW_GRAPH_URL") or DEFAULT_GRAPH_URL,
        ca_bundle=config.get("ENTRACLAW_CA_BUNDLE") or None,
        proxy=config.get("ENTRACLAW_PROXY") or None,
    )


def require_config(config: dict[str, str], env_file: Path, names: tuple[str, ...] = _REQUIRED) -> None:
    missing = [name for name in names if not config.get(name)]
    if missing:
        raise ConfigurationError(
            f"The device config ({env_file} and the environment) lacks {', '.join(missing)}.",
            remedy="Run `entraclaw setup` on this device first.",
            path=str(env_file),
        )


def _storage_of(key_ref: str) -> KeyStorage:
    kind = key_ref.split(":", 1)[0]
    storages: dict[str, KeyStorage] = {"cng": "cng", "file": "file", "tpm2": "tpm"}
    return storages.get(kind, "keystore")


def invalidate_cached_tokens(blueprint_app_id: str, agent_identity_app_id: str, cache_path: Path) -> int:
    """Drop persisted cache entries of this Blueprint's chain (T1 was obtained with the old key).

    Returns how many were dropped. The cache keys name the Blueprint (T1, T2)
    or the Agent Identity (T3), never the thumbprint, so the chain is cleared whole.
    """
    if not cache_path.exists():
        return 0
    from entraclaw.auth.persisted_cache import PersistedTokenStore

    try:
        store = PersistedTokenStore(cache_path)
    except EntraclawError:
        store = PersistedTokenStore(cache_path, allow_plaintext=True)
    ids = (blueprint_app_id.lower(), agent_identity_app_id.lower())
    with store.lock():
        entries = store.load()
        kept = {k: v for k, v in entries.items() if not any(i in k.lower() for i in ids)}
        dropped = len(entries) - len(kept)
        if dropped:
            store.save(kept)
    return dropped


@dataclass
class RotateResult:
    rotated: bool = False
    plan: list[PlanStep] = field(default_factory=list)
    old_sha1: str | None = None
    new_sha1: str | None = None
    days_left: int | None = None
    graph_requests: int = 0
    graph_writes: int = 0


class Rotate:
    """One rotation run of this device's key; ``graph`` may act as the admin or as the Blueprint itself."""

    def __init__(
        self,
        graph: GraphClient,
        *,
        state_dir: Path | None = None,
        days_before_expiry: int = DEFAULT_DAYS_BEFORE_EXPIRY,
        force: bool = False,
        echo: Callable[[str], None] = print,
        keystore: object | None = None,
        token_cache: Path | None = None,
        propagation_timeout: float = 180.0,
        read_key_list: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.graph = graph
        # False when Graph is called as the Blueprint itself: it may roll its keys, not read them.
        self.read_key_list = read_key_list
        self.state_dir = resolve_state_dir(state_dir)
        self.env_file = paths.env_file_path(self.state_dir)
        self.journal = Journal(self.state_dir / JOURNAL_NAME)
        self.days_before_expiry = days_before_expiry
        self.force = force
        self.echo = echo
        self.keystore = keystore
        self.token_cache = token_cache
        self.clock = clock
        self.wait = PropagationWait(timeout=propagation_timeout, echo=echo, sleep=sleep)
        self.result = RotateResult()
        self._act = True

    def _plan(self, step: str, action: str, detail: str = "") -> None:
        entry = PlanStep(step, action, detail)
        self.result.plan.append(entry)
        self.echo(describe(entry, dry_run=not self._act))

    def _done(self, step: str, **values: Any) -> None:
        self.journal.data.update(values)
        self.journal.data["done"] = [*self.journal.data.get("done", []), step]
        self.journal.save()

    def _is_done(self, step: str) -> bool:
        return step in self.journal.data.get("done", [])

    def run(self, *, dry_run: bool = False) -> RotateResult:
        self._act = not dry_run
        self.graph.reset_counts()
        config = read_device_config(self.env_file)
        require_config(config, self.env_file)
        endpoints = endpoints_from_config(config)
        blueprint_oid = config["ENTRACLAW_BLUEPRINT_OBJECT_ID"]
        blueprint_app_id = config["ENTRACLAW_BLUEPRINT_APP_ID"]
        identity_app_id = config["ENTRACLAW_AGENT_IDENTITY_ID"]
        self.journal.load()
        resuming = bool(self.journal.data.get("old_key_ref"))
        if resuming:
            self.echo(f"resuming the rotation recorded in {self.journal.path} (done: {self.journal.data.get('done')})")
        else:
            record = self._start(config, blueprint_app_id)
            if record is None:
                return self._finish()
            if not self._act:
                for step in ROTATE_STEPS:
                    self._plan(step, "run")
                return self._finish()
            self.journal.data = {"version": 1, **record, "done": []}
            self.journal.save()
        old_ref = str(self.journal.data["old_key_ref"])
        old_sha1 = str(self.journal.data["old_sha1"])
        self.result.old_sha1 = old_sha1

        # 1. new key
        new = self._new_key(blueprint_app_id, old_ref)
        try:
            self.result.new_sha1 = new.sha1
            checkpoint("new_key")
            # 2. addKey, proof by the old key
            self._add_key(blueprint_oid, old_ref, new)
            checkpoint("add_key")
            # 3. prove
            if not self._is_done("prove"):
                audience = self.wait.run(
                    f"the new certificate {new.sha1}",
                    lambda: prove_hop1(
                        endpoints,
                        blueprint_app_id=blueprint_app_id,
                        agent_identity_app_id=identity_app_id,
                        signer=new.signer,
                    ),
                )
                self._plan("prove", "done", f"Hop 1 with the new key -> T1 for {audience}")
                self._done("prove")
            checkpoint("prove")
            # 4. switch config
            if not self._is_done("switch_config"):
                write_device_config(
                    self.env_file,
                    {
                        "ENTRACLAW_KEY_REF": new.key_ref,
                        "ENTRACLAW_KEY_PROVIDER": new.provider,
                        "ENTRACLAW_BLUEPRINT_CERT_SHA1": new.sha1,
                        "ENTRACLAW_BLUEPRINT_CERT_X5T_S256": new.x5t_s256,
                    },
                )
                self._plan("switch_config", "done", f"{self.env_file} now names {new.key_ref}")
                self._done("switch_config")
            checkpoint("switch_config")
            # 5. removeKey, proof by the new key
            if not self._is_done("remove_key"):
                removed = self._remove_old(blueprint_oid, old_sha1, new)
                self._plan(
                    "remove_key",
                    "done" if removed else "skip",
                    f"old certificate {old_sha1} " + ("removed from the Blueprint" if removed else "already gone"),
                )
                self._done("remove_key")
            checkpoint("remove_key")
        finally:
            new.close()
        # 6. delete the old local key
        if not self._is_done("delete_old_key"):
            deleted = delete_device_key(old_ref, keystore=self.keystore)
            self._plan("delete_old_key", "done" if deleted else "skip", f"{old_ref}")
            self._done("delete_old_key")
        checkpoint("delete_old_key")
        # 7. cached tokens
        if not self._is_done("invalidate_cache"):
            from entraclaw.platform.paths import token_cache_path

            cache = self.token_cache or token_cache_path()
            try:
                dropped = invalidate_cached_tokens(blueprint_app_id, identity_app_id, cache)
                self._plan("invalidate_cache", "done", f"{dropped} cached token(s) of this Blueprint dropped ({cache})")
            except EntraclawError as exc:
                self._plan("invalidate_cache", "skip", f"{cache}: {exc.message}")
            self._done("invalidate_cache")
        checkpoint("invalidate_cache")
        self.journal.delete()
        self.result.rotated = True
        return self._finish()

    def _start(self, config: dict[str, str], blueprint_app_id: str) -> dict[str, Any] | None:
        """The journal's first record, or None when the certificate is not due (nothing to do)."""
        ref = config["ENTRACLAW_KEY_REF"]
        try:
            old = open_device_key(ref, keystore=self.keystore)
        except EntraclawError as exc:
            if not self.force:
                raise ConfigurationError(
                    f"This device's Blueprint key {ref} cannot be opened: {exc.message}",
                    remedy=(
                        "Run `entraclaw rotate --force` with admin credentials: it registers a new key with PATCH, "
                        "keeping other devices' certificates and dropping the lost one."
                    ),
                ) from None
            self.echo(f"warning: the current key {ref} is lost ({exc.message}); a new key replaces it by PATCH.")
            return {
                "old_key_ref": ref,
                "old_sha1": config.get("ENTRACLAW_BLUEPRINT_CERT_SHA1", ""),
                "old_lost": True,
                "blueprint_app_id": blueprint_app_id,
            }
        try:
            not_after = old.certificate.not_valid_after_utc
            days_left = (not_after - _dt.datetime.fromtimestamp(self.clock(), _dt.timezone.utc)).days
            self.result.days_left = days_left
            self.result.old_sha1 = old.sha1
            if not self.force and days_left > self.days_before_expiry:
                self._plan(
                    "rotate",
                    "skip",
                    f"certificate {old.sha1} expires in {days_left} days (> {self.days_before_expiry}); "
                    "--force rotates anyway",
                )
                return None
            return {"old_key_ref": old.key_ref, "old_sha1": old.sha1, "blueprint_app_id": blueprint_app_id}
        finally:
            old.close()

    def _finish(self) -> RotateResult:
        self.result.graph_requests = self.graph.requests_made
        self.result.graph_writes = self.graph.writes_made
        return self.result

    def _new_key(self, blueprint_app_id: str, old_ref: str) -> DeviceKey:
        recorded = self.journal.data.get("new_key_ref")
        if recorded:
            try:
                key = open_device_key(str(recorded), keystore=self.keystore)
            except EntraclawError:
                if self._is_done("switch_config"):
                    raise
                key = None
            if key is not None:
                self._plan("new_key", "exists", f"{key.key_ref} (SHA-1 {key.sha1})")
                return key
        adopted = None
        if self.journal.data.get("new_key_pending") and not recorded:
            # Killed between making the key and journalling it: adopt that key, do not make another.
            refs = unclaimed_key_refs(blueprint_app_id, state_dir=self.state_dir, exclude={old_ref})
            adopted = open_device_key(refs[0], keystore=self.keystore) if refs else None
        if adopted is not None:
            key = adopted
        else:
            self.journal.data["new_key_pending"] = True
            self.journal.save()
            key = create_device_key(
                blueprint_app_id,
                _storage_of(old_ref),
                state_dir=self.state_dir,
                keystore=self.keystore,
                # Inside the tenant's app management policy (asymmetricKeyLifetime), when it can be read.
                days=read_certificate_policy(self.graph).days if self.read_key_list else DEFAULT_CERTIFICATE_DAYS,
                machine=old_ref.startswith("cng:LocalMachine/"),
            )
            checkpoint("new_key:created")
        granted = keep_single_grant(old_ref, key)  # a machine key stays its one account's (setup --machine)
        if granted:
            self._plan("new_key", "grant", granted)
        if key.warning:
            self.echo(key.warning)
        self.journal.data.pop("new_key_pending", None)
        self.journal.data["done"] = ["new_key"]
        self.journal.data["new_key_ref"] = key.key_ref
        self.journal.data["new_sha1"] = key.sha1
        self.journal.save()
        self._plan("new_key", "done", f"{key.key_ref} ({key.provider}, SHA-1 {key.sha1})")
        return key

    def _remove_old(self, blueprint_oid: str, old_sha1: str, new: DeviceKey) -> bool:
        """removeKey of the old certificate (proof by the new key); False when it was already gone.

        With the list readable, the keyId comes from the GET addKey made (kept in the
        journal), read again after a crash. Rolling its own key, the Blueprint cannot read
        the list: it removes the keyId entraclaw registered the old certificate under.
        """
        attempted = bool(self.journal.data.get("remove_attempted"))
        if self.read_key_list:
            key_ids = [str(k) for k in self.journal.data.get("old_key_ids", [])]
            if not key_ids or attempted:
                key_ids = [c.key_id for c in self.graph.key_credentials(blueprint_oid) if c.sha1 == old_sha1]
        else:
            key_ids = [key_id_for(old_sha1)]
        self.journal.data["remove_attempted"] = True
        self.journal.save()
        removed = False
        for key_id in key_ids:
            try:
                self.graph.remove_key(blueprint_oid, key_id, build_proof(new.signer, blueprint_oid, now=self.clock()))
            except GraphRequestError as exc:
                if self.read_key_list or getattr(exc, "http_status", None) != 404:
                    raise
                if not attempted:
                    self.echo(
                        f"warning: Blueprint {blueprint_oid} has no keyId {key_id} for the old certificate {old_sha1} "
                        "(it was registered outside entraclaw); remove it with `entraclaw rotate --force` as an "
                        "admin, or let it expire."
                    )
                continue
            removed = True
            checkpoint("remove_key:sent")
        return removed

    def _add_key_blind(self, blueprint_oid: str, old_ref: str, new: DeviceKey) -> None:
        """addKey as the Blueprint itself, which may not read its key list.

        A 400 on a second attempt (the first was sent when the run was killed) means the
        certificate is there already; the Hop 1 of the next step proves it either way.
        """
        attempted = bool(self.journal.data.get("add_attempted"))
        self.journal.data["add_attempted"] = True
        self.journal.save()
        old = open_device_key(old_ref, keystore=self.keystore)
        try:
            self.graph.add_key(
                blueprint_oid, key_credential_body(new), build_proof(old.signer, blueprint_oid, now=self.clock())
            )
        except GraphRequestError as exc:
            if not (attempted and getattr(exc, "http_status", None) == 400):
                raise
            self._plan("add_key", "exists", f"{new.sha1} (sent before the interruption; Hop 1 will prove it)")
        else:
            checkpoint("add_key:sent")
            self._plan("add_key", "done", f"{new.sha1} added with addKey as the Blueprint (proof by {old.sha1})")
        finally:
            old.close()
        self._done("add_key")

    def _add_key_by_patch(
        self, blueprint_oid: str, new: DeviceKey, *, drop: Callable[[KeyCredentialInfo], bool], detail: str
    ) -> None:
        """Register ``new`` by a PATCH of the whole list, leaving out what ``drop`` names; the step is done."""
        info = BlueprintInfo(blueprint_oid, str(self.journal.data.get("blueprint_app_id")), "")
        register_by_patch(
            self.graph,
            info,
            key_credential_body(new),
            new.sha1,
            wait=self.wait,
            drop=drop,
            timeout=self.wait.timeout,
            echo=self.echo,
            sleep=self.wait.sleep,
        )
        # The PATCH replaced the list and the old certificate with it: removeKey of its keyId would be Graph's 404.
        self.journal.data["old_key_ids"] = []
        self._plan("add_key", "done", detail)
        self._done("add_key")

    def _add_key(self, blueprint_oid: str, old_ref: str, new: DeviceKey) -> None:
        """Register the new certificate; Graph's limit refusals become the typed errors setup gives."""
        if self._is_done("add_key"):
            return
        info = BlueprintInfo(blueprint_oid, str(self.journal.data.get("blueprint_app_id") or blueprint_oid), "")
        fix = (
            "Rotate with admin credentials, which read the tenant's app management policy and issue a certificate "
            "inside it: `entraclaw rotate --force --device-code` (or with --admin-app-id, --admin-cert and "
            "--admin-key)."
            if not self.read_key_list
            else None
        )
        explained(lambda: self._add_key_inner(blueprint_oid, old_ref, new), info, certificate=new.sha1, policy_fix=fix)

    def _add_key_inner(self, blueprint_oid: str, old_ref: str, new: DeviceKey) -> None:
        if not self.read_key_list:
            self._add_key_blind(blueprint_oid, old_ref, new)
            return
        credentials = self.graph.key_credentials(blueprint_oid)
        old_sha1 = str(self.journal.data.get("old_sha1") or "")
        self.journal.data["old_key_ids"] = [c.key_id for c in credentials if c.sha1 == old_sha1]
        if any(c.sha1 == new.sha1 for c in credentials):
            self._plan("add_key", "exists", f"{new.sha1} is already registered")
            self._done("add_key")
            return
        now = self.clock()
        valid = [c for c in credentials if c.valid_at(now)]
        if self.journal.data.get("old_lost") and valid:
            self._add_key_by_patch(
                blueprint_oid,
                new,
                drop=lambda c: bool(old_sha1) and c.sha1 == old_sha1,
                detail=f"{new.sha1} registered with PATCH; the lost {old_sha1 or 'key'} dropped",
            )
            return
        if not valid:
            # Nothing valid to prove with (every certificate expired): Graph's rule is PATCH.
            self._add_key_by_patch(
                blueprint_oid,
                new,
                drop=lambda c: not c.valid_at(now),
                detail=f"{new.sha1} registered with PATCH (the Blueprint had no valid certificate)",
            )
            return
        old = open_device_key(old_ref, keystore=self.keystore)
        try:
            if old.sha1 not in {c.sha1 for c in valid}:
                raise ConfigurationError(
                    f"This device's certificate {old.sha1} is no longer valid on Blueprint {blueprint_oid}, so it "
                    "cannot sign the addKey proof.",
                    remedy="Run `entraclaw setup --patch-key-credentials` with admin credentials to register a key.",
                    thumbprint=old.sha1,
                )
            proof = build_proof(old.signer, blueprint_oid, now=now)
            self.wait.run(
                f"Blueprint {blueprint_oid}",
                lambda: self.graph.add_key(blueprint_oid, key_credential_body(new), proof),
                step="add_key",
            )
            checkpoint("add_key:sent")
        finally:
            old.close()
        self._plan("add_key", "done", f"{new.sha1} added with addKey (proof signed by {old.sha1})")
        self._done("add_key")
