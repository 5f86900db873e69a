"""Issue 13, item 6: journal and plan edge cases seen as a new user, and a misspelled .env key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from entraclaw.config import load_config
from entraclaw.errors import ConfigurationError
from provisioning_helpers import Tenant, chain_from_config, emulator_tenant, run_cli


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    yield from emulator_tenant()


def test_a_run_that_failed_before_any_write_does_not_block_the_corrected_command(
    tenant: Tenant, tmp_path: Path
) -> None:
    home = tmp_path / "d"
    argv = [*tenant.cli_args(home), "--key-storage", "file", "--sponsor", tenant.admin.user_upn, "--no-smoke-test"]
    wrong = list(argv)
    wrong[wrong.index("--tenant") + 1] = "11111111-2222-3333-4444-555555555555"
    assert run_cli("setup", *wrong).returncode != 0
    out = run_cli("setup", *argv)
    assert out.returncode == 0, out.stdout + out.stderr


def test_resume_needs_only_the_admin_sign_in(tenant: Tenant, tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "d"
    first = tenant.setup(home, smoke_test=False)

    def stop(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(first, "_agent_identity", stop)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    monkeypatch.undo()
    again = tenant.setup(home, smoke_test=False, sponsor_ids=())  # app-only admin, no --sponsor
    assert again.run().completed


def test_dry_run_on_a_second_device_predicts_the_refusal(tenant: Tenant, tmp_path: Path) -> None:
    assert tenant.setup(tmp_path / "one", smoke_test=False).run().completed
    second = tenant.setup(tmp_path / "two", smoke_test=False)
    with pytest.raises(ConfigurationError) as real:
        tenant.setup(tmp_path / "two-real", smoke_test=False).run()
    with pytest.raises(ConfigurationError) as planned:
        second.run(dry_run=True)
    assert type(planned.value) is type(real.value) and "--patch-key-credentials" in planned.value.remedy
    assert not any(s.step == "certificate" and "PATCH" in s.action for s in second.result.plan)
    ok = tenant.setup(tmp_path / "three", smoke_test=False, patch_key_credentials=True)
    ok.run(dry_run=True)
    assert any(s.step == "certificate" and "PATCH, keeping others" in s.action for s in ok.result.plan)


def test_rollback_of_a_second_device_removes_only_its_own_certificate(tenant: Tenant, tmp_path: Path) -> None:
    graph = tenant.graph()
    assert tenant.setup(tmp_path / "one", smoke_test=False).run().completed
    second = tenant.setup(tmp_path / "two", smoke_test=False, patch_key_credentials=True)
    assert second.run().completed
    bp = second.result.config["ENTRACLAW_BLUEPRINT_OBJECT_ID"]
    mine = second.result.config["ENTRACLAW_BLUEPRINT_CERT_SHA1"]
    assert len(graph.key_credentials(bp)) == 2
    tenant.setup(tmp_path / "two", smoke_test=False).rollback(force=True)
    left = [c.sha1 for c in graph.key_credentials(bp)]
    assert mine not in left and len(left) == 1
    assert chain_from_config(tmp_path / "one").me_id  # the first device still signs in


def test_rollback_with_nothing_to_undo_says_so(tenant: Tenant, tmp_path: Path) -> None:
    lines: list[str] = []
    tenant.setup(tmp_path / "d", echo=lines.append).rollback()
    assert any("nothing to undo" in line for line in lines), lines
    out = run_cli("setup", *tenant.cli_args(tmp_path / "e"), "--rollback")
    assert out.returncode == 0 and "nothing to undo" in out.stdout, out.stdout + out.stderr


def test_a_misspelled_env_key_is_reported_with_the_nearest_known_key(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("ENTRACLAW_TENANT_ID=t\nENTRACLAW_BLUEPRNT_APP_ID=abc\n")
    with pytest.raises(ConfigurationError) as info:
        load_config(environ={}, env_file=env)
    assert "ENTRACLAW_BLUEPRNT_APP_ID" in str(info.value) and "ENTRACLAW_BLUEPRINT_APP_ID" in str(info.value)
    assert "line 2" in str(info.value)
