"""``entraclaw doctor``: is this device's Agent User setup healthy, and if not, what to run.

Each check ends ``ok``, ``warn``, ``fail`` (unhealthy: exit 1) or ``unknown``
(could not check, for example the token endpoint was unreachable: exit 2 when
nothing failed). Without admin credentials the registration and consent checks
are read from the smoke test (Hop 1 succeeds only with a registered key, Hop 3
only with consent); with them, from Graph directly.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from entraclaw.errors import (
    ConfigurationError,
    EntraclawError,
    GraphRequestError,
    NetworkError,
    TokenEndpointUnavailableError,
    TokenExchangeError,
)
from entraclaw.platform import paths
from entraclaw.provisioning.diagnose import aadsts_text, classify
from entraclaw.provisioning.doctor_unattended import (
    machine_key_check,
    proxy_check,
    prune_expired_check,
    self_rotation_check,
)
from entraclaw.provisioning.graph import GraphClient, KeyCredentialInfo
from entraclaw.provisioning.keys import DeviceKey, delete_device_key, local_key_refs, open_device_key
from entraclaw.provisioning.rotate import DEFAULT_DAYS_BEFORE_EXPIRY, endpoints_from_config
from entraclaw.provisioning.rotate import JOURNAL_NAME as ROTATE_JOURNAL_NAME
from entraclaw.provisioning.setup import JOURNAL_NAME as SETUP_JOURNAL_NAME
from entraclaw.provisioning.smoke import run_chain
from entraclaw.provisioning.state import optional_attr, read_device_config, resolve_state_dir

__all__ = ["Check", "DoctorReport", "run_doctor"]

Status = Literal["ok", "warn", "fail", "unknown"]
# Hop 1 answers that mean "this key is not a registered certificate of the Blueprint" (AADSTS700027:
# the assertion's key is not among the app's credentials).
_UNREGISTERED_KEY_CODES = frozenset({700027})
_MAX_SKEW = 300.0  # Entra tolerates about five minutes of clock skew on assertions
_WARN_SKEW = 60.0
_CONFIG_NEEDED = (
    "ENTRACLAW_TENANT_ID",
    "ENTRACLAW_BLUEPRINT_APP_ID",
    "ENTRACLAW_AGENT_IDENTITY_ID",
    "ENTRACLAW_AGENT_USER_ID",
    "ENTRACLAW_KEY_REF",
    "ENTRACLAW_BLUEPRINT_CERT_SHA1",
)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    remedy: str = ""


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, status: Status, detail: str, remedy: str = "") -> Check:
        check = Check(name, status, detail, remedy)
        self.checks.append(check)
        return check

    @property
    def exit_code(self) -> int:
        statuses = {c.status for c in self.checks}
        if "fail" in statuses:
            return 1
        if "unknown" in statuses:
            return 2
        return 0

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.exit_code == 0,
            "exit_code": self.exit_code,
            "checks": [asdict(c) for c in self.checks],
        }

    def text(self) -> str:
        lines = []
        for c in self.checks:
            lines.append(f"[{c.status.upper():7}] {c.name:<22} {c.detail}")
            if c.remedy and c.status != "ok":
                lines.append(f"{'':10}{'':<22} fix: {c.remedy}")
        verdict = {0: "healthy", 1: "UNHEALTHY", 2: "could not check everything"}[self.exit_code]
        lines.append(f"doctor: {verdict}")
        return "\n".join(lines)


def _clock_skew(authority: str, session: Any, clock: Callable[[], float]) -> float | None:
    url = f"{authority}/v2.0/.well-known/openid-configuration"
    sent = clock()
    response = session.get(url, timeout=15)
    received = clock()
    header = response.headers.get("Date")
    if not header:
        return None
    server = email.utils.parsedate_to_datetime(header).timestamp()
    # The Date header has one-second resolution; compare against the middle of the round trip.
    return (sent + received) / 2 - server


def _state_checks(report: DoctorReport, state_dir: Path) -> None:
    if not state_dir.is_dir():
        report.add("state directory", "fail", f"{state_dir} does not exist", "Run `entraclaw setup`.")
        return
    detail = str(state_dir)
    if sys.platform != "win32":
        loose = []
        for path in (state_dir, paths.env_file_path(state_dir)):
            if path.exists():
                mode = stat.S_IMODE(path.stat().st_mode)
                if mode & 0o077:
                    loose.append(f"{path} is {oct(mode)}")
        if loose:
            report.add(
                "state directory", "warn", "; ".join(loose), f"chmod go-rwx the listed paths (state dir {state_dir})."
            )
        else:
            report.add("state directory", "ok", f"{detail} (owner-only)")
    else:
        report.add("state directory", "ok", detail)
    current_account = optional_attr("entraclaw.platform.winacl", "current_account")
    if current_account is not None and sys.platform == "win32":
        try:
            account = current_account()
        except EntraclawError as exc:
            report.add("account", "unknown", exc.message)
        else:
            kind = getattr(account, "kind", "user")
            text = f"{getattr(account, 'name', None) or getattr(account, 'sid', '?')} ({kind})"
            if kind != "user":
                text += f"; state resolves to that account's profile: {state_dir}"
            report.add("account", "ok", text)
    for path, command in (
        (state_dir / SETUP_JOURNAL_NAME, "entraclaw setup"),
        (state_dir / ROTATE_JOURNAL_NAME, "entraclaw rotate"),
    ):
        if path.exists():
            if command == "entraclaw setup" and '"status": "complete"' in path.read_text(encoding="utf-8"):
                continue
            report.add(
                "unfinished run",
                "warn",
                f"{path} records a run that stopped before its last step",
                f"Re-run `{command}` with an admin sign-in (--admin-app-id with --admin-cert/--admin-key, "
                "--device-code or --azure-cli); it resumes from the journal"
                + (
                    " (or undo it with `entraclaw setup --rollback` and the same sign-in)."
                    if command == "entraclaw setup"
                    else "."
                ),
            )


def run_doctor(
    *,
    state_dir: Path | None = None,
    admin_graph: GraphClient | None = None,
    clean_stale: bool = False,
    prune_expired: bool = False,
    smoke: bool = True,
    keystore: object | None = None,
    clock: Callable[[], float] = time.time,
    days_warn: int = DEFAULT_DAYS_BEFORE_EXPIRY,
) -> DoctorReport:
    report = DoctorReport()
    home = resolve_state_dir(state_dir)
    env_file = paths.env_file_path(home)
    _state_checks(report, home)
    config = read_device_config(env_file)
    missing = [k for k in _CONFIG_NEEDED if not config.get(k)]
    if missing:
        report.add(
            "config",
            "fail",
            f"{env_file} (and the environment) lack {', '.join(missing)}",
            "Run `entraclaw setup` on this device.",
        )
        return report
    from entraclaw.config import load_config

    try:
        load_config(env_file=env_file)
    except ConfigurationError as exc:
        # The runtime loads the same file through the same validator: a value it refuses is unhealthy.
        report.add("config", "fail", exc.message, exc.remedy)
    else:
        report.add("config", "ok", f"{env_file}: Blueprint {config['ENTRACLAW_BLUEPRINT_APP_ID']}")
    endpoints = endpoints_from_config(config)
    proxy_check(report, endpoints.authority_host, endpoints.proxy)

    key: DeviceKey | None = None
    try:
        key = open_device_key(config["ENTRACLAW_KEY_REF"], keystore=keystore)
    except EntraclawError as exc:
        report.add("key", "fail", f"{config['ENTRACLAW_KEY_REF']}: {exc.message}", exc.remedy)
    try:
        registered: set[str] | None = None
        if key is not None:
            _key_checks(report, key, config, clock, days_warn)
            machine_key_check(report, key)
            _attestation_check(report, key)
            self_rotation_check(report, home, key.certificate.not_valid_after_utc, clock)
        if admin_graph is not None:
            listed = _registration_check(report, admin_graph, config, key)
            if listed is not None:
                registered = {c.sha1 for c in listed if c.sha1}
                prune_expired_check(report, admin_graph, config, key, listed, now=clock(), act=prune_expired)
        _clock_check(report, endpoints, clock)
        _stale_check(report, config, home, registered, clean=clean_stale, keystore=keystore, clock=clock)
        if smoke and key is not None:
            _smoke_check(report, endpoints, config, key, registered is None)
    finally:
        if key is not None:
            key.close()
    return report


def _attestation_check(report: DoctorReport, key: DeviceKey) -> None:
    """The tpm stream's one-line attestation verdict for a CNG key (TPM or software KSP)."""
    summary = optional_attr("entraclaw.attestation", "attestation_summary")
    info = getattr(key.signer, "info", None)
    if summary is None or not callable(info):
        return  # a PEM key has nothing a TPM could attest
    try:
        details = info()
        line = str(summary(details))
    except EntraclawError as exc:
        report.add("attestation", "unknown", exc.message, exc.remedy)
        return
    if key.key_ref.startswith("tpm2:") and details.attestation.signature_verified and details.attestation.problems:
        # Linux: verified under this TPM's own AK; say what a relying party still has to establish.
        line += f" by this TPM's AK ({'; '.join(details.attestation.problems)})"
    report.add("attestation", "ok" if "not TPM-backed" not in line else "warn", line)


