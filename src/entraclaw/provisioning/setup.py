"""``entraclaw setup``: from an empty tenant to a working Agent User on this device, in one command.

Step order (each step finds before it creates, and is journalled when done):

1. ``blueprint``            Blueprint application (found by journal id, app id or displayName)
2. ``blueprint_principal``  its service principal (found by appId)
3. ``key``                  this device's key + certificate (TPM / software KSP / OS keystore)
4. ``certificate``          the certificate on the Blueprint: PATCH while the Blueprint has no valid
                            certificate; otherwise addKey with a proof signed by a key of THIS device
5. ``agent_identity``       Agent Identity of the Blueprint (found by displayName + blueprint)
6. ``agent_user``           Agent User (UPN from the default verified domain unless given)
7. ``consent``              oauth2PermissionGrant: Agent Identity -> Graph, for the Agent User
8. ``config``               the device config (.env), one atomic write
9. ``smoke``                Hops 1-3 and Graph /me with the written config

A crash between any two steps leaves the journal at the last completed step;
objects whose create request was sent but not journalled are found by name on
the next run and adopted (and remembered as created by this run, for
``--rollback``). Re-running on a configured device sends only GETs.
"""

from __future__ import annotations

import base64
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from entraclaw.errors import ConfigurationError, EntraclawError, GraphRequestError
from entraclaw.platform import paths
from entraclaw.provisioning.context import Endpoints, PropagationWait
from entraclaw.provisioning.fleet import patch_keeping_others, register_by_patch
from entraclaw.provisioning.graph import (
    GRAPH_APP_ID,
    AgentIdentityInfo,
    AgentUserInfo,
    BlueprintInfo,
    GraphClient,
    KeyCredentialInfo,
    ServicePrincipalInfo,
)
from entraclaw.provisioning.keys import (
    DeviceKey,
    KeyStorage,
    create_device_key,
    delete_device_key,
    local_key_refs,
    open_device_key,
    resolve_storage,
    unclaimed_key_refs,
)
from entraclaw.provisioning.limits import KEY_CREDENTIALS_GUARD, explained, read_certificate_policy, refuse_if_full
from entraclaw.provisioning.machine_steps import check_machine_install, grant_machine_access, refuse_granted_machine_key
from entraclaw.provisioning.plan import PlanStep, describe
from entraclaw.provisioning.proofs import build_proof
from entraclaw.provisioning.setup_rules import certificate_action, journal_has_progress, remove_own_certificate
from entraclaw.provisioning.smoke import run_chain
from entraclaw.provisioning.state import (
    CONFIG_KEYS,
    SETUP_JOURNAL_NAME,
    Journal,
    checkpoint,
    read_device_config,
    resolve_state_dir,
    write_device_config,
)

__all__ = [
    "SETUP_STEPS",
    "PlanStep",
    "Setup",
    "SetupOptions",
    "SetupResult",
    "key_credential_body",
    "key_id_for",
    "patch_keeping_others",
]

SETUP_STEPS: tuple[str, ...] = (
    "blueprint",
    "blueprint_principal",
    "key",
    "certificate",
    "agent_identity",
    "agent_user",
    "consent",
    "config",
    "smoke",
)
JOURNAL_NAME = SETUP_JOURNAL_NAME
T = TypeVar("T")


class _NamedObject(Protocol):
    @property
    def object_id(self) -> str: ...
    @property
    def display_name(self) -> str: ...


Named = TypeVar("Named", bound=_NamedObject)
# Reverse dependency order for rollback, and the Graph collection each kind lives in.
_DELETE_ORDER = ("consent", "agent_user", "agent_identity", "blueprint_principal", "blueprint")
_COLLECTION = {
    "consent": "oauth2PermissionGrants",
    "agent_user": "users",
    "agent_identity": "servicePrincipals",
    "blueprint_principal": "servicePrincipals",
    "blueprint": "applications",
}


# keyIds are the caller's to choose (keyCredential.keyId is writable): deriving them from the
# certificate lets a device name its own registered key for removeKey without reading the list,
# which an app rolling its own keys has no permission to read.
_KEY_ID_NAMESPACE = uuid.UUID("6f1d3c2a-5e8b-4c7d-9a0e-0e1f2a3b4c5d")


def key_id_for(sha1: str) -> str:
    """The keyId entraclaw registers a device certificate under: a UUIDv5 of its SHA-1 thumbprint."""
    return str(uuid.uuid5(_KEY_ID_NAMESPACE, sha1.upper()))


def key_credential_body(key: DeviceKey) -> dict[str, Any]:
    """A keyCredential for the device certificate (public part only), as addKey / PATCH take it."""
    return {
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
        "key": base64.b64encode(key.der).decode("ascii"),
        "keyId": key_id_for(key.sha1),
        "displayName": f"CN={key.certificate.subject.rfc4514_string().removeprefix('CN=')}",
    }


