"""Contract: plain MSAL and azure-identity sign in with a certificate to ``entraclaw emulator serve`` as to Entra.

No entraclaw code on the client side: the libraries build their own client assertions. What they
send (checked in the first test, from the wire): MSAL with ``thumbprint`` sends RS256 and a SHA-1
``x5t``; MSAL 1.35+ with only ``public_certificate`` sends PS256 and ``x5t#S256``; both padded
with '=' (``base64.urlsafe_b64encode``). Entra takes both; the emulator refused them with
AADSTS700027 before the padding was accepted (seen failing: 401 ``invalid_client`` 700027).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from emulator_helpers import serve, stop_serve

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("served") / "state.json"
    proc, info = serve("--state", str(state))
    try:
        yield info
    finally:
        stop_serve(proc)


class _Recorder(requests.Session):
    """A plain requests session trusting the emulator's CA that keeps the token requests' assertion headers."""

    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self.trust_env = False
        self.verify = ca_bundle
        self.assertion_headers: list[dict[str, Any]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        data = kwargs.get("data")
        if isinstance(data, dict) and "client_assertion" in data:
            raw = data["client_assertion"]
            head = (raw.decode() if isinstance(raw, bytes) else str(raw)).split(".")[0]
            self.assertion_headers.append(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))))
        return super().request(method, url, *args, **kwargs)


def _cert(info: dict[str, str]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(info["admin_cert"]).read_bytes())


def _msal(info: dict[str, str], credential: dict[str, str]) -> tuple[msal.ConfidentialClientApplication, _Recorder]:
    session = _Recorder(info["ca_bundle"])
    app = msal.ConfidentialClientApplication(
        info["admin_app_id"],
        authority=f"{info['base_url']}/{info['tenant_id']}",
        client_credential=credential,
        http_client=session,
        instance_discovery=False,
        validate_authority=False,
    )
    return app, session


def _graph_accepts(info: dict[str, str], token: str) -> None:
    """The token is a Graph token of this tenant for the admin app: Graph serves a call with it."""
    with requests.Session() as s:
        s.trust_env = False
        r = s.get(
            f"{info['graph_url']}/servicePrincipals(appId='{info['admin_app_id']}')",
            headers={"Authorization": f"Bearer {token}"},
            verify=info["ca_bundle"],
            timeout=10,
        )
    assert r.status_code == 200, r.text
    assert r.json()["appId"] == info["admin_app_id"]


def test_msal_with_sha1_thumbprint_signs_in(served: dict[str, str]) -> None:
    cert = _cert(served)
    thumbprint = cert.fingerprint(hashes.SHA1()).hex()
    app, wire = _msal(served, {"private_key": Path(served["admin_key"]).read_text(), "thumbprint": thumbprint})
    result = app.acquire_token_for_client([GRAPH_DEFAULT])
    assert "access_token" in result, result
    # What MSAL sent: RS256 and a padded SHA-1 x5t, the form Entra accepts and the emulator refused.
    (header,) = wire.assertion_headers
    assert header["alg"] == "RS256"
    assert header["x5t"] == base64.urlsafe_b64encode(bytes.fromhex(thumbprint)).decode()
    assert header["x5t"].endswith("=")
    _graph_accepts(served, result["access_token"])


def test_msal_with_public_certificate_only_sends_ps256_and_sha256(served: dict[str, str]) -> None:
    cert = _cert(served)
    app, wire = _msal(
        served,
        {
            "private_key": Path(served["admin_key"]).read_text(),
            "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
        },
    )
    result = app.acquire_token_for_client([GRAPH_DEFAULT])
    assert "access_token" in result, result
    (header,) = wire.assertion_headers
    assert header["alg"] == "PS256"
    der = cert.public_bytes(serialization.Encoding.DER)
    assert header["x5t#S256"] == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode()
    assert header["x5t#S256"].endswith("=")
    _graph_accepts(served, result["access_token"])


def test_msal_with_an_unregistered_certificate_is_refused(served: dict[str, str], tmp_path: Path) -> None:
    from entraclaw.auth.certgen import generate_rsa_key, private_key_to_pem, self_signed_certificate

    key = generate_rsa_key()
    other = self_signed_certificate(key, "not-registered", days=30)
    app, _ = _msal(
        served,
        {
            "private_key": private_key_to_pem(key).decode(),
            "thumbprint": other.fingerprint(hashes.SHA1()).hex(),
        },
    )
    result = app.acquire_token_for_client([GRAPH_DEFAULT])
    assert result.get("error") == "invalid_client" and result.get("error_codes") == [700027], result


def test_azure_identity_certificate_credential_signs_in(served: dict[str, str], tmp_path: Path) -> None:
    from azure.identity import CertificateCredential

    # azure-identity reads key and certificate from one PEM file.
    combined = tmp_path / "admin.pem"
    combined.write_bytes(Path(served["admin_key"]).read_bytes() + Path(served["admin_cert"]).read_bytes())
    host = served["base_url"].removeprefix("https://")
    credential = CertificateCredential(
        served["tenant_id"],
        served["admin_app_id"],
        certificate_path=str(combined),
        authority=host,
        disable_instance_discovery=True,
        connection_verify=served["ca_bundle"],
    )
    try:
        token = credential.get_token(GRAPH_DEFAULT)
    finally:
        credential.close()
    assert token.token and token.expires_on > 0
    _graph_accepts(served, token.token)
