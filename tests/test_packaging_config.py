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


# --- issue 14: self-contained Windows wheels, the TPM job, the release workflow ---------------------------

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _yaml(path: Path) -> dict:
    try:
        from ruamel.yaml import YAML  # check-jsonschema's YAML reader, installed with it (the dev extra)
    except ImportError:
        YAML = None
    require("packaging", YAML is not None, "ruamel.yaml is not installed (pip install -e '.[dev]')")
    assert YAML is not None
    return dict(YAML(typ="safe").load(path.read_text()))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_validates_and_has_no_high_zizmor_finding(path: Path) -> None:
    exe = _tool("check-jsonschema")
    result = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    exe = _tool("zizmor")
    result = subprocess.run([exe, "--offline", "--format", "json", "--min-severity", "high", str(path)],
                            capture_output=True, text=True)
    assert json.loads(result.stdout or "[]") == [], result.stdout[:2000]
    for line in path.read_text().splitlines():
        if "uses:" in line:
            ref = line.split("@", 1)[1].split()[0]
            assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), f"{path.name}: not pinned: {line}"
        assert "secrets." not in line, f"{path.name}: no secrets/tokens in workflows: {line}"


def test_windows_wheels_are_repaired_by_delvewheel_with_name_mangling() -> None:
    require("packaging", tomllib is not None, "tomllib needs Python 3.11+")
    windows = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]["windows"]
    repair = windows["repair-wheel-command"]
    assert repair.startswith("delvewheel repair ") and "{wheel}" in repair and "{dest_dir}" in repair
    assert "--no-mangle" not in repair  # mangling (the default) is the point: msvcp140-<hash>.dll
    assert "delvewheel" in windows["before-build"] and "delvewheel" in " ".join(windows["test-requires"])
    assert windows["test-command"].startswith("delvewheel show {wheel} && pytest")
    cmake = (ROOT / "native" / "CMakeLists.txt").read_text()
    assert "target_compile_definitions(entraclaw_cng_core PUBLIC _DISABLE_CONSTEXPR_MUTEX_CONSTRUCTOR)" in cmake


def test_tpm_workflow_runs_windows_tpm_required_on_a_self_hosted_tpm_runner() -> None:
    wf = _yaml(ROOT / ".github" / "workflows" / "windows-tpm.yml")
    triggers = wf.get("on") or wf.get(True)  # YAML 1.1 reads a bare `on` as True
    assert set(triggers) == {"workflow_dispatch"}  # never a PR: no untrusted code on the owner's hardware
    (job,) = wf["jobs"].values()
    assert {"self-hosted", "Windows", "tpm"} <= set(job["runs-on"])
    test_step = next(s for s in job["steps"] if "pytest" in s.get("run", ""))
    assert set(test_step["env"]["ENTRACLAW_REQUIRE"].split(",")) == {"windows", "windows_tpm"}
    assert "windows_tpm" in test_step["run"]
    assert wf["permissions"] == {"contents": "read"}
    assert (ROOT / "docs" / "windows-tpm-runner.md").is_file()


def test_release_workflow_builds_tests_publishes_and_attaches() -> None:
    wf = _yaml(ROOT / ".github" / "workflows" / "release.yml")
    triggers = wf.get("on") or wf.get(True)
    assert triggers == {"push": {"tags": ["v*"]}}
    jobs = wf["jobs"]
    arches = {row["arch"] for row in jobs["windows"]["strategy"]["matrix"]["include"]}
    assert arches == {"AMD64", "ARM64"}
    assert any("cibuildwheel" in s.get("run", "") for s in jobs["windows"]["steps"])  # builds AND tests each
    pure = " ".join(s.get("run", "") for s in jobs["pure"]["steps"])
    assert "--wheel --sdist" in pure and "py3-none-any" in pure
    assert pure.count("pytest") == 2  # the pure wheel and an install from the sdist
    publish = jobs["publish"]
    assert set(publish["needs"]) == {"windows", "pure"}
    assert publish["permissions"] == {"id-token": "write"}  # trusted publishing, no token
    assert publish["environment"]["name"] == "pypi"
    assert any(s.get("uses", "").startswith("pypa/gh-action-pypi-publish@") for s in publish["steps"])
    assert not any("password" in (s.get("with") or {}) for s in publish["steps"])
    attach = jobs["github-release"]
    assert attach["needs"] == ["publish"] and attach["permissions"] == {"contents": "write"}
    assert "gh release upload" in " ".join(s.get("run", "") for s in attach["steps"])
    assert wf["permissions"] == {"contents": "read"}


def test_every_windows_translation_unit_gets_the_constexpr_mutex_escape_hatch(tmp_path: Path) -> None:
    # An inline std::mutex constructor compiled with and without the macro in one binary is an ODR violation (the
    # linker may keep the constexpr one), so every TU of the Windows build must see it: the core and the probes
    # here (mingw cross build, configure only), and _cng through the same PUBLIC definition on Windows.
    require("wine", shutil.which("x86_64-w64-mingw32-g++-posix") is not None, "mingw-w64 is not installed")
    cmake = shutil.which("cmake") or shutil.which("cmake", path=str(Path(sys.executable).parent))
    require("packaging", cmake is not None, "cmake is not installed")
    assert cmake is not None
    subprocess.run(
        [cmake, "-S", str(ROOT / "native" / "wine"), "-B", str(tmp_path),
         f"-DCMAKE_TOOLCHAIN_FILE={ROOT / 'cmake' / 'mingw-w64-x86_64.cmake'}", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"],
        check=True, capture_output=True,
    )
    commands = json.loads((tmp_path / "compile_commands.json").read_text())
    files = {Path(c["file"]).name for c in commands}
    assert {"cert_key.cpp", "provision.cpp", "probe.cpp", "dpapi_probe.cpp", "acl_probe.cpp"} <= files
    missing = [c["file"] for c in commands if "-D_DISABLE_CONSTEXPR_MUTEX_CONSTRUCTOR" not in c["command"]]
    assert missing == []