@dataclass
class SetupOptions:
    endpoints: Endpoints
    blueprint_name: str = "entraclaw Agent Blueprint"
    blueprint_app_id: str | None = None
    agent_identity_name: str = "entraclaw Agent Identity"
    agent_user_upn: str | None = None
    agent_user_nickname: str = "entraclaw-agent"
    agent_user_display_name: str = "entraclaw Agent User"
    scopes: tuple[str, ...] = ("User.Read",)
    key_storage: KeyStorage = "auto"
    patch_key_credentials: bool = False
    sponsor_ids: tuple[str, ...] = ()
    smoke_test: bool = True
    state_dir: Path | None = None
    propagation_timeout: float = 180.0
    #: Seconds between the two reads that confirm a PATCHed certificate list stayed put (fleet.py).
    fleet_settle: float = 2.0
    #: Certificates a Blueprint may hold before setup refuses another device (limits.py).
    max_key_credentials: int = KEY_CREDENTIALS_GUARD
    require_tpm: bool | None = None  # True: no software key fallback (None: ENTRACLAW_REQUIRE_TPM decides)
    #: ``--machine --account``: a machine key in LocalMachine\My usable by this account only (machine.py).
    machine_account: str | None = None


@dataclass
class SetupResult:
    plan: list[PlanStep] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)
    graph_requests: int = 0
    graph_writes: int = 0
    completed: bool = False
    warnings: list[str] = field(default_factory=list)
    #: Propagation waits per step (the one bounded wait's retries), e.g. {"agent_identity": 3}.
    waits: dict[str, int] = field(default_factory=dict)


