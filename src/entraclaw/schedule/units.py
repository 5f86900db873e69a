"""The job definitions ``entraclaw schedule install`` writes: a systemd user timer, a Task Scheduler
task XML, a launchd agent plist. Pure text: nothing here touches the system.

Every definition runs the same command once a day, catching up after the machine was off:
``<python> -m entraclaw schedule run --state-dir <dir>`` (the job appends to its own log).
"""

from __future__ import annotations

import hashlib
import plistlib
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

__all__ = ["JobSpec", "job_name", "launchd_plist", "systemd_units", "task_xml"]

#: Task Scheduler's task namespace (MS-TSCH / "Task Scheduler Schema").
TASK_NS = "http://schemas.microsoft.com/windows/2004/02/mit/task"


def job_name(state_dir: Path) -> str:
    """One job per state directory: ``entraclaw-rotate-<8 hex of the directory>``."""
    digest = hashlib.sha256(str(Path(state_dir).absolute()).encode("utf-8")).hexdigest()[:8]
    return f"entraclaw-rotate-{digest}"


@dataclass(frozen=True)
class JobSpec:
    state_dir: Path
    python: str = sys.executable
    days: int = 30
    hour: int = 3
    minute: int = 17

    @property
    def name(self) -> str:
        return job_name(self.state_dir)

    @property
    def argv(self) -> list[str]:
        argv = [self.python, "-m", "entraclaw", "schedule", "run", "--state-dir", str(Path(self.state_dir).absolute())]
        if self.days != 30:
            argv += ["--days", str(self.days)]
        return argv


def _systemd_quote(word: str) -> str:
    # systemd.syntax: double quotes group words, backslash escapes; '%' is a specifier, so '%%'.
    text = word.replace("%", "%%")
    if any(c in text for c in ' \t"\\\'$;'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def systemd_units(spec: JobSpec) -> dict[str, str]:
    """``<name>.service`` (oneshot) and ``<name>.timer`` (daily, Persistent=true: a missed run runs at boot)."""
    what = f"entraclaw: rotate the Blueprint key of {spec.state_dir} before it expires"
    service = (
        "[Unit]\n"
        f"Description={what}\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={' '.join(_systemd_quote(w) for w in spec.argv)}\n"
        "Nice=10\n"
        "TimeoutStartSec=1h\n"
    )
    timer = (
        "[Unit]\n"
        f"Description={what} (daily)\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar=*-*-* {spec.hour:02d}:{spec.minute:02d}:00\n"
        "RandomizedDelaySec=1h\n"
        "Persistent=true\n"
        f"Unit={spec.name}.service\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return {f"{spec.name}.service": service, f"{spec.name}.timer": timer}


def _windows_args(argv: list[str]) -> str:
    # CreateProcess command-line quoting (the rules CommandLineToArgvW reverses).
    import subprocess

    return subprocess.list2cmdline(argv)


def task_xml(spec: JobSpec, *, user_id: str, logon_type: str = "S4U") -> str:
    """A Task Scheduler 1.2 task: daily, StartWhenAvailable (a missed run runs when the machine is
    back: "Task Scheduler can start the task at any time after its scheduled time has passed",
    https://learn.microsoft.com/en-us/windows/win32/taskschd/taskschedulerschema-startwhenavailable-settingstype-element),
    one instance at a time, as ``user_id`` (S4U: whether or not the account is logged on,
    no stored password; ``Password`` for a gMSA, ``InteractiveToken`` for a logged-on user)."""
    args = _windows_args(spec.argv[1:])
    return (
        '<?xml version="1.0" encoding="UTF-16"?>\n'
        f'<Task version="1.2" xmlns="{TASK_NS}">\n'
        "  <RegistrationInfo>\n"
        f"    <Description>{escape(f'entraclaw: rotate the Blueprint key of {spec.state_dir} before it expires')}"
        "</Description>\n"
        f"    <URI>\\entraclaw\\{spec.name}</URI>\n"
        "  </RegistrationInfo>\n"
        "  <Triggers>\n"
        "    <CalendarTrigger>\n"
        f"      <StartBoundary>2000-01-01T{spec.hour:02d}:{spec.minute:02d}:00</StartBoundary>\n"
        "      <Enabled>true</Enabled>\n"
        "      <RandomDelay>PT1H</RandomDelay>\n"
        "      <ScheduleByDay>\n"
        "        <DaysInterval>1</DaysInterval>\n"
        "      </ScheduleByDay>\n"
        "    </CalendarTrigger>\n"
        "  </Triggers>\n"
        "  <Principals>\n"
        '    <Principal id="Author">\n'
        f"      <UserId>{escape(user_id)}</UserId>\n"
        f"      <LogonType>{escape(logon_type)}</LogonType>\n"
        "      <RunLevel>LeastPrivilege</RunLevel>\n"
        "    </Principal>\n"
        "  </Principals>\n"
        "  <Settings>\n"
        "    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>\n"
        "    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>\n"
        "    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>\n"
        "    <StartWhenAvailable>true</StartWhenAvailable>\n"
        "    <RunOnlyIfNetworkAvailable>true</RunOnlyIfNetworkAvailable>\n"
        "    <Enabled>true</Enabled>\n"
        "    <ExecutionTimeLimit>PT1H</ExecutionTimeLimit>\n"
        "    <RestartOnFailure>\n"
        "      <Interval>PT1H</Interval>\n"
        "      <Count>3</Count>\n"
        "    </RestartOnFailure>\n"
        "  </Settings>\n"
        '  <Actions Context="Author">\n'
        "    <Exec>\n"
        f"      <Command>{escape(spec.argv[0])}</Command>\n"
        f"      <Arguments>{escape(args)}</Arguments>\n"
        "    </Exec>\n"
        "  </Actions>\n"
        "</Task>\n"
    )


def launchd_plist(spec: JobSpec, log: Path) -> bytes:
    """A launchd agent: StartCalendarInterval daily (launchd runs a missed interval on wake)."""
    document = {
        "Label": f"com.entraclaw.{spec.name}",
        "ProgramArguments": spec.argv,
        "StartCalendarInterval": {"Hour": spec.hour, "Minute": spec.minute},
        "StandardOutPath": str(log),
        "StandardErrorPath": str(log),
        "RunAtLoad": False,
        "ProcessType": "Background",
    }
    return plistlib.dumps(document)
