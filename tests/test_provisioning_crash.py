"""Kill ``entraclaw setup`` and ``entraclaw rotate`` at every step; the next run converges.

Each run is a real process (``python -m entraclaw``) against the in-process
emulator over HTTPS. ``ENTRACLAW_TEST_CRASH_AT=<step>`` kills the process
(SIGKILL) at that point: after the step's work, before anything else runs,
with no cleanup; ``<step>:sent`` points kill it right after Graph answered a
create and before the journal knew (the adopt-by-name path).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from entraclaw.provisioning.rotate import ROTATE_STEPS
from entraclaw.provisioning.setup import SETUP_STEPS
from entraclaw.provisioning.state import CRASH_ENV, CRASH_RETURN_CODES, read_device_config
from provisioning_helpers import Tenant, chain_from_config, directory_counts, emulator_tenant, run_cli


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    yield from emulator_tenant()

SETUP_KILL_POINTS = (
    *SETUP_STEPS,
    "blueprint:sent",
    "blueprint_principal:sent",
    "key:created",
    "certificate:sent",
    "agent_identity:sent",
    "agent_user:sent",
    "consent:sent",
)
ONE_OF_EACH = {"blueprints": 1, "principals": 1, "agent_identities": 1, "agent_users": 1, "grants": 1}


def _setup_argv(tenant: Tenant, home: Path) -> list[str]:
    return [
        "setup",
        *tenant.cli_args(home),
        "--key-storage", "file",
        "--sponsor", tenant.admin.user_upn,
        "--propagation-timeout", "20",
    ]


@pytest.mark.parametrize("point", SETUP_KILL_POINTS)
def test_setup_killed_at_each_step_converges_without_duplicates(tenant: Tenant, tmp_path: Path, point: str) -> None:
    home = tmp_path / "device"
    crashed = run_cli(*_setup_argv(tenant, home), env={CRASH_ENV: point})
    assert crashed.returncode in CRASH_RETURN_CODES, crashed.stderr
    counts = directory_counts(tenant.emu)
    assert all(n <= 1 for n in counts.values()), counts
    finished = run_cli(*_setup_argv(tenant, home))
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert directory_counts(tenant.emu) == ONE_OF_EACH
    config = read_device_config(home / ".env", environ={})
    assert chain_from_config(home).me_id == config["ENTRACLAW_AGENT_USER_ID"]
    # Exactly this device's certificate is registered, and only its key file is on disk.
    creds = tenant.graph().key_credentials(config["ENTRACLAW_BLUEPRINT_OBJECT_ID"])
    assert [c.sha1 for c in creds] == [config["ENTRACLAW_BLUEPRINT_CERT_SHA1"]]
    assert [p.name for p in (home / "keys").glob("*.pem")] == [
        Path(config["ENTRACLAW_KEY_REF"].removeprefix("file:")).name
    ]
    again = run_cli(*_setup_argv(tenant, home), "--json")
    assert again.returncode == 0, again.stderr
    assert '"graph_writes": 0' in again.stdout


def test_rollback_after_a_crash_deletes_what_was_created(tenant: Tenant, tmp_path: Path) -> None:
    home = tmp_path / "device"
    crashed = run_cli(*_setup_argv(tenant, home), env={CRASH_ENV: "agent_user:sent"})
    assert crashed.returncode in CRASH_RETURN_CODES
    listed = run_cli("setup", *tenant.cli_args(home), "--rollback", "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert "would delete blueprint" in listed.stdout
    assert "would delete agent_identity" in listed.stdout
    done = run_cli("setup", *tenant.cli_args(home), "--rollback")
    assert done.returncode == 0, done.stderr
    counts = directory_counts(tenant.emu)
    assert counts["blueprints"] == 0 and counts["agent_identities"] == 0 and counts["principals"] == 0


ROTATE_KILL_POINTS = (*ROTATE_STEPS, "new_key:created", "add_key:sent", "remove_key:sent")


@pytest.mark.parametrize("point", ROTATE_KILL_POINTS)
def test_rotate_killed_at_each_step_never_loses_authentication(tenant: Tenant, tmp_path: Path, point: str) -> None:
    home = tmp_path / "device"
    tenant.setup(home).run()
    before = read_device_config(home / ".env", environ={})
    argv = ["rotate", *tenant.cli_args(home), "--force", "--propagation-timeout", "20"]
    crashed = run_cli(*argv, env={CRASH_ENV: point})
    assert crashed.returncode in CRASH_RETURN_CODES, crashed.stdout + crashed.stderr
    # Whatever the config names right now authenticates.
    assert chain_from_config(home).me_id == before["ENTRACLAW_AGENT_USER_ID"]
    finished = run_cli("rotate", *tenant.cli_args(home), "--propagation-timeout", "20")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    after = read_device_config(home / ".env", environ={})
    assert after["ENTRACLAW_BLUEPRINT_CERT_SHA1"] != before["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    assert chain_from_config(home).me_id == before["ENTRACLAW_AGENT_USER_ID"]
    creds = tenant.graph().key_credentials(after["ENTRACLAW_BLUEPRINT_OBJECT_ID"])
    assert [c.sha1 for c in creds] == [after["ENTRACLAW_BLUEPRINT_CERT_SHA1"]]
    assert not (home / "rotate-journal.json").exists()
    key_files = sorted(p.name for p in (home / "keys").glob("*.pem"))
    assert key_files == [Path(after["ENTRACLAW_KEY_REF"].removeprefix("file:")).name]


@pytest.mark.parametrize("point", ["add_key:sent", "prove", "switch_config", "remove_key:sent"])
def test_rotate_as_the_blueprint_killed_converges(tenant: Tenant, tmp_path: Path, point: str) -> None:
    home = tmp_path / "device"
    tenant.setup(home).run()
    argv = ["rotate", "--state-dir", str(home), "--as-blueprint", "--force", "--propagation-timeout", "20"]
    crashed = run_cli(*argv, env={CRASH_ENV: point})
    assert crashed.returncode in CRASH_RETURN_CODES, crashed.stdout + crashed.stderr
    assert chain_from_config(home).me_id
    finished = run_cli(*argv[:-3])
    assert finished.returncode == 0, finished.stdout + finished.stderr
    after = read_device_config(home / ".env", environ={})
    creds = tenant.graph().key_credentials(after["ENTRACLAW_BLUEPRINT_OBJECT_ID"])
    assert [c.sha1 for c in creds] == [after["ENTRACLAW_BLUEPRINT_CERT_SHA1"]]
    assert chain_from_config(home).me_id == after["ENTRACLAW_AGENT_USER_ID"]


@pytest.mark.parametrize(
    "point",
    ["rollback:consent:sent", "rollback:agent_user:sent", "rollback:agent_identity:sent",
     "rollback:blueprint_principal:sent", "rollback:blueprint:sent", "rollback:delete_key", "rollback:config"],
)
def test_rollback_killed_at_each_step_converges(tenant: Tenant, tmp_path: Path, point: str) -> None:
    """`setup --rollback --force` of a device that made everything, killed after each delete: the next
    rollback finishes, nothing is left, and the journal is gone."""
    home = tmp_path / "device"
    assert run_cli(*_setup_argv(tenant, home)).returncode == 0
    argv = ["setup", *tenant.cli_args(home), "--rollback", "--force"]
    crashed = run_cli(*argv, env={CRASH_ENV: point})
    assert crashed.returncode in CRASH_RETURN_CODES, crashed.stdout + crashed.stderr
    finished = run_cli(*argv)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert all(n == 0 for n in directory_counts(tenant.emu).values()), directory_counts(tenant.emu)
    assert list((home / "keys").glob("*.pem")) == []
    assert not (home / "setup-journal.json").exists() or "nothing to undo" in finished.stdout


@pytest.mark.parametrize("point", ["rollback:remove_key:sent", "rollback:delete_key"])
def test_rollback_of_a_second_device_killed_converges(tenant: Tenant, tmp_path: Path, point: str) -> None:
    """The second device of a Blueprint rolls back: removeKey of its own certificate (proof by its own
    key), then its key. Killed after either, the next rollback ends with the first device untouched."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_cli(*_setup_argv(tenant, one)).returncode == 0
    assert run_cli(*_setup_argv(tenant, two), "--patch-key-credentials").returncode == 0
    first = read_device_config(one / ".env", environ={})
    bp = first["ENTRACLAW_BLUEPRINT_OBJECT_ID"]
    assert len(tenant.graph().key_credentials(bp)) == 2
    argv = ["setup", *tenant.cli_args(two), "--rollback", "--force"]
    crashed = run_cli(*argv, env={CRASH_ENV: point})
    assert crashed.returncode in CRASH_RETURN_CODES, crashed.stdout + crashed.stderr
    finished = run_cli(*argv)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert [c.sha1 for c in tenant.graph().key_credentials(bp)] == [first["ENTRACLAW_BLUEPRINT_CERT_SHA1"]]
    assert list((two / "keys").glob("*.pem")) == []
    assert chain_from_config(one).me_id == first["ENTRACLAW_AGENT_USER_ID"]


