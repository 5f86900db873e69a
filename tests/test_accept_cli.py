"""What a new user hit walking README -> ``emulator serve`` -> ``setup`` -> ``token`` in separate shells.

Each test is a regression for one thing found that way (subprocess CLI runs over the real emulator), seen
failing before its fix:

- ``serve --state s.json`` printed paths relative to its own directory and no setup command; its device-code
  hint named ``emulator approve CODE`` without the ``--url``/``--ca-bundle`` it requires.
- ``serve`` restarted on the same state took a new random port, stranding the device config setup wrote.
- an interrupted setup said "re-run `entraclaw setup`", which then failed with "No tenant given".
- a re-run right after an interruption, while Entra replicates, created a second Blueprint.
- Ctrl-C printed "entraclaw: interrupted" with no remedy.
- a bad ``--admin-key`` file, or an admin certificate of another tenant, was reported with keystore and
  Blueprint remedies instead of naming the admin flags.
- AADSTS700027 (key not registered) named a raw PATCH and the legacy ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT.
- a second Blueprint whose default Agent User UPN is taken got Graph's bare 400.
- ``token`` on a device never set up did not mention ``entraclaw setup``; ``token --emulator`` needed --scope.
- ``setup --rollback --force`` after a rotation left the key in use behind.
- the emulator's device-code message named a sign-in page it does not have.
- ``--json`` output of setup/rotate/doctor carried the device-code prompt.
- options without help text; ``--sponsor`` said object id only.
- a TLS failure's remedy was a Python API (emu.session()), not ENTRACLAW_CA_BUNDLE / --ca-bundle.
- ``rotate --force`` after a lost key failed at removeKey (404) although the PATCH had dropped the old one.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from emulator_helpers import serve, stop_serve
from entraclaw.platform.files import CRASH_ENV
from provisioning_helpers import HAVE_GRAPH_AGENT_API, admin_argv, run_cli, serve_env

pytestmark = [
    pytest.mark.skipif(not HAVE_GRAPH_AGENT_API, reason="the emulator's Graph Agent ID API has not landed"),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


def _serve(cwd: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    return serve(*args, env=serve_env(), cwd=cwd)


def _admin_argv(info: dict[str, str]) -> list[str]:
    return [*admin_argv(info), "--sponsor", info["admin_user"], "--key-storage", "file"]


def test_serve_prints_absolute_paths_and_a_setup_command_that_works_by_copy_paste(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    proc, info = _serve(served, "--state", "s.json")
    try:
        for key in ("ca_bundle", "admin_cert", "admin_key", "state"):
            assert Path(info[key]).is_absolute(), (key, info[key])
            assert Path(info[key]).exists(), (key, info[key])
        assert "emulator approve CODE --url " in info["admin_auth"], info["admin_auth"]
        assert "--ca-bundle " in info["admin_auth"]
        line = info["setup"]
        argv = shlex.split(line)
        assert argv[:2] == ["entraclaw", "setup"], line
        # Copied into another shell in another directory, with only a fresh state directory set.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRACLAW_")}
        env.pop("REQUESTS_CA_BUNDLE", None)
        env["ENTRACLAW_HOME"] = str(tmp_path / "home")
        done = subprocess.run(
            [sys.executable, "-m", "entraclaw", *argv[1:], "--key-storage", "file"],
            capture_output=True, text=True, env=env, cwd=elsewhere, timeout=120, check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "OK: setup complete" in done.stdout
        approve = shlex.split(info["admin_auth"].split("`")[1])
        assert approve[:3] == ["entraclaw", "emulator", "approve"], approve
    finally:
        stop_serve(proc)


def test_serve_restarted_on_its_state_keeps_its_address_so_the_device_config_keeps_working(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"))
    try:
        setup = run_cli("setup", *_admin_argv(info), env={"ENTRACLAW_HOME": str(home)})
        assert setup.returncode == 0, setup.stdout + setup.stderr
    finally:
        stop_serve(proc)
    proc, again = _serve(tmp_path, "--state", str(tmp_path / "s.json"))
    try:
        assert again["base_url"] == info["base_url"]
        token = run_cli("token", env={"ENTRACLAW_HOME": str(home)})
        assert token.returncode == 0, token.stdout + token.stderr
    finally:
        stop_serve(proc)


def test_an_interrupted_setup_resumes_with_only_the_admin_sign_in(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"))
    try:
        env = {"ENTRACLAW_HOME": str(home)}
        crashed = run_cli("setup", *_admin_argv(info), env={**env, CRASH_ENV: "agent_identity"})
        assert crashed.returncode in (-9, 86), crashed.stdout + crashed.stderr
        doctor = run_cli("doctor", env=env)
        assert "Re-run `entraclaw setup`" in doctor.stdout, doctor.stdout
        # What a user types after reading that: the same admin sign-in, none of the endpoint flags.
        admin_only = ["--admin-app-id", info["admin_app_id"], "--admin-cert", info["admin_cert"],
                      "--admin-key", info["admin_key"], "--sponsor", info["admin_user"], "--key-storage", "file"]
        resumed = run_cli("setup", *admin_only, env=env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "[blueprint] exists" in resumed.stdout
        token = run_cli("token", env=env)
        assert token.returncode == 0, token.stdout + token.stderr
    finally:
        stop_serve(proc)


def test_an_admin_key_that_is_not_a_pem_names_the_file_and_the_flag(tmp_path: Path) -> None:
    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"))
    try:
        argv = _admin_argv(info)
        argv[argv.index("--admin-key") + 1] = str(tmp_path / "s.json")
        done = run_cli("setup", *argv, env={"ENTRACLAW_HOME": str(tmp_path / "home")})
        assert done.returncode != 0
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith("entraclaw: error: ")
        assert str(tmp_path / "s.json") in done.stderr and "--admin-key" in done.stderr, done.stderr
        assert "BEGIN" not in done.stderr and "PRIVATE" not in done.stderr
        assert not (tmp_path / "home" / "setup-journal.json").exists()  # nothing written before sign-in works
    finally:
        stop_serve(proc)


def test_an_admin_certificate_of_another_tenant_is_reported_as_the_admin_sign_in_not_the_blueprint(
    tmp_path: Path,
) -> None:
    other, other_info = _serve(tmp_path / "..", "--state", str(tmp_path / "other.json"))
    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"))
    try:
        argv = _admin_argv(info)
        argv[argv.index("--admin-cert") + 1] = other_info["admin_cert"]
        argv[argv.index("--admin-key") + 1] = other_info["admin_key"]
        done = run_cli("setup", *argv, env={"ENTRACLAW_HOME": str(tmp_path / "home")})
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert done.stderr.startswith("entraclaw: error: ")
        assert f"provisioner app {info['admin_app_id']} (--admin-app-id)" in done.stderr, done.stderr
        assert "Blueprint" not in done.stderr and "ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT" not in done.stderr
    finally:
        stop_serve(proc)
        stop_serve(other)


def test_a_key_no_longer_registered_points_at_commands_and_current_variables_and_setup_repairs_it(
    tmp_path: Path,
) -> None:
    from entraclaw.provisioning.auth import ClientCertificateAuth
    from entraclaw.provisioning.context import Endpoints
    from entraclaw.provisioning.graph import GraphClient
    from entraclaw.provisioning.state import read_device_config

    home = tmp_path / "home"
    env = {"ENTRACLAW_HOME": str(home)}
    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"))
    try:
        assert run_cli("setup", *_admin_argv(info), env=env).returncode == 0
        # Someone (another admin, a portal click) drops this device's certificate from the Blueprint.
        endpoints = Endpoints(info["tenant_id"], info["authority"].rsplit("/", 1)[0], info["graph_url"],
                              info["ca_bundle"])
        auth = ClientCertificateAuth.from_files(
            authority=endpoints.authority, client_id=info["admin_app_id"], cert_path=info["admin_cert"],
            key_path=info["admin_key"], session=endpoints.session())
        graph = GraphClient(endpoints.graph_url, auth, session=endpoints.session())
        graph.patch_key_credentials(read_device_config(home / ".env")["ENTRACLAW_BLUEPRINT_OBJECT_ID"], [])
        token = run_cli("token", env=env)
        assert token.returncode != 0 and "Traceback" not in token.stderr
        assert "AADSTS700027" in token.stderr
        assert "ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT" not in token.stderr  # legacy name, not what setup writes
        assert "`entraclaw doctor`" in token.stderr and "`entraclaw setup`" in token.stderr, token.stderr
        # The command it names repairs the device.
        repaired = run_cli("setup", *_admin_argv(info), env=env)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert run_cli("token", env=env).returncode == 0
    finally:
        stop_serve(proc)


def test_a_second_blueprint_whose_default_upn_is_taken_is_told_to_pass_upn_and_resumes(tmp_path: Path) -> None:
    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"))
    try:
        first = run_cli("setup", *_admin_argv(info), env={"ENTRACLAW_HOME": str(tmp_path / "a")})
        assert first.returncode == 0, first.stdout + first.stderr
        env = {"ENTRACLAW_HOME": str(tmp_path / "b")}
        second = run_cli("setup", *_admin_argv(info), "--blueprint-name", "second", env=env)
        assert second.returncode != 0 and "Traceback" not in second.stderr
        domain = info["admin_user"].split("@", 1)[1]
        assert f"entraclaw-agent@{domain}" in second.stderr and "--upn" in second.stderr, second.stderr
        resumed = run_cli("setup", *_admin_argv(info), "--blueprint-name", "second", "--upn", f"two@{domain}", env=env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "[agent_identity] exists" in resumed.stdout  # resumed, not duplicated
        assert run_cli("token", env=env).returncode == 0
    finally:
        stop_serve(proc)


def test_a_rerun_right_after_an_interruption_waits_for_its_own_new_objects_instead_of_duplicating_them(
    tmp_path: Path,
) -> None:
    # Entra's replication lag: what the interrupted run created may not be readable yet when the user
    # re-runs at once (seen: Ctrl-C during setup, re-run, two Blueprints of the same name).
    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"), "--propagation-delay", "4")
    try:
        env = {"ENTRACLAW_HOME": str(tmp_path / "home")}
        crashed = run_cli("setup", *_admin_argv(info), env={**env, CRASH_ENV: "agent_identity"})
        assert crashed.returncode in (-9, 86), crashed.stdout + crashed.stderr
        resumed = run_cli("setup", *_admin_argv(info), env=env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "[blueprint] exists" in resumed.stdout, resumed.stdout
        assert "[blueprint_principal] exists" in resumed.stdout, resumed.stdout
    finally:
        stop_serve(proc)


def test_ctrl_c_during_setup_says_what_to_do_and_the_rerun_converges(tmp_path: Path) -> None:
    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"), "--propagation-delay", "3")
    try:
        home = tmp_path / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRACLAW_")}
        env.pop("REQUESTS_CA_BUNDLE", None)
        env["ENTRACLAW_HOME"] = str(home)
        setup = subprocess.Popen(
            [sys.executable, "-m", "entraclaw", "setup", *_admin_argv(info)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        assert setup.stdout is not None
        for line in setup.stdout:
            if "waiting for" in line:  # a user loses patience during the propagation wait
                setup.send_signal(signal.SIGINT)
                break
        _, err = setup.communicate(timeout=60)
        assert setup.returncode == 130, err
        assert "Traceback" not in err
        assert err.startswith("entraclaw: error: ") and "Fix: " in err, err
        assert "`entraclaw setup`" in err and "`entraclaw doctor`" in err, err
        again = run_cli("setup", *_admin_argv(info), env={"ENTRACLAW_HOME": str(home)})
        assert again.returncode == 0, again.stdout + again.stderr
        assert run_cli("token", env={"ENTRACLAW_HOME": str(home)}).returncode == 0
    finally:
        stop_serve(proc)


def test_token_on_a_device_never_set_up_names_setup(tmp_path: Path) -> None:
    done = run_cli("token", env={"ENTRACLAW_HOME": str(tmp_path / "empty")})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("entraclaw: error: ")
    assert "not set up" in done.stderr and "`entraclaw setup`" in done.stderr, done.stderr
    doctor = run_cli("doctor", env={"ENTRACLAW_HOME": str(tmp_path / "empty")})
    assert doctor.returncode == 1 and "`entraclaw setup`" in doctor.stdout


def test_rollback_force_after_rotate_and_rerun_deletes_the_key_in_use_too(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"ENTRACLAW_HOME": str(home)}
    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"))
    try:
        admin = _admin_argv(info)
        sign_in = admin[admin.index("--admin-app-id"):admin.index("--sponsor")]
        assert run_cli("setup", *admin, env=env).returncode == 0
        rotated = run_cli("rotate", "--force", *sign_in, env=env)
        assert rotated.returncode == 0, rotated.stdout + rotated.stderr
        assert run_cli("setup", *admin, env=env).returncode == 0
        keys = list((home / "keys").glob("*.pem"))
        assert len(keys) == 1
        gone = run_cli("setup", "--rollback", "--force", *sign_in, env=env)
        assert gone.returncode == 0, gone.stdout + gone.stderr
        assert "delete key" in gone.stdout, gone.stdout
        assert list((home / "keys").glob("*.pem")) == [], "the Blueprint is gone but its private key was left"
    finally:
        stop_serve(proc)


def test_device_code_without_auto_approve_tells_how_to_approve_and_following_it_works(tmp_path: Path) -> None:
    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRACLAW_")}
        env.pop("REQUESTS_CA_BUNDLE", None)
        env["ENTRACLAW_HOME"] = str(tmp_path / "home")
        argv = _admin_argv(info)
        del argv[argv.index("--admin-app-id"):argv.index("--sponsor")]
        setup = subprocess.Popen(
            [sys.executable, "-m", "entraclaw", "setup", *argv, "--device-code"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        assert setup.stderr is not None
        guard = threading.Timer(120, setup.kill)  # a missing prompt must fail the test, not hang it
        guard.start()
        try:
            prompt = setup.stderr.readline()  # the prompt is on stderr, so --json/pipes stay clean
        finally:
            guard.cancel()
        # The page the message names does not exist in the emulator; the message must say what does.
        assert "entraclaw emulator approve" in prompt, prompt
        command = prompt.split("`")[1]
        approve = subprocess.run(
            [sys.executable, "-m", "entraclaw", *shlex.split(command)[1:], "--ca-bundle", info["ca_bundle"]],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )
        assert approve.returncode == 0, approve.stdout + approve.stderr
        out, err = setup.communicate(timeout=120)
        assert setup.returncode == 0, out + err
        assert "OK: setup complete" in out
    finally:
        stop_serve(proc)


def test_every_option_of_every_command_says_what_it_does_in_help() -> None:
    import argparse

    from entraclaw.cli import build_parser

    undocumented: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
            elif action.option_strings and action.help in (None, "") and action.dest != "help":
                undocumented.append(f"{path} {'/'.join(action.option_strings)}")
            elif not action.option_strings and action.help in (None, ""):
                undocumented.append(f"{path} {action.dest}")

    walk(build_parser(), "entraclaw")
    assert undocumented == []


def test_setup_help_says_sponsor_takes_a_upn() -> None:
    done = run_cli("setup", "--help")
    text = " ".join(done.stdout.split())
    assert "--sponsor SPONSOR user UPN or object id" in text, text


def test_json_output_stays_json_with_a_device_code_sign_in(tmp_path: Path) -> None:
    import json

    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"), "--auto-approve")
    try:
        env = {"ENTRACLAW_HOME": str(tmp_path / "home")}
        argv = _admin_argv(info)
        del argv[argv.index("--admin-app-id"):argv.index("--sponsor")]
        for command in (["setup", *argv], ["rotate", "--force"], ["doctor"]):
            done = run_cli(*command, "--device-code", "--json", env=env)
            assert done.returncode == 0, done.stdout + done.stderr
            json.loads(done.stdout)  # a pipe into jq must not meet the sign-in prompt
            assert "devicelogin" in done.stderr  # the prompt still reaches the person at the terminal
    finally:
        stop_serve(proc)


def test_a_ca_bundle_of_another_emulator_names_the_setting_that_fixes_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    other, other_info = _serve(tmp_path / "..", "--state", str(tmp_path / "other.json"))
    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"))
    try:
        assert run_cli("setup", *_admin_argv(info), env={"ENTRACLAW_HOME": str(home)}).returncode == 0
        done = run_cli("token", env={"ENTRACLAW_HOME": str(home), "ENTRACLAW_CA_BUNDLE": other_info["ca_bundle"]})
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert "ENTRACLAW_CA_BUNDLE" in done.stderr and "--ca-bundle" in done.stderr, done.stderr
    finally:
        stop_serve(proc)
        stop_serve(other)


def test_token_emulator_as_the_readme_writes_it_needs_no_scope(tmp_path: Path) -> None:
    done = run_cli("token", "--emulator", env={"ENTRACLAW_HOME": str(tmp_path / "empty")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "aud         https://graph.microsoft.com" in done.stdout
    assert "eyJ" not in done.stdout


def test_rotate_force_after_the_key_is_lost_finishes_as_doctor_promises(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"ENTRACLAW_HOME": str(home)}
    proc, info = _serve(tmp_path, "--state", str(tmp_path / "s.json"))
    try:
        admin = _admin_argv(info)
        sign_in = admin[admin.index("--admin-app-id"):admin.index("--sponsor")]
        assert run_cli("setup", *admin, env=env).returncode == 0
        for key in (home / "keys").glob("*.pem"):
            key.unlink()  # a wiped keyring, a restored backup without the key
        doctor = run_cli("doctor", env=env)
        assert doctor.returncode == 1 and "`entraclaw rotate --force` with admin credentials" in doctor.stdout
        rotated = run_cli("rotate", "--force", *sign_in, env=env)
        assert rotated.returncode == 0, rotated.stdout + rotated.stderr
        assert not (home / "rotate-journal.json").exists()  # finished, nothing left to resume
        assert run_cli("token", env=env).returncode == 0
        assert run_cli("doctor", *sign_in, env=env).returncode == 0
    finally:
        stop_serve(proc)


def test_a_ca_bundle_that_is_not_pem_is_named_before_any_request(tmp_path: Path) -> None:
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("hello\n")
    env = {"ENTRACLAW_HOME": str(tmp_path / "empty"), "ENTRACLAW_CA_BUNDLE": str(not_pem)}
    done = run_cli("token", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"ENTRACLAW_CA_BUNDLE (process environment): the CA bundle {not_pem}" in done.stderr, done.stderr
    assert "PEM" in done.stderr.split(str(not_pem), 1)[1].split("\n", 1)[0]
