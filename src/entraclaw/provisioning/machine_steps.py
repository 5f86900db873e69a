"""The two steps ``setup --machine`` adds after the smoke test, and the checks before any write.

``key_access``: the key's DACL becomes one grant to the service account (the
installer keeps ownership, so it can read and repair the grant, but cannot
sign). ``state_access``: the state directory and its files are given to the same
account (Windows only: elsewhere a state directory belongs to the user that made
it and a machine install is not offered). Both are idempotent: a run
interrupted between them, or re-run later, converges to the same grants.

They run after the smoke test because the smoke test signs as the installer;
after ``key_access`` only the service account can.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

from entraclaw.errors import ConfigurationError
from entraclaw.platform import paths
from entraclaw.provisioning.keys import DeviceKey, KeyStorage, require_machine_storage

__all__ = [
    "MACHINE_STEPS",
    "check_machine_install",
    "grant_machine_access",
    "keep_single_grant",
    "refuse_granted_machine_key",
    "require_explicit_state_dir",
]

MACHINE_STEPS: tuple[str, ...] = ("state_access", "key_access")


def check_machine_install(account: str, storage: KeyStorage, state_dir: Path | None) -> None:
    """Refuse a machine install that cannot work, before anything is created."""
    from entraclaw.machine import lookup_account

    require_machine_storage(storage)
    require_explicit_state_dir(state_dir)
    lookup_account(account)


def require_explicit_state_dir(state_dir: Path | None) -> None:
    """The service is pointed at the state directory: it must be chosen, not this administrator's default."""
    if state_dir is None and not os.environ.get(paths.ENV_HOME, "").strip():
        raise ConfigurationError(
            "--machine needs a state directory the service can be pointed at; the default is this "
            "administrator's own profile.",
            remedy="Pass --state-dir (e.g. `entraclaw setup --machine --account <account> --state-dir "
            "C:\\ProgramData\\entraclaw\\agent`) and start the service with ENTRACLAW_HOME set to it.",
        )


def grant_machine_access(
    account: str, key: DeviceKey | None, state_dir: Path, *, act: bool
) -> Iterator[tuple[str, str, str]]:
    """Yield ``(step, action, detail)`` for each machine step, doing it when ``act``."""
    from entraclaw.cng import CngSigner
    from entraclaw.machine import grant_state_dir, lookup_account

    who = lookup_account(account)
    signer = key.signer if key is not None else None
    if not act or not isinstance(signer, CngSigner):
        yield "state_access", "grant", f"{state_dir} to {who.describe()}"
        yield "key_access", "grant", f"the key to {who.describe()} only"
        return
    if sys.platform == "win32":
        changed = grant_state_dir(state_dir, account)
        yield "state_access", "grant", (
            f"{state_dir} ({changed} paths) to {who.describe()}; run the agent with ENTRACLAW_HOME={state_dir}"
        )
    else:
        yield "state_access", "skip", "state directory permissions are Windows DACLs; nothing to grant here"
    if signer.key_access().only(who.sid):
        yield "key_access", "exists", f"only {who.describe()} may use the key"
    else:
        signer.restrict_access(account)
        yield "key_access", "grant", f"only {who.describe()} may use the key (the installer keeps ownership)"


def refuse_granted_machine_key(ref: str, account: str | None) -> None:
    """A machine key that is in LocalMachine\\My but cannot be opened was given to its account already.

    Setup must not make a second key then (it would hold a second certificate on the
    Blueprint): it stops and says who has the key.
    """
    if account is None or not ref.startswith("cng:LocalMachine/"):
        return
    from entraclaw import cng

    sha1 = ref.partition("/")[2].upper()
    present = any(c.thumbprint.upper() == sha1 for c in cng.list_certificates("entraclaw-blueprint-", "LocalMachine"))
    if not present:
        return
    raise ConfigurationError(
        f"The machine key {sha1} (LocalMachine\\My) exists but this account cannot open it: setup already gave "
        f"it to its service account, so there is nothing left to do here.",
        remedy=f"Check it as that account: `entraclaw doctor` with ENTRACLAW_HOME set to the state directory, run as "
        f"{account}. To replace the key, run `entraclaw rotate --force` as that account.",
        thumbprint=sha1,
    )


def keep_single_grant(old_ref: str, new: DeviceKey) -> str | None:
    """Rotation of a machine key: give the new key to the one account the old key was given to.

    Returns what was done, or None when there is nothing to carry over (not a machine key, or the
    old key grants more than one account). Idempotent: a resumed rotation re-applies the same grant.
    """
    from entraclaw.cng import CngSigner
    from entraclaw.provisioning.keys import open_device_key

    if not (old_ref.startswith("cng:LocalMachine/") and isinstance(new.signer, CngSigner)):
        return None
    old = open_device_key(old_ref)  # the rotating account can open it: it is the one the key was given to
    try:
        reader = getattr(old.signer, "key_access", None)
        access = reader() if callable(reader) else None
    finally:
        old.close()
    if access is None or len(access.users) != 1 or not access.protected:
        return None
    who = access.users[0]
    if new.signer.key_access().only(who.sid):
        return f"only {who.describe()} may use the new key (as the old one)"
    new.signer.restrict_access(who.name or who.sid)
    return f"only {who.describe()} may use the new key (as the old one)"
