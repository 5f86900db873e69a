"""The server itself: discovery for MSAL, JWKS, TLS trust only through the emulator's CA, clean stop."""

from __future__ import annotations

import logging
import socket
import ssl

import jwt
import pytest
import requests
from cryptography import x509

from capabilities import require
from emulator_helpers import assert_sts_error, seed
from entraclaw.config import make_session
from entraclaw.emulator import Emulator
from entraclaw.errors import EmulatorError

# The helper module is a plugin so its fixtures (seeded, fresh) reach these tests.
pytest_plugins = ["emulator_helpers"]


def test_discovery_document(seeded):
    emu = seeded.emu
    with emu.session() as s:
        doc = s.get(f"{emu.authority}/v2.0/.well-known/openid-configuration").json()
    assert doc["token_endpoint"] == emu.token_endpoint
    assert doc["issuer"] == emu.issuer == f"{emu.authority}/v2.0"
    assert doc["authorization_endpoint"] == f"{emu.authority}/oauth2/v2.0/authorize"
    assert doc["jwks_uri"] == emu.jwks_uri
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]


def test_discovery_for_unknown_tenant(seeded):
    with seeded.emu.session() as s:
        r = s.get(f"{seeded.emu.base_url}/55555555-5555-5555-5555-555555555555/v2.0/.well-known/openid-configuration")
    assert_sts_error(r, 90002, "invalid_tenant")


def test_jwks_verifies_issued_tokens(seeded):
    emu = seeded.emu
    with emu.session() as s:
        jwks = s.get(emu.jwks_uri).json()
    (key,) = jwks["keys"]
    assert key["kid"] == emu.signing_key_id
    public = jwt.PyJWK(key).key
    assert public.public_numbers() == emu.signing_public_key.public_numbers()
    claims = jwt.decode(seeded.t1(), public, algorithms=["RS256"], audience="fb60f99c-7a34-4190-8149-302f77469936")
    assert claims["appid"] == seeded.bp.app_id


def test_default_trust_store_does_not_trust_the_emulator(seeded):
    # The public CAs only.
    with make_session() as s, pytest.raises(requests.exceptions.SSLError):
        s.get(seeded.emu.jwks_uri, timeout=10)


def test_session_trusts_only_the_emulator_ca(seeded, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/bundle.pem")
    s = seeded.emu.session()
    assert s.verify == seeded.emu.ca_bundle_path and s.trust_env is False
    assert s.get(seeded.emu.jwks_uri, timeout=10).status_code == 200


def test_server_certificate_covers_loopback_names(seeded):
    ctx = ssl.create_default_context(cadata=seeded.emu.ca_cert_pem.decode())
    for name in ("127.0.0.1", "localhost"):
        with (
            socket.create_connection(("127.0.0.1", seeded.emu.port)) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}


def test_silent_client_does_not_block_others(seeded):
    # A client that connects but never starts TLS must not stall the accept loop.
    with socket.create_connection(("127.0.0.1", seeded.emu.port)), seeded.emu.session() as s:
        assert s.get(seeded.emu.jwks_uri, timeout=5).status_code == 200


def test_unknown_route_is_404(seeded):
    with seeded.emu.session() as s:
        assert s.get(f"{seeded.emu.base_url}/nothing/here").status_code == 404


def test_oversized_body_refused(seeded):
    with seeded.emu.session() as s:
        r = s.post(seeded.emu.token_endpoint, data={"x": "y" * 70_000})
    assert r.status_code == 413


def test_start_stop_and_ephemeral_ports():
    with Emulator() as a, Emulator() as b:
        assert a.port != b.port and a.tenant_id != b.tenant_id
        port = a.port
        ca_path = a.ca_bundle_path
        keepalive = a.session()
        assert keepalive.get(a.jwks_uri).status_code == 200
    assert not a.running
    with pytest.raises(EmulatorError):
        a.ca_bundle_path  # noqa: B018 - the property raises once stopped
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    import os

    assert not os.path.exists(ca_path)
    a.stop()  # idempotent


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.ipv6
def test_ipv6_loopback():
    require("ipv6", _ipv6_loopback_available(), "cannot bind a socket to ::1 on this machine")
    with Emulator(host="::1") as emu:
        assert emu.base_url.startswith("https://[::1]:")
        with emu.session() as s:
            assert s.get(f"{emu.authority}/v2.0/.well-known/openid-configuration").status_code == 200


def test_port_in_use_is_reported(seeded):
    with pytest.raises(EmulatorError) as info:
        Emulator(port=seeded.emu.port).start()
    assert str(seeded.emu.port) in str(info.value)


def test_secrets_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    with Emulator() as emu:
        s = seed(emu)
        t1 = s.t1()
        t2 = s.t2(t1)
        r = s.post_token(s.hop3_form(t1, t2))
        t3 = r.json()["access_token"]
        bad = s.post_token(s.hop1_form(client_secret="hunter2-secret"))
    assert bad.status_code == 400
    text = caplog.text
    for secret in (t1, t2, t3, "hunter2-secret"):
        assert secret not in text
        assert secret.split(".")[-1] not in text


def test_repr_names_tenant_not_keys():
    emu = Emulator()
    assert emu.tenant_id in repr(emu) and "stopped" in repr(emu)
    assert "PRIVATE" not in repr(emu)
