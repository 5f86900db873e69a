"""The replay suite's emulator: one `entraclaw emulator serve` per session, each scenario recorded once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator_helpers import cli_env, serve, stop_serve
from entraclaw.conformance.transcript import Transcript

TRANSCRIPTS = Path(__file__).parent / "transcripts"


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    proc, info = serve("--port", "0")
    try:
        yield info
    finally:
        stop_serve(proc)


def conformance_cli(info: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``entraclaw conformance`` against the served emulator, as its admin."""
    return subprocess.run(
        [
            sys.executable, "-m", "entraclaw", "conformance",
            "--tenant", info["tenant_id"], "--authority-host", info["base_url"], "--graph-url", info["graph_url"],
            "--ca-bundle", info["ca_bundle"], "--admin-app-id", info["admin_app_id"],
            "--admin-cert", info["admin_cert"], "--admin-key", info["admin_key"], "--kind", "emulator",
            "--propagation-timeout", "20", *args,
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
    )


@pytest.fixture(scope="session")
def produced(served: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Transcript]:
    """What the emulator answers today, per scenario, through the recorder CLI (as a user would record)."""
    out: dict[str, Transcript] = {}
    folder = tmp_path_factory.mktemp("produced")
    for scenario, extra in (("full", ["--sponsor", served["admin_user"]]), ("read-only", ["--read-only"])):
        path = folder / f"{scenario}.json"
        result = conformance_cli(served, "--record", str(path), *extra)
        assert result.returncode == 0, result.stderr
        out[scenario] = Transcript.load(path)
    return out