def _key_checks(
    report: DoctorReport, key: DeviceKey, config: dict[str, str], clock: Callable[[], float], days_warn: int
) -> None:
    report.add("key", "ok", f"{key.key_ref} present")
    configured = config.get("ENTRACLAW_KEY_PROVIDER")
    exportable = None
    info = getattr(key.signer, "info", None)
    linux_tpm = key.key_ref.startswith("tpm2:")
    if callable(info) and not linux_tpm:
        try:
            exportable = bool(info().exportable)
        except EntraclawError:
            exportable = None
    if linux_tpm:
        report.add(
            "key provider",
            "ok",
            f"TPM-backed, non-exportable (Linux TPM 2.0 at {getattr(key.signer, 'tcti', '?')}; the key file "
            "holds only TPM-wrapped blobs)",
        )
    elif key.provider == "tpm" and exportable is False:
        report.add("key provider", "ok", "TPM (Microsoft Platform Crypto Provider), non-exportable")
    elif key.provider == "software_ksp":
        report.add(
            "key provider",
            "warn" if exportable is False else "fail",
            "software KSP, " + ("non-exportable" if exportable is False else "EXPORTABLE"),
            "The TPM was unavailable at setup; `entraclaw rotate --force` after enabling it moves the key there.",
        )
    elif key.provider == "pem":
        if key.key_ref.startswith("file:"):
            report.add("key provider", "ok", "PEM file, protected by file permissions only (software key)")
        else:
            report.add("key provider", "ok", "PEM in keystore (software key; the store protects it)")
    else:
        report.add("key provider", "fail" if exportable else "ok", f"{key.provider}, exportable={exportable}")
    if configured and configured != key.provider:
        report.add(
            "key provider",
            "warn",
            f"config says {configured}, the key is {key.provider}",
            "Re-run `entraclaw setup`, which rewrites the config.",
        )
    now = _dt.datetime.fromtimestamp(clock(), _dt.timezone.utc)
    cert = key.certificate
    days = (cert.not_valid_after_utc - now).days
    if now < cert.not_valid_before_utc or now > cert.not_valid_after_utc:
        report.add(
            "certificate",
            "fail",
            f"{key.sha1} valid {cert.not_valid_before_utc:%Y-%m-%d}..{cert.not_valid_after_utc:%Y-%m-%d}: not now",
            "Run `entraclaw rotate --force` with admin credentials (an expired key cannot prove itself).",
        )
    elif days <= days_warn:
        report.add("certificate", "warn", f"{key.sha1} expires in {days} days", "Run `entraclaw rotate`.")
    else:
        report.add("certificate", "ok", f"{key.sha1} valid until {cert.not_valid_after_utc:%Y-%m-%d} ({days} days)")
    if config.get("ENTRACLAW_BLUEPRINT_CERT_SHA1", "").upper() != key.sha1 or (
        config.get("ENTRACLAW_BLUEPRINT_CERT_X5T_S256") not in (None, "", key.x5t_s256)
    ):
        report.add(
            "thumbprint",
            "fail",
            f"config names {config.get('ENTRACLAW_BLUEPRINT_CERT_SHA1')}, the key's certificate is {key.sha1}",
            "Re-run `entraclaw rotate` (it finishes an interrupted rotation) or `entraclaw setup`.",
        )
    else:
        report.add("thumbprint", "ok", f"config and key agree ({key.x5t_s256})")


