"""The console script: --version, --help, python -m, and the thumbprint command."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from entraclaw import __version__
from entraclaw.cli import main


def test_version_via_module():
    out = subprocess.run([sys.executable, "-m", "entraclaw", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"entraclaw {__version__}"


def test_console_script_installed():
    exe = shutil.which("entraclaw")
    assert exe, "the entraclaw console script is not on PATH; install the package (pip install -e .)"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    assert "usage: entraclaw" in out.stdout
    assert "thumbprint" in out.stdout


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: entraclaw" in capsys.readouterr().out


def test_thumbprint_command(tmp_path, keypair, capsys):
    path = tmp_path / "cert.cer"
    path.write_bytes(keypair.der)
    assert main(["thumbprint", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"x5t#S256 {keypair.x5t_s256}" in out
    assert f"sha1     {keypair.sha1}" in out


def test_thumbprint_command_missing_file_is_clear(tmp_path, capsys):
    missing = tmp_path / "nope.cer"
    assert main(["thumbprint", str(missing)]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "Fix:" in err


def test_unknown_option_exits_2():
    with pytest.raises(SystemExit) as info:
        main(["--bogus"])
    assert info.value.code == 2
