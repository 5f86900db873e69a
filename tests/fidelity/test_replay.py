"""Every stored transcript, replayed against the emulator: any difference fails.

Transcripts in ``transcripts/``: ``tenant`` ones recorded on a real tenant with
``entraclaw conformance --record``, ``emulator`` ones recorded against ``serve`` (they pin
today's behaviour), ``documentation`` ones built by hand from Microsoft's documented examples
and upstream's recorded behaviour (each entry names its source; abbreviated shapes are compared
as subsets). See docs/fidelity.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator_helpers import cli_env, serve, stop_serve
from entraclaw.conformance.transcript import Entry, Transcript, compare

TRANSCRIPTS = Path(__file__).parent / "transcripts"
STORED = sorted(TRANSCRIPTS.glob("*.json"))


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



def test_the_corpus_is_not_empty() -> None:
    kinds = {Transcript.load(p).kind for p in STORED}
    assert {"emulator", "documentation"} <= kinds, kinds


@pytest.mark.parametrize("path", STORED, ids=[p.stem for p in STORED])
def test_stored_transcript_replays_without_difference(path: Path, produced: dict[str, Transcript]) -> None:
    stored = Transcript.load(path)
    assert compare(stored, produced[stored.scenario]) == []


def test_documentation_entries_name_their_source() -> None:
    for path in STORED:
        stored = Transcript.load(path)
        if stored.kind == "documentation":
            assert all(e.source for e in stored.entries), path


@pytest.mark.parametrize(
    "alter",
    [
        lambda e: {**e, "status": e["status"] + 1},
        lambda e: {**e, "error": "AADSTS1"},
        lambda e: {**e, "path": e["path"] + "/x"},
        lambda e: {**e, "shape": {**(e["shape"] or {}), "extraProperty": "str"}},
    ],
    ids=["status", "error", "path", "shape"],
)
def test_an_altered_transcript_fails_the_replay(
    alter, produced: dict[str, Transcript], tmp_path: Path
) -> None:
    original = produced["full"].to_json()
    index = next(i for i, e in enumerate(original["entries"]) if e["step"] == "blueprint.create")
    original["entries"][index] = alter(original["entries"][index])
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(original))
    differences = compare(Transcript.load(altered), produced["full"])
    assert len(differences) == 1 and differences[0].startswith("blueprint.create:"), differences


def test_compare_cli_exit_codes(served: dict[str, str], produced: dict[str, Transcript], tmp_path: Path) -> None:
    same = tmp_path / "same.json"
    produced["read-only"].save(same)
    ok = conformance_cli(served, "--read-only", "--compare", str(same))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 difference(s)" in ok.stdout
    document = json.loads(same.read_text())
    document["entries"][0]["status"] = 418
    same.write_text(json.dumps(document))
    bad = conformance_cli(served, "--read-only", "--compare", str(same))
    assert bad.returncode == 1
    assert "domains.list: status 418 != 200" in bad.stdout


def test_a_recorded_transcript_holds_no_id_name_token_or_key(
    served: dict[str, str], produced: dict[str, Transcript]
) -> None:
    text = json.dumps([[e.to_json() for e in t.entries] for t in produced.values()])
    for secret_or_id in (served["tenant_id"], served["admin_app_id"], served["admin_user"], served["admin_user_id"]):
        assert secret_or_id not in text
    assert "conformance" not in text  # the display names and UPNs the run made
    assert "eyJ" not in text  # no JWT (header or claims) in any form
    assert "MII" not in text  # no base64 DER (certificate or key)
    import re

    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text)


def test_the_full_scenario_cleans_up_after_itself(produced: dict[str, Transcript]) -> None:
    cleanup = [e for e in produced["full"].entries if e.step.startswith("cleanup.")]
    assert [e.step for e in cleanup] == [
        "cleanup.grant", "cleanup.agentUser", "cleanup.agentIdentity", "cleanup.blueprintPrincipal", "cleanup.blueprint"
    ]
    assert all(e.status == 204 for e in cleanup), [(e.step, e.status) for e in cleanup]


def test_entry_from_exchange_keeps_protocol_words_only() -> None:
    entry = Entry.from_exchange(
        "hop1",
        "post",
        "https://login.example/3f0c7f6a-55a2-4e6c-9d3a-0b8f1f0e2a11/oauth2/v2.0/token",
        form={"client_id": "abc", "grant_type": "client_credentials", "client_assertion": "eyJa.eyJb.c", "scope": "s"},
        status=400,
        body={"error": "invalid_client", "error_codes": [700023], "error_description": "AADSTS700023: ..."},
    )
    assert entry.path == "/{id}/oauth2/v2.0/token"
    assert entry.form == ["client_assertion", "client_id", "grant_type=client_credentials", "scope"]
    assert entry.error == "AADSTS700023"
    assert entry.shape == {"error": "str", "error_codes": ["int"], "error_description": "str"}
