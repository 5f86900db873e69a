"""Proxies with pinned trust: one rule (config.make_session), a real proxy (tinyproxy) in front of the emulator.

The trust anchor never follows the environment: REQUESTS_CA_BUNDLE points at an unrelated bundle in the
tests that go through the proxy, and they still verify the emulator against ENTRACLAW_CA_BUNDLE / --ca-bundle.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from emulator_helpers import serve, stop_serve
from entraclaw.config import load_config, make_session
from entraclaw.errors import ConfigurationError, GraphRequestError, NetworkError, ProxyAuthenticationError
from entraclaw.platform.proxy import ProxyRule, redact_proxy, resolve_proxy_rule
from provisioning_helpers import HAVE_GRAPH_AGENT_API, run_cli
from proxy_helpers import free_port, require_tinyproxy, tinyproxy

needs_graph = pytest.mark.skipif(not HAVE_GRAPH_AGENT_API, reason="the emulator's Graph Agent ID API has not landed")

# --- the rule ----------------------------------------------------------------------------------


def test_explicit_proxy_wins_over_the_environment_and_no_proxy_applies_to_it() -> None:
    env = {"HTTPS_PROXY": "http://env-proxy:3128", "NO_PROXY": "localhost,.internal"}
    rule = resolve_proxy_rule("http://mine:8080", environ=env)
    assert rule.for_url("https://login.microsoftonline.com/x") == {"https": "http://mine:8080"}
    assert rule.for_url("https://graph.internal/v1.0") == {}
    assert rule.source == "ENTRACLAW_PROXY"
    # ENTRACLAW_PROXY in the environment is the explicit value when none is passed.
    assert resolve_proxy_rule(environ={**env, "ENTRACLAW_PROXY": "http://e:1"}).for_url("https://a/") == {
        "https": "http://e:1"
    }


def test_environment_lower_case_first_then_upper_and_all_proxy() -> None:
    rule = resolve_proxy_rule(environ={"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2"})
    assert rule.for_url("https://a/") == {"https": "http://low:1"}
    assert rule.source == "https_proxy"
    everything = resolve_proxy_rule(environ={"ALL_PROXY": "http://all:3"})
    assert everything.for_url("http://a/") == {"http": "http://all:3"}
    assert everything.for_url("https://a/") == {"https": "http://all:3"}


def test_direct_turns_every_proxy_off_and_nothing_set_is_direct() -> None:
    assert resolve_proxy_rule("direct", environ={"HTTPS_PROXY": "http://p:1"}).for_url("https://a/") == {}
    assert resolve_proxy_rule(environ={}).for_url("https://a/") == {}
    assert resolve_proxy_rule(environ={}, platform="linux").describe() == "direct"


def test_no_proxy_matches_hosts_ports_and_cidr() -> None:
    rule = ProxyRule({"https": "http://p:1"}, "127.0.0.0/8,example.org,host:8443")
    assert rule.for_url("https://127.0.0.1:5000/") == {}
    assert rule.for_url("https://login.example.org/") == {}
    assert rule.for_url("https://host:8443/") == {}
    assert rule.for_url("https://host:9443/") == {"https": "http://p:1"}
    assert ProxyRule({"https": "http://p:1"}, "*").for_url("https://anything/") == {}


def test_a_bad_proxy_value_is_a_configuration_error_without_its_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_proxy_rule("ftp://user:s3cret@proxy:21")
    assert "s3cret" not in str(caught.value) and "--proxy" in caught.value.remedy
    with pytest.raises(ConfigurationError) as in_config:
        load_config(environ={"ENTRACLAW_PROXY": "socks5://user:s3cret@p:1"}, env_file=False)
    assert "ENTRACLAW_PROXY" in str(in_config.value) and "s3cret" not in str(in_config.value)
    assert redact_proxy("http://user:pw@proxy.example:3128") == "http://proxy.example:3128"


def test_the_session_keeps_trust_env_off_and_the_configured_verify(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    session = make_session(str(bundle), proxy="http://p:1")
    assert session.trust_env is False and session.verify == str(bundle)
    settings = session.merge_environment_settings("https://a/", {}, None, None, None)
    assert settings["verify"] == str(bundle)  # REQUESTS_CA_BUNDLE (set on these machines) did not win
    assert settings["proxies"] == {"https": "http://p:1"}


# --- a real proxy ---------------------------------------------------------------------------------


@pytest.fixture
def unrelated_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE at a CA that signed nothing here."""
    from conftest import make_keypair

    path = tmp_path / "unrelated-ca.pem"
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(make_keypair("unrelated CA").cert.public_bytes(serialization.Encoding.PEM))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(path))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(path))
    return path


