"""Packaging: the pure wheel's tag, the sdist's contents, the cibuildwheel matrix and the workflow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from capabilities import require

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "wheels.yml"
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "ENTRACLAW_BUILD_NATIVE"}


def _tool(name: str) -> str:
    exe = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    require("packaging", exe is not None, f"{name} is not installed (pip install {name})")
    assert exe is not None
    return exe


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="Windows builds the native wheel by design")
def test_linux_wheel_is_pure_and_has_no_compiled_files(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        env=CLEAN_ENV,
    )
    wheels = list(tmp_path.glob("*.whl"))
    assert [w.name for w in wheels] == ["entraclaw-0.1.0-py3-none-any.whl"]
    with zipfile.ZipFile(wheels[0]) as zf:
        names = zf.namelist()
        wheel_meta = zf.read("entraclaw-0.1.0.dist-info/WHEEL").decode()
    assert "Root-Is-Purelib: true" in wheel_meta
    assert "Tag: py3-none-any" in wheel_meta
    compiled = [n for n in names if n.endswith((".so", ".pyd", ".dll", ".dylib"))]
    assert compiled == []
    assert "entraclaw/cng.py" in names and "entraclaw/_cng.pyi" in names
    assert not any("standin" in n for n in names), "the test-only stand-in must never ship"


@pytest.mark.slow
def test_sdist_carries_native_sources(tmp_path):
    code = (
        "import sys; from scikit_build_core.build import build_sdist; "
        "print(build_sdist(sys.argv[1]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, check=True, capture_output=True, text=True, env=CLEAN_ENV
    )
    sdist = tmp_path / out.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for needed in ("CMakeLists.txt", "native/CMakeLists.txt", "native/src/sign.cpp", "native/python/cng_module.cpp",
                   "src/entraclaw/cng.py", "pyproject.toml"):
        assert needed in names, needed


def test_cibuildwheel_builds_cpython_310_to_314_for_windows_amd64_and_arm64():
    exe = _tool("cibuildwheel")
    out = subprocess.run(
        [exe, "--print-build-identifiers", "--platform", "windows"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    ids = set(out.stdout.split())
    expected = {f"cp3{minor}-win_{arch}" for minor in range(10, 15) for arch in ("amd64", "arm64")}
    assert ids == expected


def test_cibuildwheel_config_is_valid_and_tests_each_wheel():
    _tool("cibuildwheel")
    require("packaging", tomllib is not None, "tomllib needs Python 3.11+")
    import cibuildwheel
    import jsonschema

    schema = json.loads((Path(cibuildwheel.__file__).parent / "resources" / "cibuildwheel.schema.json").read_text())
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    jsonschema.validate(config, schema)
    assert "pytest" in config["test-command"]
    assert config["windows"]["test-environment"]["ENTRACLAW_REQUIRE"] == "windows"


def test_workflow_validates_against_github_schema():
    exe = _tool("check-jsonschema")
    result = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_has_no_high_severity_zizmor_finding():
    exe = _tool("zizmor")
    result = subprocess.run(
        [exe, "--offline", "--format", "json", "--min-severity", "high", str(WORKFLOW)],
        capture_output=True, text=True,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=1)[:2000]


def test_workflow_builds_both_windows_arches_sdist_and_pure_wheel():
    text = WORKFLOW.read_text()
    for needle in ("windows-latest", "windows-11-arm", "AMD64", "ARM64", "cibuildwheel", "--sdist",
                   "py3-none-any", "persist-credentials: false"):
        assert needle in text, needle
    for line in text.splitlines():
        if "uses:" in line:
            ref = line.split("@", 1)[1].split()[0]
            assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), f"action not pinned by SHA: {line}"
