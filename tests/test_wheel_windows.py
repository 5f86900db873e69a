"""Issue 14, Windows only (cibuildwheel's test step): the installed _cng binds the wheel's own msvcp140."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from capabilities import require
from wheel_runtime import mangled_runtime, needed

pytestmark = pytest.mark.windows


def test_cng_module_imports_the_wheels_mangled_cpp_runtime() -> None:
    from entraclaw import _native

    require("windows", sys.platform == "win32" and _native.cng_module is not None, "needs the Windows wheel's _cng")
    module = Path(_native.cng_module.__file__)
    imports = needed(module)
    runtime = mangled_runtime(imports, "msvcp140.dll")
    libs = module.parent.parent / "entraclaw.libs"  # where delvewheel puts what it vendors
    assert (libs / runtime).is_file(), f"{runtime} is not in {libs}"
    # CPython ships vcruntime140*.dll itself; the wheel must not carry a second copy under the bare name.
    assert not (module.parent / "msvcp140.dll").exists()
