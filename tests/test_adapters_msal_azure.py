"""Adapters: the signer as any MSAL app's client_assertion, azure-core's TokenCredential, the app-only credential."""

from __future__ import annotations

import jwt
import msal
import pytest

from credential_helpers import GRAPH_SCOPE, seed
from entraclaw.auth.adapters import ClientAssertionCallable, client_assertion_callable
from entraclaw.auth.certgen import generate_rsa_key, private_key_to_pem, self_signed_certificate
from entraclaw.auth.exchange import EXCHANGE_SCOPE
from entraclaw.emulator import TOKEN_EXCHANGE_AUDIENCE, Emulator
from entraclaw.errors import ConfigurationError, ThumbprintMismatchError, TokenExchangeError


@pytest.fixture
def emu():
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def seeded(emu):
    return seed(emu)


def test_callable_drives_a_plain_msal_app_through_hop1(seeded):
    emu = seeded.emu
    assertion = client_assertion_callable(seeded.signer, seeded.blueprint_app_id, emu.token_endpoint)
    app = msal.ConfidentialClientApplication(
        seeded.blueprint_app_id,
        client_credential={"client_assertion": assertion},
        authority=emu.authority,
        http_client=emu.session(),
        validate_authority=False,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client([EXCHANGE_SCOPE], fmi_path=seeded.agent_identity_app_id)
    assert "access_token" in result, result.get("error_description")
    claims = jwt.decode(
        result["access_token"], emu.signing_public_key, algorithms=["RS256"], audience=TOKEN_EXCHANGE_AUDIENCE
    )
    assert claims["appid"] == seeded.blueprint_app_id


def test_each_call_signs_a_fresh_assertion(seeded):
    assertion = client_assertion_callable(seeded.signer, "client-1", seeded.emu.token_endpoint, "PS256")
    first, second = assertion(), assertion()
    assert first != second
    public = seeded.cert.public_key()
    for token in (first, second):
        claims = jwt.decode(token, public, algorithms=["PS256"], audience=seeded.emu.token_endpoint)
        assert claims["iss"] == claims["sub"] == "client-1"
        assert claims["exp"] - claims["iat"] == 300
        assert jwt.get_unverified_header(token)["x5t#S256"] == seeded.signer.x5t_s256
    assert len({jwt.decode(t, options={"verify_signature": False})["jti"] for t in (first, second)}) == 2


def test_callable_accepts_pem_text(seeded):
    pem = private_key_to_pem(seeded.key)
    assertion = client_assertion_callable(
        pem, "client-1", seeded.emu.token_endpoint, cert_thumbprint=seeded.signer.x5t_s256
    )
    jwt.decode(assertion(), seeded.cert.public_key(), algorithms=["RS256"], audience=seeded.emu.token_endpoint)


def test_callable_checks_setup_before_any_request(seeded):
    endpoint = seeded.emu.token_endpoint
    with pytest.raises(ConfigurationError, match="no certificate"):
        client_assertion_callable(private_key_to_pem(seeded.key), "c", endpoint)
    other = self_signed_certificate(generate_rsa_key(), "other")
    from cryptography.hazmat.primitives import serialization

    from entraclaw.auth.thumbprint import compute_cert_thumbprint

    wrong = compute_cert_thumbprint(other.public_bytes(serialization.Encoding.DER))
    with pytest.raises(ThumbprintMismatchError):
        client_assertion_callable(seeded.signer, "c", endpoint, cert_thumbprint=wrong)
    with pytest.raises(ConfigurationError, match="https"):
        client_assertion_callable(seeded.signer, "c", "http://example.com/token")


def test_context_with_another_endpoint_is_refused(seeded):
    assertion = client_assertion_callable(seeded.signer, "c", seeded.emu.token_endpoint)
    with pytest.raises(ConfigurationError, match="MSAL is calling"):
        assertion({"token_endpoint": "https://login.microsoftonline.com/x/oauth2/v2.0/token"})
    assert assertion({"token_endpoint": seeded.emu.token_endpoint, "client_id": "c"})


def test_callable_repr_has_no_secret(seeded):
    assertion = client_assertion_callable(seeded.signer, "c", seeded.emu.token_endpoint)
    assert isinstance(assertion, ClientAssertionCallable)
    text = repr(assertion)
    assert "c" in text and seeded.signer.x5t_s256 in text
    assert "eyJ" not in text and "PRIVATE" not in text


def test_azure_core_bearer_policy_calls_graph_me(seeded):
    core = pytest.importorskip("azure.core", reason="azure-core is in the test extra: pip install -e .[test]")
    from azure.core.credentials import AccessToken as CoreAccessToken
    from azure.core.credentials import SupportsTokenInfo, TokenCredential
    from azure.core.pipeline import Pipeline
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.rest import HttpRequest

    assert core
    emu = seeded.emu
    cred = seeded.credential()
    assert isinstance(cred, TokenCredential) and isinstance(cred, SupportsTokenInfo)
    transport = RequestsTransport(session=emu.session(), session_owner=False, connection_verify=emu.ca_bundle_path)
    pipeline = Pipeline(transport=transport, policies=[BearerTokenCredentialPolicy(cred, GRAPH_SCOPE)])
    for _ in range(3):
        response = pipeline.run(HttpRequest("GET", f"{emu.graph_url}/me")).http_response
        assert response.status_code == 200
        assert response.json()["id"] == seeded.agent_user_id
    assert emu.stats.count() == 3  # the policy's repeated calls were cache hits

    token = cred.get_token(GRAPH_SCOPE)
    core_token = CoreAccessToken(*token)
    assert core_token.token == token.token and core_token.expires_on == token.expires_on


def test_app_only_credential_gets_agent_identity_token(seeded):
    emu = seeded.emu
    emu.tenant.grant_app_roles(seeded.agent_identity_app_id, "https://graph.microsoft.com", ["User.Read.All"])
    cred = seeded.app_credential()
    token = cred.get_token(GRAPH_SCOPE)
    claims = jwt.decode(
        token.token, emu.signing_public_key, algorithms=["RS256"], audience="https://graph.microsoft.com"
    )
    assert claims["idtyp"] == "app" and claims["appid"] == seeded.agent_identity_app_id
    assert claims.get("roles") == ["User.Read.All"]
    assert [(r["hop"], r["grant_type"]) for r in emu.stats.token_requests] == [
        (1, "client_credentials"),
        (2, "client_credentials"),
    ]
    assert cred.get_token(GRAPH_SCOPE).token == token.token
    assert emu.stats.count() == 2


def test_app_only_credential_wants_one_default_scope(seeded):
    with pytest.raises(ConfigurationError, match=r"/\.default"):
        seeded.app_credential().get_token("https://graph.microsoft.com/User.Read")


def test_app_only_unknown_resource_fails_on_hop2_with_fields(seeded):
    # T1 was accepted as the Agent Identity's client assertion; only the resource is refused, on Hop 2.
    with pytest.raises(TokenExchangeError) as info:
        seeded.app_credential().get_token("api://no-such-resource/.default")
    err = info.value
    assert (err.hop, err.client_id, err.aadsts_code) == (2, seeded.agent_identity_app_id, 500011)
    assert [(r["hop"], r["grant_type"], r["status"]) for r in seeded.emu.stats.token_requests] == [
        (1, "client_credentials", 200),
        (2, "client_credentials", 400),
    ]
