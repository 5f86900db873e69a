"""``entraclaw schedule``: the generated jobs are valid for their scheduler, and the job's command
rotates against the emulator, resumes a killed rotation, and says when an admin is needed."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from capabilities import require
from cng_helpers import standin_fixture  # noqa: F401  (fixture)
from entraclaw.schedule import JobSpec, launchd_plist, systemd_units, task_xml
from entraclaw.schedule.units import TASK_NS
from provisioning_helpers import HAVE_GRAPH_AGENT_API, emulator_tenant, read_device_config, run_cli

needs_graph = pytest.mark.skipif(not HAVE_GRAPH_AGENT_API, reason="the emulator's Graph Agent ID API has not landed")


@pytest.fixture
def tenant():  # type: ignore[no-untyped-def]
    yield from emulator_tenant()


def _exec_start(service: str) -> list[str]:
    line = next(x for x in service.splitlines() if x.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart=").replace("%%", "%"))


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    require("systemd", analyze is not None, "systemd-analyze missing (apt-get install systemd)")
    spec = JobSpec(tmp_path / "state dir with 100% spaces")
    units = systemd_units(spec)
    assert set(units) == {f"{spec.name}.service", f"{spec.name}.timer"}
    assert "Persistent=true" in units[f"{spec.name}.timer"]
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [str(analyze), "verify", *(str(tmp_path / n) for n in units)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The command survives systemd's quoting: it is the argv the job runs.
    assert _exec_start(units[f"{spec.name}.service"]) == spec.argv


def test_task_xml_is_well_formed_with_the_elements_task_scheduler_requires() -> None:
    spec = JobSpec(Path("C:/Users/agent/AppData/Local/entraclaw"), python="C:/Python312/python.exe")
    xml = task_xml(spec, user_id="S-1-5-21-1-2-3-1001")
    root = ET.fromstring(xml.split("\n", 1)[1])  # the declaration says UTF-16: parse the body as text
    ns = {"t": TASK_NS}
    assert root.tag == f"{{{TASK_NS}}}Task" and root.get("version") == "1.2"
    trigger = root.find("t:Triggers/t:CalendarTrigger", ns)
    assert trigger is not None and trigger.findtext("t:ScheduleByDay/t:DaysInterval", namespaces=ns) == "1"
    assert root.findtext("t:Settings/t:StartWhenAvailable", namespaces=ns) == "true"  # a missed day runs later
    assert root.findtext("t:Settings/t:MultipleInstancesPolicy", namespaces=ns) == "IgnoreNew"
    principal = root.find("t:Principals/t:Principal", ns)
    assert principal is not None and principal.findtext("t:UserId", namespaces=ns) == "S-1-5-21-1-2-3-1001"
    assert principal.findtext("t:LogonType", namespaces=ns) == "S4U"
    exec_ = root.find("t:Actions/t:Exec", ns)
    assert exec_ is not None and exec_.findtext("t:Command", namespaces=ns) == "C:/Python312/python.exe"
    assert "schedule run --state-dir" in (exec_.findtext("t:Arguments", namespaces=ns) or "")
    assert root.find("t:Actions", ns).get("Context") == principal.get("id")  # type: ignore[union-attr]


@pytest.mark.windows
@pytest.mark.skipif(sys.platform != "win32", reason="Task Scheduler")
def test_task_xml_is_accepted_by_schtasks(tmp_path: Path) -> None:
    """The Windows test step: schtasks validates the XML against Task Scheduler's schema on /Create."""
    from entraclaw.platform import winacl

    spec = JobSpec(tmp_path, python=sys.executable)
    xml = task_xml(spec, user_id=str(winacl.current_account().sid), logon_type="InteractiveToken")
    _schtasks_accepts(xml, tmp_path / "task.xml", f"\\entraclaw-test\\{spec.name}")


def _schtasks_accepts(xml: str, path: Path, name: str) -> None:
    """Create the task from ``xml`` with schtasks (which checks it against the schema), then delete it."""
    path.write_text(xml, encoding="utf-16")
    created = subprocess.run(["schtasks", "/Create", "/TN", name, "/XML", str(path), "/F"],
                             capture_output=True, text=True, check=False)
    try:
        assert created.returncode == 0, created.stdout + created.stderr
    finally:
        subprocess.run(["schtasks", "/Delete", "/TN", name, "/F"], capture_output=True, check=False)


@pytest.mark.standin
def test_a_machine_install_task_runs_as_its_account(standin) -> None:  # type: ignore[no-untyped-def]
    """`schedule install --account` (with `setup --machine`): built-in service accounts log on as
    ServiceAccount, a gMSA as Password (no stored password), another user as S4U."""
    from entraclaw.errors import ConfigurationError
    from entraclaw.schedule.install import task_principal

    standin.add_account("S-1-5-21-7-8-9-4105", "agent-gmsa$", "CONTOSO")
    standin.add_account("S-1-5-21-7-8-9-1201", "svc-agent", "CONTOSO")
    assert task_principal("NetworkService") == ("S-1-5-20", "ServiceAccount")
    assert task_principal("LocalSystem") == ("S-1-5-18", "ServiceAccount")
    assert task_principal("CONTOSO\\agent-gmsa$") == ("S-1-5-21-7-8-9-4105", "Password")
    assert task_principal("contoso\\svc-agent") == ("S-1-5-21-7-8-9-1201", "S4U")
    assert task_principal(None) == (standin.default_user_sid(), "S4U")
    with pytest.raises(ConfigurationError) as unknown:
        task_principal("CONTOSO\\nobody")
    assert "CONTOSO\\nobody" in unknown.value.message