def _registration_check(
    report: DoctorReport, graph: GraphClient, config: dict[str, str], key: DeviceKey | None
) -> list[KeyCredentialInfo] | None:
    """The Blueprint's certificate list (None when it could not be read), and whether this key is on it."""
    object_id = config.get("ENTRACLAW_BLUEPRINT_OBJECT_ID")
    if not object_id:
        report.add(
            "registered", "unknown", "ENTRACLAW_BLUEPRINT_OBJECT_ID is not in the config", "Re-run `entraclaw setup`."
        )
        return None
    try:
        creds = graph.key_credentials(object_id)
    except GraphRequestError as exc:
        report.add("registered", "unknown", exc.message, exc.remedy)
        return None
    registered = {c.sha1 for c in creds if c.sha1}
    if key is not None:
        if key.sha1 in registered:
            report.add("registered", "ok", f"{key.sha1} is one of {len(creds)} certificate(s) on the Blueprint")
        else:
            report.add(
                "registered",
                "fail",
                f"{key.sha1} is not on Blueprint {config['ENTRACLAW_BLUEPRINT_APP_ID']} ({len(creds)} others)",
                "Run `entraclaw setup` with admin credentials to register it.",
            )
    return list(creds)


def _clock_check(report: DoctorReport, endpoints: Any, clock: Callable[[], float]) -> None:
    try:
        skew = _clock_skew(endpoints.authority, endpoints.session(), clock)
    except Exception as exc:  # network of any kind: this check could not run
        report.add(
            "clock skew",
            "unknown",
            f"{endpoints.authority} unreachable ({type(exc).__name__})",
            "Check network access to the authority host.",
        )
        return
    if skew is None:
        report.add("clock skew", "unknown", "the token endpoint sent no Date header")
    elif abs(skew) > _MAX_SKEW:
        report.add(
            "clock skew",
            "fail",
            f"this clock is {skew:+.0f}s off the token endpoint's",
            "Synchronise the system clock (w32tm /resync, timedatectl set-ntp true).",
        )
    elif abs(skew) > _WARN_SKEW:
        report.add("clock skew", "warn", f"{skew:+.0f}s against the token endpoint", "Synchronise the system clock.")
    else:
        report.add("clock skew", "ok", f"{skew:+.1f}s against the token endpoint")


