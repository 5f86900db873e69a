"""Install, inspect and remove the daily rotation job with the OS's own scheduler.

Linux: a systemd user timer in ``$XDG_CONFIG_HOME/systemd/user`` (enabled with ``systemctl --user``;
``loginctl enable-linger <user>`` makes it run with nobody logged in). Windows: a Task Scheduler task
made by ``schtasks /Create /XML`` from :func:`entraclaw.schedule.units.task_xml`. macOS: a launchd
agent in ``~/Library/LaunchAgents`` loaded with ``launchctl bootstrap``. Installing twice rewrites
the same files (idempotent); remove deletes them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from entraclaw.errors import ConfigurationError
from entraclaw.schedule.job import log_path
from entraclaw.schedule.units import JobSpec, launchd_plist, systemd_units, task_xml

__all__ = ["ScheduleStatus", "install", "remove", "status", "systemd_user_dir"]


@dataclass
class ScheduleStatus:
    scheduler: str
    name: str
    files: list[Path] = field(default_factory=list)
    installed: bool = False
    active: str = "unknown"
    notes: list[str] = field(default_factory=list)


def systemd_user_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def _scheduler(platform: str | None = None) -> str:
    plat = platform or sys.platform
    return "task-scheduler" if plat == "win32" else "launchd" if plat == "darwin" else "systemd"


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603 - fixed argv
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout + done.stderr).strip()


def _write(path: Path, data: bytes) -> None:
    from entraclaw.platform.files import atomic_write

    atomic_write(path, data, private=False)


def task_principal(account: str | None) -> tuple[str, str]:
    """UserId and LogonType of the daily task: this account (S4U), or the machine install's account.

    Built-in service accounts log on as ``ServiceAccount``; a gMSA (a name ending in ``$``) as
    ``Password`` with no stored password (Task Scheduler fetches it from the directory); any
    other account as ``S4U`` (no password; needs an administrator when it is not this account).
    https://learn.microsoft.com/en-us/windows/win32/taskschd/taskschedulerschema-logontype-principaltype-element
    """
    if account is None:
        from entraclaw.platform import winacl

        return str(winacl.current_account().sid), "S4U"
    from entraclaw.machine import lookup_account

    who = lookup_account(account)
    if who.kind in ("LocalSystem", "LocalService", "NetworkService"):
        return who.sid, "ServiceAccount"
    return who.sid, "Password" if who.name.endswith("$") else "S4U"


def install(
    spec: JobSpec, *, activate: bool = True, platform: str | None = None, account: str | None = None
) -> ScheduleStatus:
    which = _scheduler(platform)
    st = ScheduleStatus(which, spec.name)
    if which == "systemd":
        folder = systemd_user_dir()
        for name, text in systemd_units(spec).items():
            _write(folder / name, text.encode("utf-8"))
            st.files.append(folder / name)
        st.installed = True
        if activate:
            for argv in (["systemctl", "--user", "daemon-reload"],
                         ["systemctl", "--user", "enable", "--now", f"{spec.name}.timer"]):
                code, out = _run(argv)
                if code != 0:
                    raise ConfigurationError(
                        f"The units {spec.name}.service/.timer are written in {folder}, but `{' '.join(argv)}` "
                        f"failed ({code}): {out[:300]}",
                        remedy="Start a user manager (log in once, or `loginctl enable-linger $USER`), then run "
                        f"`systemctl --user enable --now {spec.name}.timer`; or re-run "
                        "`entraclaw schedule install --no-activate` to only write the files.",
                        path=str(folder),
                    )
            st.active = "enabled"
        else:
            st.notes.append(f"not activated: run `systemctl --user enable --now {spec.name}.timer`")
        return st
    if which == "task-scheduler":
        user_id, logon_type = task_principal(account)
        xml = task_xml(spec, user_id=user_id, logon_type=logon_type)
        path = spec.state_dir / f"{spec.name}.task.xml"
        _write(path, xml.encode("utf-16"))
        st.files.append(path)
        st.installed = True
        if activate:
            code, out = _run(["schtasks", "/Create", "/TN", f"\\entraclaw\\{spec.name}", "/XML", str(path), "/F"])
            if code != 0:
                raise ConfigurationError(
                    f"schtasks could not create the task \\entraclaw\\{spec.name} from {path} ({code}): {out[:300]}",
                    remedy="Run `entraclaw schedule install` as the account the agent runs as (an S4U task of "
                    "another account needs an administrator).",
                    path=str(path),
                )
            st.active = "enabled"
        return st
    folder = Path.home() / "Library" / "LaunchAgents"
    path = folder / f"com.entraclaw.{spec.name}.plist"
    _write(path, launchd_plist(spec, log_path(spec.state_dir)))
    st.files.append(path)
    st.installed = True
    if activate:
        _run(["launchctl", "bootout", f"gui/{os.getuid()}", str(path)])  # idempotent: replace a loaded one
        code, out = _run(["launchctl", "bootstrap", f"gui/{os.getuid()}", str(path)])
        if code != 0:
            raise ConfigurationError(
                f"launchctl could not load {path} ({code}): {out[:300]}",
                remedy="Run `entraclaw schedule install` in the agent account's login session.",
                path=str(path),
            )
        st.active = "enabled"
    return st


def status(spec: JobSpec, *, platform: str | None = None) -> ScheduleStatus:
    which = _scheduler(platform)
    st = ScheduleStatus(which, spec.name)
    if which == "systemd":
        st.files = [p for p in (systemd_user_dir() / n for n in systemd_units(spec)) if p.exists()]
        st.installed = len(st.files) == 2
        if shutil.which("systemctl"):
            code, out = _run(["systemctl", "--user", "is-enabled", f"{spec.name}.timer"])
            st.active = out.splitlines()[0] if out else ("enabled" if code == 0 else "unknown")
    elif which == "task-scheduler":
        path = spec.state_dir / f"{spec.name}.task.xml"
        st.files = [path] if path.exists() else []
        code, out = _run(["schtasks", "/Query", "/TN", f"\\entraclaw\\{spec.name}"])
        st.installed = code == 0
        st.active = "enabled" if code == 0 else "absent"
    else:
        path = Path.home() / "Library" / "LaunchAgents" / f"com.entraclaw.{spec.name}.plist"
        st.files = [path] if path.exists() else []
        st.installed = bool(st.files)
    log = log_path(spec.state_dir)
    if log.exists():
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        if lines:
            st.notes.append(f"last log line ({log}): {lines[-1]}")
    return st


def remove(spec: JobSpec, *, platform: str | None = None) -> ScheduleStatus:
    which = _scheduler(platform)
    st = status(spec, platform=platform)
    if which == "systemd":
        if shutil.which("systemctl"):
            _run(["systemctl", "--user", "disable", "--now", f"{spec.name}.timer"])
        for path in st.files:
            path.unlink(missing_ok=True)
        if shutil.which("systemctl"):
            _run(["systemctl", "--user", "daemon-reload"])
    elif which == "task-scheduler":
        _run(["schtasks", "/Delete", "/TN", f"\\entraclaw\\{spec.name}", "/F"])
        for path in st.files:
            path.unlink(missing_ok=True)
    else:
        for path in st.files:
            _run(["launchctl", "bootout", f"gui/{os.getuid()}", str(path)])
            path.unlink(missing_ok=True)
    st.installed = False
    st.active = "removed"
    return st