@pytest.mark.parametrize("point", ["key:created", "certificate:sent", "certificate", "config"])
def test_a_second_device_killed_while_joining_converges(tenant: Tenant, tmp_path: Path, point: str) -> None:
    """The fleet write path (PATCH keeping the other devices' certificates, read back): a second device
    killed while joining ends, on its next run, with both certificates on the Blueprint and both
    devices signing in; no duplicate objects, no extra certificate."""
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_cli(*_setup_argv(tenant, one)).returncode == 0
    argv = [*_setup_argv(tenant, two), "--patch-key-credentials"]
    crashed = run_cli(*argv, env={CRASH_ENV: point})
    assert crashed.returncode in CRASH_RETURN_CODES, crashed.stdout + crashed.stderr
    finished = run_cli(*argv)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert directory_counts(tenant.emu) == ONE_OF_EACH
    first = read_device_config(one / ".env", environ={})
    second = read_device_config(two / ".env", environ={})
    creds = tenant.graph().key_credentials(first["ENTRACLAW_BLUEPRINT_OBJECT_ID"])
    assert sorted(c.sha1 for c in creds) == sorted(
        [first["ENTRACLAW_BLUEPRINT_CERT_SHA1"], second["ENTRACLAW_BLUEPRINT_CERT_SHA1"]]
    )
    assert chain_from_config(one).me_id == chain_from_config(two).me_id == first["ENTRACLAW_AGENT_USER_ID"]