class Setup:
    """One setup run. ``graph`` is authenticated as the admin; ``echo`` prints progress lines."""

    def __init__(
        self,
        options: SetupOptions,
        graph: GraphClient,
        *,
        echo: Callable[[str], None] = print,
        keystore: object | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        on_step: Callable[[PlanStep], None] | None = None,
    ) -> None:
        self.options = options
        self.on_step = on_step
        self.key: DeviceKey | None = None
        self.graph = graph
        self.echo = echo
        self.keystore = keystore
        self.clock = clock
        self.state_dir = resolve_state_dir(options.state_dir)
        self.env_file = paths.env_file_path(self.state_dir)
        self.journal = Journal(self.state_dir / JOURNAL_NAME)
        self.wait = PropagationWait(timeout=options.propagation_timeout, echo=echo, sleep=sleep)
        self._sleep = sleep
        self.result = SetupResult()
        self._act = True
        self._sponsor_ids: tuple[str, ...] | None = None
        # Kinds this process created: nothing can hang below an object made moments ago by this
        # process, so the lookups under it are skipped (fewer requests, no propagation waits).
        self._fresh: set[str] = set()
        self._known: list[KeyCredentialInfo] = []  # the certificate list the certificate step read

    # --- helpers -------------------------------------------------------------------------

    def _plan(self, step: str, action: str, detail: str = "") -> None:
        entry = PlanStep(step, action, detail)
        self.result.plan.append(entry)
        if self.on_step is not None:
            self.on_step(entry)
        self.echo(describe(entry, dry_run=not self._act))

    def _sponsors(self) -> tuple[str, ...]:
        """Object ids of the sponsors Graph requires on a new Blueprint / Agent Identity."""
        if self._sponsor_ids is not None:
            return self._sponsor_ids
        remembered = self.journal.data.get("sponsor_ids")
        if not self.options.sponsor_ids and isinstance(remembered, list) and remembered:
            # A resumed run needs only the admin sign-in (README): the sponsors the first run was given.
            self._sponsor_ids = tuple(str(i) for i in remembered)
            return self._sponsor_ids
        ids: list[str] = []
        for value in self.options.sponsor_ids:
            if "@" in value:
                user = self.graph.find_user(value)
                if user is None:
                    raise ConfigurationError(
                        f"Sponsor {value} is not a user in tenant {self.options.endpoints.tenant_id}.",
                        remedy="Pass --sponsor with an existing user's UPN or object id.",
                    )
                ids.append(user.object_id)
            else:
                ids.append(value)
        if not ids:
            me = self.graph.me()
            if me is None:
                raise ConfigurationError(
                    "A new Blueprint and Agent Identity need a sponsor (a user accountable for them), and an app-only "
                    "admin sign-in has no user to default to.",
                    remedy="Pass --sponsor <user UPN or object id> (for the emulator: the admin_user it printed).",
                )
            ids.append(me.object_id)
        self._sponsor_ids = tuple(ids)
        # Saved with the create that needs them (_creating writes the journal before sending it).
        self.journal.data["sponsor_ids"] = list(ids)
        return self._sponsor_ids

    def _await_pending(self, kind: str, finder: Callable[[], T | None]) -> T | None:
        """``finder()``; when an interrupted run of this device made (or was making) ``kind``, wait for it first.

        Right after an interruption the re-run may read before Entra's replicas have the new object;
        taking "not found" at its word there creates a second one (seen: two Blueprints of one name).
        """
        found = finder()
        made_here = self.journal.data.get("status") != "complete" and any(
            isinstance(item, dict) and item.get("kind") == kind for item in self.journal.data.get("created", [])
        )
        if found is not None or not (self.journal.data.get("pending") == kind or made_here) or not self._act:
            return found

        def attempt() -> T:
            again = finder()
            if again is None:
                raise GraphRequestError(
                    f"The {kind} an interrupted run was creating is not visible (yet).",
                    remedy="Wait and re-run.",
                    http_status=404,
                    code="not_visible",
                    request_id=None,
                    url=self.graph.base_url,
                )
            return again

        try:
            return self.wait.run(f"the {kind} an interrupted run was creating", attempt)
        except GraphRequestError as exc:
            if getattr(exc, "code", None) == "not_visible":
                return None  # the create never reached Graph
            raise

    def _record(self, step: str, value: dict[str, Any]) -> None:
        self.journal.data[step] = value
        self.journal.save()

    def _pending(self, kind: str) -> None:
        # Written before a create request: if the process dies after Graph made the object
        # but before the journal knew, the next run adopts the object it finds by name and
        # still knows this device created it.
        self.journal.data["pending"] = kind
        self.journal.save()

    @contextlib.contextmanager
    def _creating(self, kind: str) -> Iterator[None]:
        """Around a create request: marks it pending; a 4xx answer means nothing was made."""
        self._pending(kind)
        try:
            yield
        except GraphRequestError as exc:
            status = getattr(exc, "http_status", None)
            if isinstance(status, int) and 400 <= status < 500:
                self.journal.data.pop("pending", None)
                self.journal.save()
            raise

    def _create_waiting(self, kind: str, what: str, send: Callable[[], T]) -> T:
        """A create that names a new parent, through the one propagation wait.

        Each attempt is marked pending only while it is in flight: a 4xx (the parent not there yet)
        made nothing, so an interruption during the wait between attempts leaves nothing to adopt.
        """

        def attempt() -> T:
            with self._creating(kind):
                return send()

        with self._creating(kind):
            return self.wait.run(what, attempt, step=kind)

    def _created(self, kind: str, object_id: str, name: str, *, by_this_process: bool = True) -> None:
        if by_this_process:
            self._fresh.add(kind)
        created = list(self.journal.data.get("created", []))
        if not any(item.get("id") == object_id for item in created):
            created.append({"kind": kind, "id": object_id, "name": name})
        self.journal.data["created"] = created
        self.journal.data.pop("pending", None)
        self.journal.save()

    def _adopted(self, kind: str, object_id: str, name: str) -> None:
        if self._act and self.journal.data.get("pending") == kind:
            self._created(kind, object_id, name, by_this_process=False)

    def _find_one(
        self, kind: str, find: Callable[[], list[Named]], too_many: Callable[[list[Named]], EntraclawError]
    ) -> Named | None:
        """The one object ``find`` returns (waiting for one an interrupted run sent), adopted if it was pending."""
        rows = self._await_pending(kind, lambda: find() or None) or []
        if len(rows) > 1:
            raise too_many(rows)
        found = rows[0] if rows else None
        if found is not None:
            self._adopted(kind, found.object_id, found.display_name)
        return found

    # --- run -----------------------------------------------------------------------------

    def run(self, *, dry_run: bool = False) -> SetupResult:
        self._act = not dry_run
        upn = self.options.agent_user_upn
        if upn is not None and (upn.count("@") != 1 or upn.startswith("@") or upn.endswith("@")):
            raise ConfigurationError(
                f"UPN {upn!r} is not name@domain.",
                remedy="Pass --upn name@<a verified domain of the tenant>, or leave it out for the default domain.",
            )
        self.graph.reset_counts()
        self.journal.load()
        endpoints = self.options.endpoints
        if self.journal.data and not journal_has_progress(self.journal.data):
            # A run that stopped before it made anything (a wrong tenant, no sign-in) binds nothing.
            self.journal.data = {}
        if self.journal.data.get("tenant_id") not in (None, endpoints.tenant_id):
            raise ConfigurationError(
                f"The setup journal {self.journal.path} belongs to tenant {self.journal.data.get('tenant_id')}, "
                f"not {endpoints.tenant_id}.",
                remedy="Use another ENTRACLAW_HOME for the other tenant, or `entraclaw setup --rollback` first.",
                path=str(self.journal.path),
            )
        if self._act and not self.journal.data:
            self.journal.data = {
                "version": 1,
                "tenant_id": endpoints.tenant_id,
                "run_id": str(uuid.uuid4()),
                # So that "re-run `entraclaw setup`" works after an interruption without retyping them
                # (the .env that would otherwise hold them is written only near the end).
                "endpoints": {
                    "ENTRACLAW_TENANT_ID": endpoints.tenant_id,
                    "ENTRACLAW_AUTHORITY_HOST": endpoints.authority_host,
                    "ENTRACLAW_GRAPH_URL": endpoints.graph_url,
                    **({"ENTRACLAW_CA_BUNDLE": endpoints.ca_bundle} if endpoints.ca_bundle else {}),
                    **({"ENTRACLAW_PROXY": endpoints.proxy} if endpoints.proxy else {}),
                },
            }
            self.journal.save()
        if self.options.machine_account is not None:
            # Before any Graph write: the account must resolve and the state directory must be one
            # the service can be pointed at (machine_steps.py).
            check_machine_install(self.options.machine_account, self.options.key_storage, self.options.state_dir)
        config = read_device_config(self.env_file)
        if self._act and self.keystore is None and resolve_storage(self.options.key_storage) == "keystore":
            # Before any Graph write: a machine without a usable OS keystore fails here, not after
            # the Blueprint exists.
            from entraclaw.keystore import default_keystore

            self.keystore = default_keystore()

        blueprint = self._blueprint(config)
        checkpoint("blueprint")
        principal = self._blueprint_principal(blueprint)
        checkpoint("blueprint_principal")
        key = self._key(blueprint, config)
        checkpoint("key")
        try:
            self._certificate(blueprint, key, config)
            checkpoint("certificate")
            identity = self._agent_identity(blueprint, principal)
            checkpoint("agent_identity")
            user = self._agent_user(identity)
            checkpoint("agent_user")
            self._consent(identity, user)
            checkpoint("consent")
            values = self._config(blueprint, identity, user, key, config)
            checkpoint("config")
            self._smoke(blueprint, identity, user, key)
            checkpoint("smoke")
            if self._act:
                self.journal.update(status="complete")
            if self.options.machine_account is not None:
                # Last: after the grant only the service account can sign (the smoke test signed as
                # the installer); a re-run by the installer then stops at the key step, saying so.
                for step, action, detail in grant_machine_access(
                    self.options.machine_account, key, self.state_dir, act=self._act
                ):
                    self._plan(step, action, detail)
                    checkpoint(step)
        finally:
            if key is not None:
                key.close()
        self.result.config = values
        if self._act:
            self.result.completed = True
        self.result.graph_requests = self.graph.requests_made
        self.result.graph_writes = self.graph.writes_made
        self.result.waits = dict(self.wait.retries)
        return self.result

    # --- steps ---------------------------------------------------------------------------

    def _blueprint(self, config: dict[str, str]) -> BlueprintInfo | None:
        opts = self.options
        recorded = self.journal.data.get("blueprint")
        found: BlueprintInfo | None = None
        if isinstance(recorded, dict) and recorded.get("object_id"):
            object_id = str(recorded["object_id"])
            found = self._await_pending("blueprint", lambda: self.graph.get_blueprint(object_id))
        if found is None:
            app_id = opts.blueprint_app_id
            if app_id is None and config.get("ENTRACLAW_TENANT_ID") == opts.endpoints.tenant_id:
                app_id = config.get("ENTRACLAW_BLUEPRINT_APP_ID") or None
            if app_id is not None:
                rows = self.graph.find_blueprints(app_id=app_id)
                if not rows and opts.blueprint_app_id is not None:
                    raise ConfigurationError(
                        f"No Blueprint with app id {app_id} exists in tenant {opts.endpoints.tenant_id}.",
                        remedy="Check --blueprint-app-id, or leave it out to find/create one by name.",
                        client_id=app_id,
                    )
                found = rows[0] if rows else None
            if found is None:
                found = self._find_one(
                    "blueprint",
                    lambda: self.graph.find_blueprints(display_name=opts.blueprint_name),
                    lambda rows: ConfigurationError(
                        f"{len(rows)} Blueprints are named {opts.blueprint_name!r} "
                        f"({', '.join(r.app_id for r in rows)}).",
                        remedy="Pass --blueprint-app-id with the one to use, or --blueprint-name with a unique name.",
                    ),
                )
        if found is not None:
            self._plan("blueprint", "exists", f"{found.display_name} (app id {found.app_id})")
        else:
            self._plan("blueprint", "create", f"{opts.blueprint_name}")
            if not self._act:
                return None
            sponsors = self._sponsors()
            with self._creating("blueprint"):
                found = self.graph.create_blueprint(opts.blueprint_name, sponsor_ids=sponsors)
            checkpoint("blueprint:sent")
            self._created("blueprint", found.object_id, found.display_name)
        if self._act:
            self._record("blueprint", {"object_id": found.object_id, "app_id": found.app_id})
        return found

    def _blueprint_principal(self, blueprint: BlueprintInfo | None) -> ServicePrincipalInfo | None:
        if blueprint is None:
            self._plan("blueprint_principal", "create", "service principal of the new Blueprint")
            return None
        bp_app_id = blueprint.app_id
        principal = None
        if "blueprint" not in self._fresh:
            principal = self._await_pending("blueprint_principal", lambda: self.graph.find_service_principal(bp_app_id))
        if principal is not None:
            self._adopted("blueprint_principal", principal.object_id, principal.display_name)
            self._plan("blueprint_principal", "exists", f"object id {principal.object_id}")
        else:
            self._plan("blueprint_principal", "create", f"for app id {blueprint.app_id}")
            if not self._act:
                return None
            principal = self._create_waiting(
                "blueprint_principal",
                f"Blueprint {bp_app_id}",
                lambda: self.graph.create_blueprint_principal(bp_app_id),
            )
            checkpoint("blueprint_principal:sent")
            self._created("blueprint_principal", principal.object_id, principal.display_name)
        if self._act:
            self._record("blueprint_principal", {"object_id": principal.object_id})
        return principal

    def _candidate_refs(self, blueprint: BlueprintInfo, config: dict[str, str]) -> list[str]:
        refs: list[str] = []
        recorded = self.journal.data.get("key")
        if (
            isinstance(recorded, dict)
            and recorded.get("key_ref")
            and recorded.get("blueprint_app_id")
            in (
                None,
                blueprint.app_id,
            )
        ):
            refs.append(str(recorded["key_ref"]))
        if config.get("ENTRACLAW_BLUEPRINT_APP_ID") == blueprint.app_id and config.get("ENTRACLAW_KEY_REF"):
            refs.append(config["ENTRACLAW_KEY_REF"])
        return list(dict.fromkeys(refs))

    def _key(self, blueprint: BlueprintInfo | None, config: dict[str, str]) -> DeviceKey | None:
        if blueprint is None:
            self._plan("key", "create", f"new device key ({self.options.key_storage})")
            return None
        for ref in self._candidate_refs(blueprint, config):
            try:
                key = open_device_key(ref, keystore=self.keystore)
            except EntraclawError:
                refuse_granted_machine_key(ref, self.options.machine_account)
                continue
            self.key = key
            self._plan("key", "exists", f"{ref} ({key.provider}, SHA-1 {key.sha1})")
            if self._act:
                self._record("key", self._key_record(key, blueprint, created=self._key_created(ref)))
            return key
        if not self._act:
            self._plan("key", "create", f"new device key ({self.options.key_storage})")
            return None
        if self.journal.data.get("key_pending"):
            exclude = set(self._candidate_refs(blueprint, config))
            for ref in unclaimed_key_refs(blueprint.app_id, state_dir=self.state_dir, exclude=exclude):
                key = open_device_key(ref, keystore=self.keystore)
                self.key = key
                self.journal.data.pop("key_pending", None)
                self._record("key", self._key_record(key, blueprint, created=True))
                self._plan("key", "exists", f"{ref} (made by the interrupted run; SHA-1 {key.sha1})")
                return key
        # A tenant's app management policy may cap certificate lifetimes: issue one it allows.
        policy = read_certificate_policy(self.graph)
        self.journal.data["key_pending"] = True
        self.journal.save()
        key = create_device_key(
            blueprint.app_id,
            self.options.key_storage,
            state_dir=self.state_dir,
            keystore=self.keystore,
            days=policy.days,
            require_tpm=self.options.require_tpm,
            machine=self.options.machine_account is not None,
        )
        checkpoint("key:created")
        self.key = key
        self.journal.data.pop("key_pending", None)
        self._record("key", self._key_record(key, blueprint, created=True))
        if key.warning:
            self.echo(key.warning)
            self.result.warnings.append(key.warning)
        self._plan("key", "create", f"{key.key_ref} ({key.provider}, SHA-1 {key.sha1})")
        return key

    def _key_created(self, ref: str) -> bool:
        recorded = self.journal.data.get("key")
        return bool(isinstance(recorded, dict) and recorded.get("key_ref") == ref and recorded.get("created"))

    @staticmethod
    def _key_record(key: DeviceKey, blueprint: BlueprintInfo, *, created: bool) -> dict[str, Any]:
        return {
            "key_ref": key.key_ref,
            "sha1": key.sha1,
            "x5t_s256": key.x5t_s256,
            "provider": key.provider,
            "blueprint_app_id": blueprint.app_id,
            "created": created,
        }

    def _device_registered_key(
        self, blueprint: BlueprintInfo, valid: list[KeyCredentialInfo], exclude: str, config: dict[str, str]
    ) -> DeviceKey | None:
        """A key of THIS device whose certificate is currently valid on the Blueprint."""
        valid_sha1 = {c.sha1 for c in valid if c.sha1}
        refs = local_key_refs(blueprint.app_id, state_dir=self.state_dir)
        if config.get("ENTRACLAW_KEY_REF"):
            refs.insert(0, config["ENTRACLAW_KEY_REF"])
        for ref in dict.fromkeys(refs):
            if ref == exclude:
                continue
            try:
                key = open_device_key(ref, keystore=self.keystore)
            except EntraclawError:
                continue
            if key.sha1 in valid_sha1:
                return key
            key.close()
        return None

    def _certificate(self, blueprint: BlueprintInfo | None, key: DeviceKey | None, config: dict[str, str]) -> None:
        if blueprint is None:
            self._plan("certificate", "register", "the new certificate (PATCH: a new Blueprint has none)")
            return
        credentials: list[KeyCredentialInfo] = []
        if "blueprint" not in self._fresh:
            credentials = self.wait.run(
                f"Blueprint {blueprint.app_id}",
                lambda: self.graph.key_credentials(blueprint.object_id),
                step="certificate",
            )
        if key is not None and any(c.sha1 == key.sha1 for c in credentials):
            self._plan("certificate", "exists", f"SHA-1 {key.sha1} is registered on the Blueprint")
            if self._act:
                self._record("certificate", {"sha1": key.sha1})
            return
        refuse_if_full(blueprint, len(credentials), limit=self.options.max_key_credentials)
        shown = key.sha1 if key is not None else "(the new key)"
        explained(lambda: self._register(blueprint, key, credentials, config), blueprint, certificate=shown)
        if self._act and key is not None:
            self._record("certificate", {"sha1": key.sha1})

    def _register(
        self,
        blueprint: BlueprintInfo,
        key: DeviceKey | None,
        credentials: list[KeyCredentialInfo],
        config: dict[str, str],
    ) -> None:
        self._known = credentials
        now = self.clock()
        valid = [c for c in credentials if c.valid_at(now)]
        prover = self._device_registered_key(blueprint, valid, key.key_ref if key else "", config) if valid else None
        # The dry run (key None: not made yet) and the run decide by the same rule (setup_rules).
        decision = certificate_action(
            registered_sha1s={c.sha1 for c in credentials if c.sha1},
            valid_count=len(valid),
            key_sha1=key.sha1 if key is not None else None,
            prover_sha1=prover.sha1 if prover is not None else None,
            patch_allowed=self.options.patch_key_credentials,
        )
        try:
            if decision.action == "refuse":
                others = ", ".join(c.sha1 or c.key_id for c in valid)
                raise ConfigurationError(
                    f"Blueprint {blueprint.app_id} already has {len(valid)} valid certificate(s) ({others}) from "
                    "other devices, and this device holds none of their keys, so it cannot sign the proof that "
                    "addKey requires.",
                    remedy=(
                        "Either run `entraclaw setup --patch-key-credentials` to append this device's certificate "
                        "with PATCH (keeps the others, but a concurrent change on another device could be lost), "
                        "or register it from a device that holds a registered key."
                    ),
                    client_id=blueprint.app_id,
                    thumbprint=key.sha1 if key is not None else None,
                )
            labels = {
                "exists": "exists",
                "patch": "register (PATCH)",
                "add_key": "register (addKey)",
                "patch_keeping_others": "register (PATCH, keeping others)",
            }
            self._plan("certificate", labels[decision.action], decision.detail)
            if not self._act or key is None:
                return
            body = key_credential_body(key)
            if decision.action == "patch":
                # Expired certificates go; one another device adds meanwhile stays (fleet.py).
                self._register_by_patch(blueprint, key, body, drop=lambda c: not c.valid_at(now))
                checkpoint("certificate:sent")
            elif decision.action == "add_key" and prover is not None:
                proof = build_proof(prover.signer, blueprint.object_id, now=now)
                self.wait.run(
                    f"Blueprint {blueprint.app_id}",
                    lambda: self.graph.add_key(blueprint.object_id, body, proof),
                    step="certificate",
                )
                checkpoint("certificate:sent")
            elif decision.action == "patch_keeping_others":
                self._register_by_patch(blueprint, key, body)
                checkpoint("certificate:sent")
        finally:
            if prover is not None:
                prover.close()

    def _register_by_patch(
        self,
        blueprint: BlueprintInfo,
        key: DeviceKey,
        body: dict[str, Any],
        *,
        drop: Callable[[KeyCredentialInfo], bool] = lambda _c: False,
    ) -> None:
        """PATCH keyCredentials until this device's certificate sticks and nobody else's was lost."""
        patches = register_by_patch(
            self.graph,
            blueprint,
            body,
            key.sha1,
            wait=self.wait,
            drop=drop,
            # A Blueprint this process made moments ago is known to no other device yet.
            contended="blueprint" not in self._fresh,
            known=self._known,
            settle=self.options.fleet_settle,
            timeout=self.options.propagation_timeout,
            echo=self.echo,
            sleep=self._sleep,
        )
        if patches > 1:
            self.wait.retries["certificate"] += patches - 1

    def _agent_identity(
        self, blueprint: BlueprintInfo | None, principal: ServicePrincipalInfo | None
    ) -> AgentIdentityInfo | None:
        opts = self.options
        if blueprint is None:
            self._plan("agent_identity", "create", opts.agent_identity_name)
            return None
        recorded = self.journal.data.get("agent_identity")
        found: AgentIdentityInfo | None = None
        if isinstance(recorded, dict) and recorded.get("object_id") and "blueprint" not in self._fresh:
            found = self.graph.get_agent_identity(str(recorded["object_id"]))
            if found is not None and found.blueprint_app_id.lower() != blueprint.app_id.lower():
                found = None  # the journal's identity belongs to a Blueprint this run replaced
        if found is None and "blueprint" not in self._fresh:
            found = self._find_one(
                "agent_identity",
                lambda: [
                    r
                    for r in self.graph.find_agent_identities(opts.agent_identity_name)
                    if r.blueprint_app_id.lower() == blueprint.app_id.lower()
                ],
                lambda rows: ConfigurationError(
                    f"{len(rows)} Agent Identities of Blueprint {blueprint.app_id} are named "
                    f"{opts.agent_identity_name!r}.",
                    remedy="Delete the extra ones (or pass --agent-identity-name with a unique name) and re-run.",
                ),
            )
        if found is not None:
            self._plan("agent_identity", "exists", f"{found.display_name} (app id {found.app_id})")
        else:
            self._plan("agent_identity", "create", f"{opts.agent_identity_name} of Blueprint {blueprint.app_id}")
            if not self._act:
                return None
            sponsors = self._sponsors()
            found = self._create_waiting(
                "agent_identity",
                f"the principal of Blueprint {blueprint.app_id}",
                lambda: self.graph.create_agent_identity(
                    opts.agent_identity_name, blueprint.app_id, sponsor_ids=sponsors
                ),
            )
            checkpoint("agent_identity:sent")
            self._created("agent_identity", found.object_id, found.display_name)
        if self._act:
            self._record("agent_identity", {"object_id": found.object_id, "app_id": found.app_id})
        return found

    def _upn(self) -> str:
        given = self.options.agent_user_upn
        if given:
            domain = given.rsplit("@", 1)[1].lower()
            verified = self.graph.verified_domains()
            if domain not in {d.lower() for d in verified}:
                raise ConfigurationError(
                    f"The UPN {given} is not in a verified domain of tenant {self.options.endpoints.tenant_id} "
                    f"(verified: {', '.join(verified) or 'none'}).",
                    remedy="Pass --upn with one of the verified domains, or leave it out for the default domain.",
                )
            return given
        recorded = self.journal.data.get("agent_user")
        if isinstance(recorded, dict) and recorded.get("upn"):
            return str(recorded["upn"])
        default = self.graph.default_domain()
        if default is None:
            raise ConfigurationError(
                f"Tenant {self.options.endpoints.tenant_id} has no verified domain to name the Agent User with.",
                remedy="Pass --upn name@your-verified-domain.",
            )
        return f"{self.options.agent_user_nickname}@{default}"

    def _agent_user(self, identity: AgentIdentityInfo | None) -> AgentUserInfo | None:
        opts = self.options
        if identity is None:
            self._plan("agent_user", "create", opts.agent_user_upn or f"{opts.agent_user_nickname}@<default domain>")
            return None
        upn = self._upn()
        found = None
        if "agent_identity" not in self._fresh:
            found = self._await_pending("agent_user", lambda: self.graph.find_agent_user(upn))
        # A person already holding the UPN is not an Agent User: Graph refuses the create below and
        # says why, which costs no extra read on every fresh setup.
        if found is not None and found.identity_parent_id.lower() != identity.object_id.lower():
            raise ConfigurationError(
                f"The UPN {upn} is taken by Agent User {found.object_id}, which belongs to another Agent Identity, not "
                f"{identity.app_id}.",
                remedy="Pass --upn with another name for this Agent User (or --agent-identity-name for that one).",
            )
        if found is not None:
            self._adopted("agent_user", found.object_id, found.upn)
            self._plan("agent_user", "exists", f"{found.upn} (object id {found.object_id})")
        else:
            self._plan("agent_user", "create", f"{upn} under Agent Identity {identity.app_id}")
            if not self._act:
                return None
            try:
                found = self._create_waiting(
                    "agent_user",
                    f"Agent Identity {identity.app_id}",
                    lambda: self.graph.create_agent_user(
                        upn, opts.agent_user_display_name, identity.object_id, mail_nickname=upn.split("@", 1)[0]
                    ),
                )
            except GraphRequestError as exc:
                # The lookup above is skipped for a fresh Agent Identity, so a UPN held by another device's
                # Agent User (the default name, a second Blueprint) or a person surfaces here as Graph's 400.
                if getattr(exc, "http_status", None) == 400 and "userPrincipalName" in str(getattr(exc, "message", "")):
                    raise ConfigurationError(
                        f"The UPN {upn} is already taken in tenant {opts.endpoints.tenant_id} (by a user or another "
                        f"Agent Identity's Agent User), so Agent User for {identity.app_id} cannot have it.",
                        remedy="Re-run `entraclaw setup` with --upn <another name>@"
                        f"{upn.split('@', 1)[1]}; it resumes from the journal and keeps what it made.",
                        upn=upn,
                    ) from None
                raise
            checkpoint("agent_user:sent")
            self._created("agent_user", found.object_id, found.upn)
        if self._act:
            self._record("agent_user", {"object_id": found.object_id, "upn": found.upn})
        return found

    def _consent(self, identity: AgentIdentityInfo | None, user: AgentUserInfo | None) -> None:
        scopes = self.options.scopes
        if identity is None or user is None:
            self._plan("consent", "create", f"{' '.join(scopes)} on Microsoft Graph for the Agent User")
            return
        graph_sp = self.graph.find_service_principal(GRAPH_APP_ID)
        if graph_sp is None:
            raise GraphRequestError(
                f"Tenant {self.options.endpoints.tenant_id} has no Microsoft Graph service principal.",
                remedy="An administrator must sign in to any Microsoft Graph tool once, then re-run setup.",
                http_status=None,
                code="no_graph_principal",
                request_id=None,
                url=f"{self.graph.base_url}/servicePrincipals",
            )
        existing = [] if "agent_identity" in self._fresh else self.graph.find_permission_grants(identity.object_id)
        grants = [
            g
            for g in existing
            if g.resource_id == graph_sp.object_id
            and (g.consent_type == "AllPrincipals" or (g.principal_id or "").lower() == user.object_id.lower())
        ]
        have = frozenset().union(*(g.scopes for g in grants)) if grants else frozenset()
        missing = [s for s in scopes if s not in have]
        if not missing:
            self._plan("consent", "exists", f"{' '.join(sorted(have))} on Microsoft Graph")
            return
        personal = next((g for g in grants if g.consent_type == "Principal"), None)
        if personal is not None:
            self._plan("consent", "update", f"add {' '.join(missing)} to grant {personal.grant_id}")
            if self._act:
                wanted = sorted(personal.scopes | set(missing))
                self.wait.run(
                    f"Agent User {user.object_id}",
                    lambda: self.graph.update_permission_grant(personal.grant_id, wanted),
                    step="consent",
                )
            return
        self._plan("consent", "create", f"{' '.join(scopes)} on Microsoft Graph for {user.upn}")
        if self._act:
            grant = self._create_waiting(
                "consent",
                f"Agent User {user.object_id}",
                lambda: self.graph.create_permission_grant(
                    client_id=identity.object_id,
                    resource_id=graph_sp.object_id,
                    scopes=list(scopes),
                    principal_id=user.object_id,
                ),
            )
            checkpoint("consent:sent")
            self._created("consent", grant.grant_id, f"{identity.app_id} -> Graph for {user.upn}")

    def _config(
        self,
        blueprint: BlueprintInfo | None,
        identity: AgentIdentityInfo | None,
        user: AgentUserInfo | None,
        key: DeviceKey | None,
        current: dict[str, str],
    ) -> dict[str, str]:
        if blueprint is None or identity is None or user is None or key is None:
            self._plan("config", "write", str(self.env_file))
            return {}
        ep = self.options.endpoints
        values = {
            "ENTRACLAW_TENANT_ID": ep.tenant_id,
            "ENTRACLAW_AUTHORITY_HOST": ep.authority_host,
            "ENTRACLAW_GRAPH_URL": ep.graph_url,
            "ENTRACLAW_BLUEPRINT_APP_ID": blueprint.app_id,
            "ENTRACLAW_BLUEPRINT_OBJECT_ID": blueprint.object_id,
            "ENTRACLAW_AGENT_IDENTITY_ID": identity.app_id,
            "ENTRACLAW_AGENT_USER_ID": user.object_id,
            "ENTRACLAW_AGENT_USER_UPN": user.upn,
            "ENTRACLAW_BLUEPRINT_CERT_X5T_S256": key.x5t_s256,
            "ENTRACLAW_BLUEPRINT_CERT_SHA1": key.sha1,
            "ENTRACLAW_KEY_REF": key.key_ref,
            "ENTRACLAW_KEY_PROVIDER": key.provider,
            "ENTRACLAW_SCOPES": " ".join(f"https://graph.microsoft.com/{s}" for s in self.options.scopes),
        }
        if ep.ca_bundle:
            values["ENTRACLAW_CA_BUNDLE"] = ep.ca_bundle
        if ep.proxy:
            values["ENTRACLAW_PROXY"] = ep.proxy
        if all(current.get(k) == v for k, v in values.items()):
            self._plan("config", "exists", str(self.env_file))
        else:
            self._plan("config", "write", str(self.env_file))
            if self._act:
                from entraclaw.config import load_config, save_config

                # The runtime's own validator checks every value before the one atomic write.
                save_config(load_config(values, environ={}, env_file=False), self.env_file)
        return values

    def _smoke(
        self,
        blueprint: BlueprintInfo | None,
        identity: AgentIdentityInfo | None,
        user: AgentUserInfo | None,
        key: DeviceKey | None,
    ) -> None:
        if not self.options.smoke_test:
            self._plan("smoke", "skip", "--no-smoke-test")
            return
        if not self._act or blueprint is None or identity is None or user is None or key is None:
            self._plan("smoke", "run", "Hops 1-3 and Graph /me")
            return
        result = self.wait.run(
            "the new Agent User's sign-in",
            lambda: run_chain(
                self.options.endpoints,
                blueprint_app_id=blueprint.app_id,
                agent_identity_app_id=identity.app_id,
                agent_user_id=user.object_id,
                signer=key.signer,
            ),
            step="smoke",
        )
        self._plan("smoke", "run", f"Hops 1-3 OK; /me answered {result.me_upn} ({result.me_id})")

    # --- rollback ------------------------------------------------------------------------

    def rollback(self, *, dry_run: bool = False, force: bool = False) -> list[PlanStep]:
        """Delete what a failed run of this device created (journal), newest kind first."""
        self._act = not dry_run
        self.journal.load()
        if not self.journal.data:
            self._plan("rollback", "skip", f"nothing to undo: no setup journal at {self.journal.path}")
            return self.result.plan
        planned = len(self.result.plan)
        if self.journal.data.get("status") == "complete" and not force:
            raise ConfigurationError(
                f"The setup recorded in {self.journal.path} completed; rolling it back would delete a working "
                "Agent User.",
                remedy="Pass --force with --rollback if that is what you want.",
                path=str(self.journal.path),
            )
        created = list(self.journal.data.get("created", []))
        # Remembered in the journal: a rollback killed after deleting the Blueprint must not ask the next
        # one to removeKey on an application that is gone (404).
        blueprint_deleted = any(c.get("kind") == "blueprint" for c in created) or bool(
            self.journal.data.get("blueprint_deleted")
        )
        for kind in _DELETE_ORDER:
            for item in [c for c in created if c.get("kind") == kind]:
                self._plan("rollback", f"delete {kind}", f"{item.get('name')} ({item.get('id')})")
                if self._act:
                    self.graph.delete(_COLLECTION[kind], str(item["id"]))
                    checkpoint(f"rollback:{kind}:sent")
                    created.remove(item)
                    self.journal.data["created"] = created
                    if kind == "blueprint":
                        self.journal.data["blueprint_deleted"] = True
                    self.journal.save()
        pending = self.journal.data.get("pending")
        if pending:
            self._plan(
                "rollback",
                "check",
                f"a {pending} create was sent when the run stopped; if it exists it is not in the journal — "
                "re-run `entraclaw setup` to adopt it, then --rollback",
            )
        remove_own_certificate(
            self.graph,
            self.journal.data,
            blueprint_deleted=blueprint_deleted,
            keystore=self.keystore,
            now=self.clock(),
            plan=self._plan,
            act=self._act,
        )
        recorded = self.journal.data.get("key")
        config = read_device_config(self.env_file)
        recorded_bp = self.journal.data.get("blueprint")
        bp_app_id = recorded_bp.get("app_id") if isinstance(recorded_bp, dict) else None
        configured_here = bool(bp_app_id) and config.get("ENTRACLAW_BLUEPRINT_APP_ID") == bp_app_id
        doomed: list[str] = []
        if isinstance(recorded, dict) and recorded.get("created") and recorded.get("key_ref"):
            doomed.append(str(recorded["key_ref"]))
        configured_ref = config.get("ENTRACLAW_KEY_REF")
        if force and configured_here and configured_ref and configured_ref not in doomed:
            # After a rotation (or a re-run that found the key) the journal no longer names the key in
            # use; it signs only for the Blueprint deleted above, so keeping it keeps a secret for nothing.
            doomed.append(configured_ref)
        for ref in doomed:
            in_use = config.get("ENTRACLAW_KEY_REF") == ref
            self._plan("rollback", "delete key", ref + (" (also the configured key)" if in_use else ""))
            if self._act:
                delete_device_key(ref, keystore=self.keystore)
                checkpoint("rollback:delete_key")
        if len(self.result.plan) == planned:
            self._plan("rollback", "skip", f"nothing to undo: the journal {self.journal.path} records nothing made")
        if self._act:
            if configured_here and force:
                # The config would name objects that no longer exist.
                write_device_config(self.env_file, dict.fromkeys(CONFIG_KEYS))
                checkpoint("rollback:config")
            self.journal.delete()
        return self.result.plan
