"""Running a writer in a child process that the fault hook may kill between steps."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from entraclaw.platform import files


def run_writer(code: str, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented, with ``args`` as sys.argv[1:]) in a fresh interpreter.

    ``crash_at`` names the write step (entraclaw.platform.files.WRITE_STEPS) it dies at.
    """
    env = dict(os.environ)
    # Inherited from a test run that set it would kill a child that is meant to finish.
    env.pop(files.CRASH_ENV, None)
    if crash_at is not None:
        env[files.CRASH_ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True, text=True, timeout=60
    )
