"""The PowerShell wrappers parsed by Windows PowerShell itself. Skipped elsewhere; required in cibuildwheel.

Linux has no PowerShell here, so tests/test_provisioning_units.py checks the wrappers only as text;
on the Windows runners the real parser reads every script, so a syntax error cannot ship.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capabilities import require

pytestmark = pytest.mark.windows

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
WRAPPERS = ("setup-windows.ps1", "deploy-windows.ps1", "entraclaw-venv.ps1")

# ParseFile reports every syntax error without running a line of the script.
_PARSE = (
    "$errs = $null; $tokens = $null; "
    "[void][System.Management.Automation.Language.Parser]::ParseFile($env:ENTRACLAW_PS1, [ref]$tokens, [ref]$errs); "
    "ConvertTo-Json -Compress @($errs | ForEach-Object { $_.Message + ' (line ' + $_.Extent.StartLineNumber + ')' })"
)


@pytest.mark.parametrize("script", WRAPPERS)
def test_wrapper_parses_in_windows_powershell(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    powershell = shutil.which("powershell") or shutil.which("pwsh")
    require("windows", sys.platform == "win32" and powershell is not None, "needs Windows PowerShell")
    assert powershell is not None
    monkeypatch.setenv("ENTRACLAW_PS1", str(SCRIPTS / script))
    done = subprocess.run(
        [powershell, "-NoProfile", "-NonInteractive", "-Command", _PARSE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    errors = json.loads(done.stdout.strip() or "[]")
    assert errors in ([], None), f"{script}: {errors}"