@pytest.fixture
def emulator() -> Iterator[object]:
    if not HAVE_GRAPH_AGENT_API:
        pytest.skip("the emulator's Graph Agent ID API has not landed")
    from entraclaw.emulator import Emulator

    with Emulator() as emu:
        yield emu


def _admin_token(emu: object, session: requests.Session) -> str:
    from entraclaw.provisioning.auth import ClientCertificateAuth

    admin = emu.admin  # type: ignore[attr-defined]
    auth = ClientCertificateAuth.from_files(
        authority=emu.authority,  # type: ignore[attr-defined]
        client_id=admin.app_id,
        cert_path=admin.cert_path,
        key_path=admin.key_path,
        session=session,
    )
    return auth.token()


def _clear_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "ENTRACLAW_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_a_token_through_tinyproxy_from_https_proxy_with_trust_still_pinned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: object, unrelated_bundle: Path
) -> None:
    _clear_proxy_env(monkeypatch)
    with tinyproxy(tmp_path / "proxy") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        session = make_session(emulator.ca_bundle_path)  # type: ignore[attr-defined]
        assert _admin_token(emulator, session)
        assert f"CONNECT 127.0.0.1:{emulator.port}" in proxy.requests_seen()  # type: ignore[attr-defined]
        # Through the same proxy, a session that trusts the public CAs refuses the emulator: the
        # tunnel carries bytes, the certificate check is still ours.
        with pytest.raises(requests.exceptions.SSLError):
            make_session().get(f"{emulator.base_url}/", timeout=10)  # type: ignore[attr-defined]


def test_no_proxy_for_loopback_goes_direct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: object) -> None:
    _clear_proxy_env(monkeypatch)
    with tinyproxy(tmp_path / "proxy") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        assert _admin_token(emulator, make_session(emulator.ca_bundle_path))  # type: ignore[attr-defined]
        assert proxy.tunnels() == 0, proxy.requests_seen()


def test_a_proxy_that_is_down_is_a_network_error_naming_the_proxy(
    monkeypatch: pytest.MonkeyPatch, emulator: object
) -> None:
    from entraclaw.errors import TokenExchangeError

    _clear_proxy_env(monkeypatch)
    port = free_port()  # nothing listens there
    session = make_session(emulator.ca_bundle_path, proxy=f"http://user:pw@127.0.0.1:{port}")  # type: ignore[attr-defined]
    with pytest.raises(TokenExchangeError) as caught:
        _admin_token(emulator, session)
    err = caught.value
    assert isinstance(err, NetworkError), err
    assert f"127.0.0.1:{port}" in err.message and err.network_kind == "proxy"  # type: ignore[attr-defined]
    assert "pw" not in str(err).replace("proxy", "")  # the proxy's password is never shown
    assert "ENTRACLAW_PROXY" in err.remedy and "--proxy" in err.remedy


def test_a_proxy_asking_for_credentials_is_a_typed_407_and_credentials_in_the_url_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: object
) -> None:
    from entraclaw.errors import TokenExchangeError

    _clear_proxy_env(monkeypatch)
    with tinyproxy(tmp_path / "proxy", basic_auth=("agent", "pr0xy-pass")) as proxy:
        session = make_session(emulator.ca_bundle_path, proxy=proxy.url)  # type: ignore[attr-defined]
        with pytest.raises(TokenExchangeError) as caught:
            _admin_token(emulator, session)
        assert isinstance(caught.value, ProxyAuthenticationError), caught.value
        assert proxy.url in caught.value.message and caught.value.attempts == 1  # type: ignore[attr-defined]
        assert "USER:PASSWORD@" in caught.value.remedy
        with_credentials = make_session(
            emulator.ca_bundle_path, proxy=f"http://agent:pr0xy-pass@127.0.0.1:{proxy.port}"  # type: ignore[attr-defined]
        )
        assert _admin_token(emulator, with_credentials)


