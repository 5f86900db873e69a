"""What a self-contained Windows wheel must look like (issue 14): the C++ runtime a module imports is the
wheel's own copy, under a name-mangled file name delvewheel gave it, never the bare DLL name another wheel's
older copy could satisfy. Shared by tests/test_wheel_windows.py (the real _cng on Windows) and
tests/test_wheel_repair.py (a mingw-built module repaired here, the same mechanism with GCC's runtime).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def needed(module: Path) -> list[str]:
    """The DLL names ``module`` imports, as delvewheel reads them (``delvewheel needed``)."""
    out = subprocess.run(
        [sys.executable, "-m", "delvewheel", "needed", str(module)], check=True, capture_output=True, text=True
    )
    return [line.strip() for line in out.stdout.splitlines() if line.strip().lower().endswith(".dll")]


def mangled_runtime(imports: list[str], runtime: str) -> str:
    """The one mangled name of ``runtime`` (e.g. msvcp140.dll) in ``imports``; fails on the bare name."""
    stem = runtime[: -len(".dll")]
    lowered = [name.lower() for name in imports]
    assert runtime.lower() not in lowered, f"{runtime} is imported by its bare name: {imports}"
    mangled = [name for name in imports if re.fullmatch(re.escape(stem) + r"-[0-9a-f]{32}\.dll", name.lower())]
    assert len(mangled) == 1, f"no name-mangled {runtime} among {imports}"
    return mangled[0]
