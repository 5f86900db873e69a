"""Issue 13, item 5: errors name the real cause, tried as a new user would, through the real CLI against `serve`.

Before: a wrong tenant, a missing CA bundle, an untrusted TLS certificate and a stopped server all ended
in "Check that --admin-app-id, --admin-cert and --admin-key belong to one provisioner app";
`rotate --as-blueprint` blamed --admin-app-id, which it never takes; doctor with a wrong tenant
printed "AADSTSNone" and "register this device's certificate".
"""

from __future__ import annotations

import os
import shlex
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator_helpers import serve, stop_serve
from provisioning_helpers import run_cli

WRONG_TENANT = "11111111-2222-3333-4444-555555555555"
CREDENTIAL_BLAME = "--admin-app-id, --admin-cert and --admin-key"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    proc, info = serve()
    try:
        yield info
    finally:
        stop_serve(proc)


def _setup_argv(info: dict[str, str], home: Path, **replace: str | None) -> list[str]:
    words = shlex.split(info["setup"])[1:]  # drop "entraclaw"
    for flag, value in replace.items():
        name = "--" + flag.replace("_", "-")
        at = words.index(name)
        if value is None:
            del words[at : at + 2]
        else:
            words[at + 1] = value
    return [*words, "--key-storage", "file", "--state-dir", str(home), "--no-smoke-test"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _failed(out) -> str:  # type: ignore[no-untyped-def]
    assert out.returncode != 0, out.stdout
    text = out.stdout + out.stderr
    assert "Traceback" not in text and "AADSTSNone" not in text, text
    assert CREDENTIAL_BLAME not in text, text
    return text


def test_setup_with_a_wrong_tenant_names_the_tenant(served, tmp_path: Path) -> None:
    text = _failed(run_cli(*_setup_argv(served, tmp_path / "h", tenant=WRONG_TENANT)))
    assert WRONG_TENANT in text and "--tenant" in text


def test_setup_with_a_missing_ca_bundle_names_the_file(served, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-ca.pem")
    text = _failed(run_cli(*_setup_argv(served, tmp_path / "h", ca_bundle=missing)))
    assert missing in text and "--ca-bundle" in text


def test_setup_without_the_ca_names_ca_bundle(served, tmp_path: Path) -> None:
    text = _failed(run_cli(*_setup_argv(served, tmp_path / "h", ca_bundle=None)))
    assert "TLS" in text and "--ca-bundle" in text


def test_setup_against_a_stopped_server_says_nothing_answered(served, tmp_path: Path) -> None:
    host = f"https://127.0.0.1:{_closed_port()}"
    text = _failed(run_cli(*_setup_argv(served, tmp_path / "h", authority_host=host)))
    assert host in text and "--authority-host" in text and "entraclaw emulator serve" in text


@pytest.fixture(scope="module")
def configured(served, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("configured")
    out = run_cli(*_setup_argv(served, home))
    assert out.returncode == 0, out.stdout + out.stderr
    return home


def test_rotate_as_blueprint_never_blames_admin_flags(served, configured: Path) -> None:
    for extra in (["--tenant", WRONG_TENANT], ["--authority-host", f"https://127.0.0.1:{_closed_port()}"]):
        out = run_cli("rotate", "--as-blueprint", "--force", "--state-dir", str(configured), *extra)
        text = _failed(out)
        assert "--admin-app-id" not in text and "Blueprint" in text, text


def test_doctor_with_a_wrong_tenant_blames_the_tenant_not_the_registration(served, configured: Path) -> None:
    out = run_cli("doctor", "--state-dir", str(configured), env={"ENTRACLAW_TENANT_ID": WRONG_TENANT})
    text = _failed(out)
    assert "register this device's certificate" not in text, text
    assert WRONG_TENANT in text and "tenant" in text.lower()
    ok = run_cli("doctor", "--state-dir", str(configured), env={"PATH": os.environ["PATH"]})
    assert ok.returncode == 0, ok.stdout + ok.stderr