@pytest.mark.windows
@pytest.mark.skipif(sys.platform != "win32", reason="Task Scheduler")
def test_a_network_service_task_is_accepted_by_schtasks(tmp_path: Path) -> None:
    """The Windows test step (elevated runner): the machine install's task principal passes /Create."""
    from entraclaw.schedule.install import task_principal

    spec = JobSpec(tmp_path, python=sys.executable)
    user_id, logon_type = task_principal("NetworkService")
    xml = task_xml(spec, user_id=user_id, logon_type=logon_type)
    _schtasks_accepts(xml, tmp_path / "task.xml", f"\\entraclaw-test\\{spec.name}-ns")


def test_launchd_plist_runs_the_same_command_daily(tmp_path: Path) -> None:
    import plistlib

    spec = JobSpec(tmp_path)
    doc = plistlib.loads(launchd_plist(spec, tmp_path / "logs" / "rotate.log"))
    assert doc["ProgramArguments"] == spec.argv and "Hour" in doc["StartCalendarInterval"]


def test_install_is_idempotent_and_remove_deletes(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "ENTRACLAW_HOME": str(tmp_path / "home")}
    if sys.platform != "linux":
        pytest.skip("systemd user units")
    first = run_cli("schedule", "install", "--no-activate", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    units = sorted((tmp_path / "config" / "systemd" / "user").iterdir())
    contents = [p.read_text() for p in units]
    assert len(units) == 2
    second = run_cli("schedule", "install", "--no-activate", env=env)
    assert second.returncode == 0 and [p.read_text() for p in units] == contents
    assert "installed" in run_cli("schedule", "status", env=env).stdout
    assert run_cli("schedule", "remove", env=env).returncode == 0
    assert not any((tmp_path / "config" / "systemd" / "user").iterdir())


@needs_graph
def test_the_units_exec_start_rotates_against_the_emulator_and_logs(tenant, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    tenant.setup(home).run()
    before = read_device_config(home / ".env", environ={})["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "ENTRACLAW_HOME": str(home)}
    # Outside the window: nothing happens, one line in the log.
    spec = JobSpec(home, python=sys.executable)
    argv = _exec_start(systemd_units(spec)[f"{spec.name}.service"])
    quiet = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, **env}, check=False)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "not due" in (home / "logs" / "rotate.log").read_text()
    # Inside it (a 400-day window), the same command rotates as the Blueprint: no admin.
    spec = JobSpec(home, python=sys.executable, days=400)
    argv = _exec_start(systemd_units(spec)[f"{spec.name}.service"])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env={**os.environ, **env}, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    after = read_device_config(home / ".env", environ={})["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    assert after != before
    log = (home / "logs" / "rotate.log").read_text()
    assert f"OK: rotated {before} -> {after}" in log
    assert (home / "logs" / "rotate.log").stat().st_mode & 0o077 == 0


@needs_graph
def test_a_killed_job_resumes_on_the_next_run(tenant, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from entraclaw.platform.files import CRASH_ENV

    home = tmp_path / "home"
    tenant.setup(home).run()
    before = read_device_config(home / ".env", environ={})["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    env = {"ENTRACLAW_HOME": str(home)}
    killed = run_cli("schedule", "run", "--days", "400", env={**env, CRASH_ENV: "add_key"})
    assert killed.returncode in (-9, 86), killed.stdout + killed.stderr
    # The next day's run is outside a normal window, but the journal makes it finish the job.
    resumed = run_cli("schedule", "run", env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming" in (home / "logs" / "rotate.log").read_text()
    assert read_device_config(home / ".env", environ={})["ENTRACLAW_BLUEPRINT_CERT_SHA1"] != before
    assert not (home / "rotate-journal.json").exists()


@needs_graph
def test_a_tenant_that_refuses_self_rotation_is_reported_at_the_milestones(
    tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from entraclaw.errors import GraphRequestError
    from entraclaw.provisioning import rotate as rotate_module
    from entraclaw.schedule import read_state, run_job

    home = tmp_path / "home"
    tenant.setup(home).run()

    def refuse(self: object, *a: object, **k: object) -> None:
        raise GraphRequestError("Graph addKey refused", http_status=403, code="Authorization_RequestDenied",
                                request_id=None, url="x")

    monkeypatch.setattr(rotate_module.Rotate, "run", refuse)
    lines: list[str] = []
    import time as _time

    year = 365 * 86400
    for days_before_expiry, warned in ((31, False), (30, True), (29, False), (14, True), (7, True), (1, True)):
        lines.clear()
        now = _time.time() + year - days_before_expiry * 86400 - 3600
        code = run_job(home, days=400, clock=lambda now=now: now, echo=lines.append)
        assert code == 1
        text = "\n".join(lines)
        assert ("WARNING:" in text) is warned, (days_before_expiry, text)
        assert f"entraclaw rotate --device-code --state-dir {home}" in text
    assert read_state(home)["self_rotation_refused"]["http_status"] == 403


@needs_graph
def test_doctor_names_the_proxy_and_the_admin_command_when_self_rotation_was_refused(
    tenant, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import datetime as _dt
    import json

    from entraclaw.provisioning.doctor import run_doctor

    home = tmp_path / "home"
    tenant.setup(home).run()
    healthy = run_doctor(state_dir=home, smoke=False)
    assert any(c.name == "proxy" and "direct" in c.detail for c in healthy.checks), healthy.text()
    assert not any(c.name == "rotation" for c in healthy.checks)
    (home / "schedule-state.json").write_text(json.dumps({"self_rotation_refused": {"http_status": 403}}))
    late = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(days=365 - 10)
    report = run_doctor(state_dir=home, smoke=False, clock=late.timestamp)
    rotation = [c for c in report.checks if c.name == "rotation"]
    assert rotation and rotation[0].status == "warn", report.text()
    assert f"`entraclaw rotate --device-code --state-dir {home}`" in rotation[0].remedy
