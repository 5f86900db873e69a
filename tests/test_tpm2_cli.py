"""Issue 16's Linux TPM acceptance run: `setup --key-storage tpm` against `emulator serve` with swtpm,
then `token`, `rotate`, `doctor` ("TPM-backed") -- each a separate process, as a user runs them.

Also: `--key-storage auto` picks the TPM when one answers; with neither a TPM nor a Secret Service it
stops before any Graph write with an error naming both fixes and `--key-storage file`, and the file
option it names works and is reported by doctor as protected by file permissions only.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator_helpers import serve, stop_serve
from provisioning_helpers import HAVE_GRAPH_AGENT_API, admin_argv, run_cli, serve_env
from tpm2_helpers import Swtpm, require_tpm2

pytestmark = pytest.mark.skipif(not HAVE_GRAPH_AGENT_API, reason="the emulator's Graph Agent ID API has not landed")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, str]]:
    proc, info = serve("--state", str(tmp_path / "s.json"), expect="admin_app_id", env=serve_env())
    try:
        yield info
    finally:
        stop_serve(proc)


def _key_ref(home: Path) -> str:
    line = next(x for x in (home / ".env").read_text().splitlines() if x.startswith("ENTRACLAW_KEY_REF"))
    return line.split("=", 1)[1].strip().strip('"')


def test_setup_tpm_then_token_rotate_doctor(tmp_path: Path, served: dict[str, str]) -> None:
    require_tpm2()
    home = tmp_path / "home"
    with Swtpm(tmp_path / "tpm") as tpm:
        env = {"ENTRACLAW_HOME": str(home), **tpm.env()}
        admin = admin_argv(served)
        setup = run_cli("setup", *admin, "--sponsor", served["admin_user"], "--key-storage", "tpm", env=env)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        assert "OK: setup complete" in setup.stdout
        first = _key_ref(home)
        assert first.startswith("tpm2:") and first.endswith(".tpm2"), first
        blob = Path(first[5:]).read_bytes()
        assert b"-----BEGIN" not in blob and b"PRIVATE KEY" not in blob
        assert list((home / "keys").glob("*.pem")) == []

        token = run_cli("token", "--scope", "https://graph.microsoft.com/.default", "--json", env=env)
        assert token.returncode == 0, token.stdout + token.stderr
        assert json.loads(token.stdout)

        rotate = run_cli("rotate", *admin, "--force", env=env)
        assert rotate.returncode == 0, rotate.stdout + rotate.stderr
        assert "OK: rotated" in rotate.stdout
        second = _key_ref(home)
        assert second.startswith("tpm2:") and second != first
        assert not Path(first[5:]).exists(), "rotate left the old key file behind"

        again = run_cli("token", "--scope", "https://graph.microsoft.com/.default", "--json", env=env)
        assert again.returncode == 0, again.stdout + again.stderr

        doctor = run_cli("doctor", env=env)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "TPM-backed, non-exportable" in doctor.stdout, doctor.stdout
        assert "attested" in doctor.stdout, doctor.stdout


def test_auto_picks_the_tpm_when_one_answers(tmp_path: Path, served: dict[str, str]) -> None:
    require_tpm2()
    home = tmp_path / "home"
    with Swtpm(tmp_path / "tpm") as tpm:
        env = {"ENTRACLAW_HOME": str(home), **tpm.env()}
        setup = run_cli("setup", *admin_argv(served), "--sponsor", served["admin_user"], "--no-smoke-test", env=env)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        assert _key_ref(home).startswith("tpm2:")


def test_auto_without_tpm_or_keyring_names_both_fixes_and_the_file_option(
    tmp_path: Path, served: dict[str, str]
) -> None:
    home = tmp_path / "home"
    env = {
        "ENTRACLAW_HOME": str(home),
        "ENTRACLAW_TPM2_TCTI": f"device:{tmp_path / 'no-tpm'}",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    setup = run_cli("setup", *admin_argv(served), "--sponsor", served["admin_user"], env=env)
    assert setup.returncode != 0
    err = setup.stderr
    assert "Traceback" not in err, err
    assert "`entraclaw setup --key-storage tpm`" in err and "`tss` group" in err, err
    assert "`entraclaw setup --key-storage keystore`" in err and "Secret Service" in err, err
    assert "`entraclaw setup --key-storage file`" in err, err
    assert "[blueprint]" not in setup.stdout, "setup wrote to Graph before finding it had nowhere to keep the key"

    done = run_cli("setup", *admin_argv(served), "--sponsor", served["admin_user"], "--key-storage", "file", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    doctor = run_cli("doctor", "--no-smoke-test", env=env)
    assert "protected by file permissions only" in doctor.stdout, doctor.stdout


def test_the_cli_never_leaves_the_key_loaded_in_a_tpm_without_resource_manager(tmp_path: Path,
                                                                              served: dict[str, str]) -> None:
    """swtpm has 3 object slots and no resource manager: a process that exits holding the key
    would exhaust them after three `token` runs (TPM_RC_OBJECT_MEMORY)."""
    require_tpm2()
    home = tmp_path / "home"
    with Swtpm(tmp_path / "tpm") as tpm:
        env = {"ENTRACLAW_HOME": str(home), **tpm.env()}
        setup = run_cli("setup", *admin_argv(served), "--sponsor", served["admin_user"], "--key-storage", "tpm",
                        "--no-smoke-test", env=env)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        for _ in range(4):
            token = run_cli("token", "--scope", "https://graph.microsoft.com/.default", "--json", env=env)
            assert token.returncode == 0, token.stdout + token.stderr
        done = subprocess.run(
            ["tpm2_getcap", "handles-transient", "-T", tpm.tcti], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr


def test_a_setup_killed_after_making_the_tpm_key_adopts_it_on_the_next_run(tmp_path: Path,
                                                                          served: dict[str, str]) -> None:
    from entraclaw.platform.files import CRASH_ENV

    require_tpm2()
    home = tmp_path / "home"
    with Swtpm(tmp_path / "tpm") as tpm:
        env = {"ENTRACLAW_HOME": str(home), **tpm.env()}
        argv = ["setup", *admin_argv(served), "--sponsor", served["admin_user"], "--key-storage", "tpm",
                "--no-smoke-test"]  # fmt: skip
        crashed = run_cli(*argv, env={**env, CRASH_ENV: "key:created"})
        assert crashed.returncode in (-9, 86), crashed.stdout + crashed.stderr
        made = list((home / "keys").glob("*.tpm2"))
        assert len(made) == 1
        resumed = run_cli(*argv, env=env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "made by the interrupted run" in resumed.stdout, resumed.stdout
        assert list((home / "keys").glob("*.tpm2")) == made
        assert _key_ref(home) == f"tpm2:{made[0]}"
