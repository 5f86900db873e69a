"""``entraclaw schedule``: a daily job that rotates the Blueprint key before it expires, with no human.

units.py writes the job definitions (systemd user timer, Task Scheduler XML, launchd plist),
install.py hands them to the OS scheduler, job.py is what runs each day (``schedule run``).
"""

from entraclaw.schedule.job import MILESTONES, admin_command, log_path, read_state, run_job
from entraclaw.schedule.units import JobSpec, job_name, launchd_plist, systemd_units, task_xml

__all__ = [
    "MILESTONES",
    "JobSpec",
    "admin_command",
    "job_name",
    "launchd_plist",
    "log_path",
    "read_state",
    "run_job",
    "systemd_units",
    "task_xml",
]
