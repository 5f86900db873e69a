"""State file round trip: a restart keeps the CA, the signing key and the tenant; damage is reported."""

from __future__ import annotations

import json
import os
import stat

import pytest

from emulator_helpers import EXCHANGE_AUD, make_assertion, seed, verify_token
from entraclaw.config import make_session
from entraclaw.emulator import Emulator
from entraclaw.errors import EmulatorError

# The helper module is a plugin so its fixtures (seeded, fresh) reach these tests.
pytest_plugins = ["emulator_helpers"]


def test_restart_keeps_ca_keys_and_tenant(tmp_path):
    state = tmp_path / "emu" / "state.json"
    ca_file = tmp_path / "old-ca.pem"
    with Emulator(state_file=state) as emu:
        s = seed(emu)
        t1 = s.t1()
        ca_file.write_bytes(emu.ca_cert_pem)
        tenant_id, ca_pem, kid, port = emu.tenant_id, emu.ca_cert_pem, emu.signing_key_id, emu.port
    assert state.exists()
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600

    # Same port: the issuer URL (and so T1's 'iss') includes it, as Entra's includes its host.
    with Emulator(state_file=state, port=port) as again:
        assert (again.tenant_id, again.ca_cert_pem, again.signing_key_id) == (tenant_id, ca_pem, kid)
        # A client that saved the CA before the restart still trusts the new server certificate.
        with make_session(ca_file) as session:
            r = session.get(f"{again.authority}/v2.0/.well-known/openid-configuration", verify=str(ca_file))
        assert r.status_code == 200
        # Tokens from before the restart verify; the tenant (certs, identities, users, consent) is intact.
        assert verify_token(again, t1, EXCHANGE_AUD)["sub"] == s.ai.app_id
        assert again.tenant.user(s.au.object_id).upn == s.au.upn
        assert again.tenant.consented_scopes(s.ai.app_id, "https://graph.microsoft.com") == {"User.Read"}
        with again.session() as session:
            form = {
                "client_id": s.bp.app_id,
                "grant_type": "client_credentials",
                "scope": "api://AzureADTokenExchange/.default",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": make_assertion(s.cert, s.bp.app_id, again.token_endpoint),
                "fmi_path": s.ai.app_id,
            }
            assert session.post(again.token_endpoint, data=form).status_code == 200


def test_save_state_to_explicit_path(tmp_path):
    emu = Emulator()
    s = seed(emu)
    path = emu.save_state(tmp_path / "copy.json")
    loaded = Emulator(state_file=path)
    assert loaded.tenant_id == emu.tenant_id
    assert loaded.tenant.application(s.bp.app_id).key_credentials[0].x5t_s256 == s.cert.x5t_s256


def test_hand_written_seed(tmp_path):
    emu = Emulator()
    s = seed(emu)
    only_tenant = {"version": 1, "tenant": emu.tenant.to_dict()}
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(only_tenant))
    tid = "12345678-1234-1234-1234-123456789abc"
    with Emulator(state_file=path, tenant_id=tid) as fresh:
        assert fresh.tenant_id == tid
        assert fresh.tenant.agent_identity(s.ai.app_id).blueprint_app_id == s.bp.app_id


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"version": 99, "tenant": {}}', "version 99"),
        ('{"version": 1}', "lacks tenant"),
        ('{"version": 1, "tenant": {"applications": [{"appId": "x"}]}}', "damaged"),
    ],
)
def test_damaged_state_is_reported_with_path(tmp_path, content, needle):
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(EmulatorError) as info:
        Emulator(state_file=path)
    assert str(path) in str(info.value) and needle in str(info.value)
    assert info.value.remedy


def test_tenant_mismatch_is_reported(tmp_path):
    path = Emulator().save_state(tmp_path / "state.json")
    with pytest.raises(EmulatorError) as info:
        Emulator(state_file=path, tenant_id="12345678-1234-1234-1234-123456789abc")
    assert "12345678-1234-1234-1234-123456789abc" in str(info.value)


def test_tenant_id_in_another_case_matches_the_saved_tenant(tmp_path):
    tenant = "12345678-1234-1234-1234-123456789abc"
    path = Emulator(tenant_id=tenant).save_state(tmp_path / "state.json")
    assert Emulator(state_file=path, tenant_id=tenant.upper()).tenant_id == tenant


def test_a_second_emulator_on_the_same_state_is_refused(tmp_path):
    state = tmp_path / "state.json"
    with Emulator(state_file=state) as first:
        with pytest.raises(EmulatorError) as info:
            Emulator(state_file=state).start()
        assert str(state) in str(info.value) and f"pid {os.getpid()}" in str(info.value)
        assert info.value.remedy
        first.admin  # noqa: B018 - provisioned and saved next to the state file
    # Released at stop: the next server takes over, with the same admin and CA bundle path.
    with Emulator(state_file=state) as again:
        assert again.ca_bundle_path == str(tmp_path / "state.json.ca.pem")
        assert again.admin.app_id == first.admin.app_id