def test_doctor_prune_expired_killed_after_its_patch_converges(tenant: Tenant, tmp_path: Path) -> None:
    """`doctor --prune-expired` writes the Blueprint's certificate list: killed right after its PATCH, the
    next run finds nothing left to prune and every valid certificate still there."""
    import datetime as _dt

    from emulator_helpers import make_cert

    home = tmp_path / "device"
    assert run_cli(*_setup_argv(tenant, home)).returncode == 0
    config = read_device_config(home / ".env", environ={})
    object_id = config["ENTRACLAW_BLUEPRINT_OBJECT_ID"]
    app = tenant.emu.tenant.application_by_object_id(object_id)
    assert app is not None
    old = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=60)
    retired = [make_cert(i, cn="retired", days=30, not_before=old).cert for i in range(2)]
    tenant.emu.tenant.set_key_credentials(object_id, [*app.key_credentials, *retired])
    argv = ["doctor", *tenant.cli_args(home), "--prune-expired", "--no-smoke-test"]
    crashed = run_cli(*argv, env={CRASH_ENV: "prune:sent"})
    assert crashed.returncode in CRASH_RETURN_CODES, crashed.stdout + crashed.stderr
    finished = run_cli(*argv)
    assert "none of the 1 on the Blueprint" in finished.stdout, finished.stdout + finished.stderr
    creds = tenant.graph().key_credentials(object_id)
    assert [c.sha1 for c in creds] == [config["ENTRACLAW_BLUEPRINT_CERT_SHA1"]]
    assert chain_from_config(home).me_id == config["ENTRACLAW_AGENT_USER_ID"]
