"""The demo and the credential with a CNG key (the native module's stand-in on Linux, real CNG on Windows)."""

from __future__ import annotations

import jwt
import pytest

from cng_helpers import standin_fixture  # noqa: F401 - pytest fixture "standin"
from credential_helpers import GRAPH_SCOPE, seed
from entraclaw import cng
from entraclaw.auth.credential import AgentUserCredential
from entraclaw.demo import DemoTrace, blueprint_key, run_demo
from entraclaw.emulator import Emulator

pytestmark = pytest.mark.standin


def test_demo_runs_with_a_cng_blueprint_key(standin):
    trace = DemoTrace()
    # mcp=False: the stand-in's keys live in this process only, so an entraclaw-mcp child could not sign.
    run_demo(trace, use_cng=True, algorithm="PS256", mcp=False)
    key_step = next(s for s in trace.steps if s["title"].startswith("Blueprint key"))
    assert key_step["storage"].startswith("CNG") and key_step["key"].startswith("CNG")
    assert trace.steps[-1]["token_from_cache"] is True
    # The demo removes the certificate and key it created.
    assert not [c for c in cng.list_certificates() if "entraclaw-blueprint-" in c.subject]


def test_credential_signs_hop1_with_a_cng_key(standin):
    made = blueprint_key("entraclaw-credential-cng", use_cng=True)
    try:
        with Emulator() as emu:
            seeded = seed(emu)
            emu.tenant.set_key_credentials(seeded.blueprint_object_id, [made.certificate])
            cred = AgentUserCredential(
                tenant=emu.authority,
                blueprint_app_id=seeded.blueprint_app_id,
                agent_identity_app_id=seeded.agent_identity_app_id,
                agent_user_id=seeded.agent_user_id,
                signer=made.signer,
                session=emu.session(),
            )
            token = cred.get_token(GRAPH_SCOPE)
            claims = jwt.decode(
                token.token, emu.signing_public_key, algorithms=["RS256"], audience="https://graph.microsoft.com"
            )
            assert claims["oid"] == seeded.agent_user_id
            assert standin.calls("NCryptSignHash") >= 1
    finally:
        assert made.cleanup is not None
        made.cleanup()


def test_pem_fallback_when_cng_is_not_wanted():
    made = blueprint_key("entraclaw-pem-only", use_cng=False)
    assert made.kind.startswith("PEM") and made.cleanup is None
