"""The tenant model's seeding API: relations are enforced, errors name the object."""

from __future__ import annotations

import pytest

from emulator_helpers import make_cert
from entraclaw.emulator import Emulator, Tenant
from entraclaw.errors import EmulatorError


@pytest.fixture
def tenant():
    return Tenant("99999999-9999-9999-9999-999999999999")


def test_relations(tenant):
    bp = tenant.add_blueprint("bp", certificates=[make_cert(0).cert])
    ai = tenant.add_agent_identity(bp.app_id, "ai")
    au = tenant.add_agent_user(ai.app_id, "u@contoso.test", "U")
    assert ai.blueprint_app_id == bp.app_id and ai.app_id != ai.object_id
    assert au.identity_parent_id == ai.object_id
    assert tenant.user_by_upn("U@CONTOSO.TEST") == au


def test_identity_needs_a_blueprint(tenant):
    app = tenant.add_application("plain app")
    for parent in ("00000000-0000-0000-0000-000000000001", app.app_id):
        with pytest.raises(EmulatorError) as info:
            tenant.add_agent_identity(parent, "orphan")
        assert parent in str(info.value)


def test_user_needs_an_identity(tenant):
    with pytest.raises(EmulatorError) as info:
        tenant.add_agent_user("00000000-0000-0000-0000-000000000002", "u@contoso.test", "U")
    assert "00000000-0000-0000-0000-000000000002" in str(info.value)


def test_duplicate_upn_and_bad_ids(tenant):
    bp = tenant.add_blueprint("bp")
    ai = tenant.add_agent_identity(bp.app_id, "ai")
    tenant.add_agent_user(ai.app_id, "u@contoso.test", "U")
    with pytest.raises(EmulatorError):
        tenant.add_agent_user(ai.app_id, "u@contoso.test", "again")
    with pytest.raises(EmulatorError):
        tenant.add_agent_user(ai.app_id, "no-domain", "x")
    with pytest.raises(EmulatorError):
        tenant.add_blueprint("x", app_id="not-a-guid")
    with pytest.raises(EmulatorError):
        tenant.add_blueprint("again", app_id=bp.app_id)


def test_set_key_credentials_replaces(tenant):
    a, b = make_cert(0), make_cert(1)
    bp = tenant.add_blueprint("bp", certificates=[a.cert])
    tenant.set_key_credentials(bp.object_id, [b.cert])
    assert [c.x5t_s256 for c in tenant.application(bp.app_id).key_credentials] == [b.x5t_s256]
    with pytest.raises(EmulatorError) as info:
        tenant.set_key_credentials(bp.app_id, [a.cert])  # app id is not the object id
    assert bp.app_id in str(info.value)


def test_token_lifetime_is_configurable():
    with Emulator(token_lifetime=600) as emu:
        from emulator_helpers import seed

        s = seed(emu)
        body = s.post_token(s.hop1_form()).json()
        assert body["expires_in"] == 600 == body["ext_expires_in"]
    with pytest.raises(EmulatorError):
        Emulator(token_lifetime=5)