def test_graph_through_a_down_proxy_names_it(monkeypatch: pytest.MonkeyPatch, emulator: object) -> None:
    from entraclaw.provisioning.auth import GraphAuth
    from entraclaw.provisioning.graph import GraphClient

    class Fixed(GraphAuth):
        def _acquire(self) -> tuple[str, float]:
            return "t", 4e9

    _clear_proxy_env(monkeypatch)
    port = free_port()
    session = make_session(emulator.ca_bundle_path, proxy=f"http://127.0.0.1:{port}")  # type: ignore[attr-defined]
    graph = GraphClient(emulator.graph_url, Fixed(), session=session)  # type: ignore[attr-defined]
    graph._sleep = lambda _s: None  # type: ignore[attr-defined]
    with pytest.raises(GraphRequestError) as caught:
        graph.find_blueprints(display_name="x")
    assert f"127.0.0.1:{port}" in caught.value.message, caught.value.message


# --- the CLI through tinyproxy (what a user behind a corporate proxy runs) ------------------------


def _cli_env(tmp_path: Path, bundle: Path, **extra: str) -> dict[str, str]:
    env = {"ENTRACLAW_HOME": str(tmp_path / "home"), "REQUESTS_CA_BUNDLE": str(bundle), "CURL_CA_BUNDLE": str(bundle)}
    env.update(extra)
    return env


@needs_graph
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals stop serve")
def test_setup_and_token_through_tinyproxy_with_an_unrelated_requests_ca_bundle(
    tmp_path: Path, unrelated_bundle: Path
) -> None:
    require_tinyproxy()
    served_env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRACLAW_")}
    served_env.pop("REQUESTS_CA_BUNDLE", None)
    proc, info = serve("--state", str(tmp_path / "s.json"), env=served_env, cwd=tmp_path)
    try:
        with tinyproxy(tmp_path / "proxy") as proxy:
            env = _cli_env(tmp_path, unrelated_bundle, HTTPS_PROXY=proxy.url)
            for name in ("NO_PROXY", "no_proxy", "https_proxy", "http_proxy", "all_proxy", "ALL_PROXY"):
                env[name] = ""
            setup = run_cli(
                "setup", "--tenant", info["tenant_id"], "--authority-host", info["base_url"],
                "--graph-url", info["graph_url"], "--ca-bundle", info["ca_bundle"],
                "--admin-app-id", info["admin_app_id"], "--admin-cert", info["admin_cert"],
                "--admin-key", info["admin_key"], "--sponsor", info["admin_user"], "--key-storage", "file",
                env=env,
            )
            assert setup.returncode == 0, setup.stdout + setup.stderr
            tunnels_after_setup = proxy.tunnels()
            assert tunnels_after_setup > 0
            token = run_cli("token", env=env)
            assert token.returncode == 0, token.stdout + token.stderr
            assert proxy.tunnels() > tunnels_after_setup
            # The device keeps working when the proxy comes from its .env (--proxy at setup), not the shell.
            again = run_cli(
                "setup", "--proxy", proxy.url, "--admin-app-id", info["admin_app_id"],
                "--admin-cert", info["admin_cert"], "--admin-key", info["admin_key"], "--sponsor", info["admin_user"],
                "--key-storage", "file", env={**env, "HTTPS_PROXY": ""},
            )
            assert again.returncode == 0, again.stdout + again.stderr
            assert f"ENTRACLAW_PROXY={proxy.url}" in (tmp_path / "home" / ".env").read_text()
            before = proxy.tunnels()
            assert run_cli("token", env={**env, "HTTPS_PROXY": ""}).returncode == 0
            assert proxy.tunnels() > before
        # The proxy is gone now: the same token command names it.
        down = run_cli("token", "--scope", "https://graph.microsoft.com/Mail.Read",
                       env={**env, "HTTPS_PROXY": ""})
        assert down.returncode != 0 and "Traceback" not in down.stderr
        assert f"proxy http://127.0.0.1:{proxy.port}" in down.stderr, down.stderr
    finally:
        stop_serve(proc)
