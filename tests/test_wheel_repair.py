"""Issue 14: the wheel-repair mechanism, run here with GCC's runtime standing in for MSVC's.

A mingw-built module that links the C++ runtime dynamically (as _cng links msvcp140.dll) goes into a
win_amd64 wheel; `delvewheel repair` -- the repair-wheel-command cibuildwheel runs on Windows -- must vendor
the runtime into entraclaw.libs under a name-mangled file name and rewrite the module's import table to it.
The real _cng + msvcp140.dll is checked the same way on Windows (tests/test_wheel_windows.py).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from capabilities import require
from wheel_runtime import mangled_runtime, needed

MINGW = "x86_64-w64-mingw32-g++-posix"
MINGW_DLLS = [p for p in (Path("/usr/lib/gcc/x86_64-w64-mingw32"), Path("/usr/x86_64-w64-mingw32/lib")) if p.is_dir()]
SOURCE = """
#include <mutex>
#include <shared_mutex>
static std::mutex mu;
static std::shared_mutex smu;
extern "C" __declspec(dllexport) int PyInit__probe(void) {
  std::lock_guard<std::mutex> lock(mu);
  std::shared_lock<std::shared_mutex> shared(smu);
  return 0;
}
"""


def _wheel(pyd: Path, out: Path) -> Path:
    files = {
        "entraclaw/__init__.py": b"",
        "entraclaw/_probe.pyd": pyd.read_bytes(),
        "entraclaw-0.1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: entraclaw\nVersion: 0.1.0\n",
        "entraclaw-0.1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
        b"Tag: cp312-cp312-win_amd64\n",
    }
    wheel = out / "entraclaw-0.1.0-cp312-cp312-win_amd64.whl"
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append("entraclaw-0.1.0.dist-info/RECORD,,")
        zf.writestr("entraclaw-0.1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.mark.slow
def test_delvewheel_vendors_the_cpp_runtime_under_a_mangled_name(tmp_path: Path) -> None:
    require("wine", shutil.which(MINGW) is not None and bool(MINGW_DLLS), f"{MINGW} is not installed")
    require("packaging", shutil.which("delvewheel", path=str(Path(sys.executable).parent)) is not None,
            "delvewheel is not installed (pip install delvewheel)")
    pyd = tmp_path / "_probe.pyd"
    subprocess.run([MINGW, "-O2", "-shared", "-s", "-o", str(pyd), "-x", "c++", "-"], input=SOURCE.encode(),
                   check=True)
    assert "libstdc++-6.dll" in needed(pyd)  # before: the bare name, whatever copy the process has
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    wheel = _wheel(pyd, tmp_path / "in")
    search = ":".join(str(p) for d in MINGW_DLLS for p in [d, *sorted(d.glob("*-posix"))] if p.is_dir())
    subprocess.run(
        [sys.executable, "-m", "delvewheel", "repair", "--strip", "--add-path", search, "-w", str(tmp_path / "out"),
         str(wheel)],
        check=True, capture_output=True,
    )
    (repaired,) = (tmp_path / "out").glob("*.whl")
    with zipfile.ZipFile(repaired) as zf:
        zf.extractall(tmp_path / "site")
        names = zf.namelist()
    runtime = mangled_runtime(needed(tmp_path / "site" / "entraclaw" / "_probe.pyd"), "libstdc++-6.dll")
    assert f"entraclaw.libs/{runtime}" in names
    assert not any(n.lower().endswith("/libstdc++-6.dll") for n in names)