def _stale_check(
    report: DoctorReport,
    config: dict[str, str],
    home: Path,
    registered: set[str] | None,
    *,
    clean: bool,
    keystore: object | None,
    clock: Callable[[], float],
) -> None:
    configured = config["ENTRACLAW_KEY_REF"]
    rotating = ""
    journal = home / ROTATE_JOURNAL_NAME
    if journal.exists():
        rotating = journal.read_text(encoding="utf-8")
    now = _dt.datetime.fromtimestamp(clock(), _dt.timezone.utc)
    stale: list[tuple[str, str]] = []
    for ref in local_key_refs(config["ENTRACLAW_BLUEPRINT_APP_ID"], state_dir=home):
        if ref == configured or ref in rotating:
            continue  # in use, or part of an unfinished rotation
        try:
            key = open_device_key(ref, keystore=keystore)
        except EntraclawError:
            stale.append((ref, "unreadable"))
            continue
        try:
            if registered is not None and key.sha1 not in registered:
                stale.append((ref, "not registered"))
            elif key.certificate.not_valid_after_utc < now:
                stale.append((ref, "expired"))
            elif registered is None:
                stale.append((ref, "unused (registration unknown without admin credentials; kept)"))
        finally:
            key.close()
    removable = [(r, why) for r, why in stale if not why.startswith("unused")]
    if not stale:
        report.add("stale certificates", "ok", "none")
        return
    listing = "; ".join(f"{r} ({why})" for r, why in stale)
    if clean and removable:
        for ref, _why in removable:
            delete_device_key(ref, keystore=keystore)
        report.add("stale certificates", "ok", f"removed {len(removable)}: {listing}")
    else:
        report.add(
            "stale certificates",
            "warn",
            listing,
            "`entraclaw doctor --clean-stale` removes those not registered (give admin credentials to tell).",
        )


def _smoke_check(
    report: DoctorReport, endpoints: Any, config: dict[str, str], key: DeviceKey, infer_registration: bool
) -> None:
    try:
        result = run_chain(
            endpoints,
            blueprint_app_id=config["ENTRACLAW_BLUEPRINT_APP_ID"],
            agent_identity_app_id=config["ENTRACLAW_AGENT_IDENTITY_ID"],
            agent_user_id=config["ENTRACLAW_AGENT_USER_ID"],
            signer=key.signer,
        )
    except (NetworkError, TokenEndpointUnavailableError) as exc:
        report.add("hops 1-3 + /me", "unknown", exc.message, exc.remedy)
        return
    except EntraclawError as exc:
        hop = getattr(exc, "hop", None)
        code = getattr(exc, "aadsts_code", None)
        cause = classify(exc) if isinstance(exc, TokenExchangeError) else "credential"
        if cause == "tenant":
            # Discovery refused: nothing was said about the key yet (issue 13: no "register" advice here).
            report.add("tenant", "fail", f"the authority does not know tenant {endpoints.tenant_id}",
                       "Check ENTRACLAW_TENANT_ID (environment or .env) and ENTRACLAW_AUTHORITY_HOST; "
                       "`entraclaw setup` writes them.")
        elif infer_registration and hop == 1 and cause == "credential" and code in _UNREGISTERED_KEY_CODES:
            report.add("registered", "fail", f"Hop 1 refused the key {key.sha1} ({aadsts_text(exc)})",
                       "Run `entraclaw setup` with admin credentials to register this device's certificate.")
        if hop == 3 and code == 65001:
            report.add(
                "consent",
                "fail",
                "the Agent User has not consented to the scope (AADSTS65001)",
                "Run `entraclaw setup` with admin credentials; it grants consent.",
            )
        report.add("hops 1-3 + /me", "fail", exc.message, exc.remedy)
        return
    if infer_registration:
        report.add("registered", "ok", f"Hop 1 accepted {key.sha1}")
    report.add("consent", "ok", f"T3 scopes: {' '.join(result.t3_scopes) or '-'}")
    report.add("hops 1-3 + /me", "ok", f"/me answered {result.me_upn} ({result.me_id})")
