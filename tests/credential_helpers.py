"""Helpers for the credential, adapter and demo tests: a seeded emulator tenant and secret scanning.

Run as a script (``python tests/credential_helpers.py child CONFIG_JSON``) it is
the *other process* of the cross-process cache tests: it builds a credential
from the JSON config, gets a token and prints its SHA-256 (never the token).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

SRC = Path(__file__).resolve().parents[1] / "src"

from entraclaw.auth import persisted_cache  # noqa: E402
from entraclaw.auth.certgen import generate_rsa_key, private_key_to_pem, self_signed_certificate  # noqa: E402
from entraclaw.auth.credential import AgentIdentityCredential, AgentUserCredential  # noqa: E402
from entraclaw.auth.persisted_cache import PersistedTokenStore  # noqa: E402
from entraclaw.auth.retry import TokenRetryPolicy  # noqa: E402
from entraclaw.auth.signer import PemSigner  # noqa: E402
from entraclaw.config import make_session  # noqa: E402

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
JWT_RE = re.compile(r"eyJ[\w-]+\.[\w-]+\.")
# Any base64url JSON header start, even of a truncated token. A token starts a word: "eyJ" inside a
# longer base64 run (a certificate's PEM body has it about once in 250 certificates) is not one.
JWT_PREFIX_RE = re.compile(r"(?<![A-Za-z0-9+_-])eyJ[\w-]{6,}")
# A PEM private key, whole or cut: its armour line, or the start of its base64 body. An unencrypted
# PKCS#8 key is DER 30 82 LL LL 02 01 00 30 0D.. -> "MII" + 3 chars + "IBADAN"; PKCS#1 (RSA PRIVATE
# KEY) 30 82 LL LL 02 01 00 02 82.. -> "IBAAKC". Certificates and public keys never match.
PEM_KEY_RE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|PRIVATE KEY-----")
PEM_DER_PREFIX_RE = re.compile(r"MII[A-Za-z0-9+/]{3}IB(?:ADAN|AAKC)")
PLAINTEXT_CACHE_ENV = "ENTRACLAW_TEST_PLAINTEXT_CACHE"
FAST_RETRY = TokenRetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=5)

_KEY: rsa.RSAPrivateKey | None = None


def shared_key() -> rsa.RSAPrivateKey:
    """One RSA key per test session (keygen is slow); each tenant gets its own certificate."""
    global _KEY
    if _KEY is None:
        _KEY = generate_rsa_key()
    return _KEY


@dataclass
class Seeded:
    emu: Any
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    blueprint_app_id: str
    blueprint_object_id: str
    agent_identity_app_id: str
    agent_user_id: str
    agent_user_upn: str

    @property
    def signer(self) -> PemSigner:
        return PemSigner(self.key, self.cert)

    def chain_env(self) -> dict[str, str | None]:
        """The .env entries that name this tenant and chain (no key, thumbprint or trust settings)."""
        return {
            "ENTRACLAW_TENANT_ID": self.emu.tenant_id,
            "ENTRACLAW_AUTHORITY_HOST": self.emu.base_url,
            "ENTRACLAW_GRAPH_URL": self.emu.graph_url,
            "ENTRACLAW_BLUEPRINT_APP_ID": self.blueprint_app_id,
            "ENTRACLAW_BLUEPRINT_OBJECT_ID": self.blueprint_object_id,
            "ENTRACLAW_AGENT_IDENTITY_ID": self.agent_identity_app_id,
            "ENTRACLAW_AGENT_USER_ID": self.agent_user_id,
            "ENTRACLAW_AGENT_USER_UPN": self.agent_user_upn,
        }

    def credential(self, **overrides: Any) -> AgentUserCredential:
        kwargs: dict[str, Any] = {
            "tenant": self.emu.authority,
            "blueprint_app_id": self.blueprint_app_id,
            "agent_identity_app_id": self.agent_identity_app_id,
            "signer": self.signer,
            "session": self.emu.session(),
            "retry_policy": FAST_RETRY,
        }
        if "agent_user_upn" not in overrides:
            kwargs["agent_user_id"] = self.agent_user_id
        kwargs.update(overrides)
        return AgentUserCredential(**kwargs)

    def app_credential(self, **overrides: Any) -> AgentIdentityCredential:
        kwargs: dict[str, Any] = {
            "tenant": self.emu.authority,
            "blueprint_app_id": self.blueprint_app_id,
            "agent_identity_app_id": self.agent_identity_app_id,
            "signer": self.signer,
            "session": self.emu.session(),
            "retry_policy": FAST_RETRY,
        }
        kwargs.update(overrides)
        return AgentIdentityCredential(**kwargs)

    def child_config(self, cache_path: Path) -> dict[str, Any]:
        return {
            "authority": self.emu.authority,
            "ca_bundle": self.emu.ca_bundle_path,
            "blueprint_app_id": self.blueprint_app_id,
            "agent_identity_app_id": self.agent_identity_app_id,
            "agent_user_id": self.agent_user_id,
            "key_pem": private_key_to_pem(self.key).decode("ascii"),
            "cert_pem": _cert_pem(self.cert),
            "cache_path": str(cache_path),
            "scope": GRAPH_SCOPE,
        }


def _cert_pem(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def seed(emu: Any, *, consent: Iterable[str] = ("User.Read",), upn: str = "agent@contoso.example") -> Seeded:
    key = shared_key()
    cert = self_signed_certificate(key, "entraclaw-credential-test")
    bp = emu.tenant.add_blueprint("test Blueprint", certificates=[cert])
    ai = emu.tenant.add_agent_identity(bp.app_id, "test Agent Identity")
    au = emu.tenant.add_agent_user(ai.app_id, upn, "test Agent User")
    consent = list(consent)
    if consent:
        emu.tenant.grant_consent(ai.app_id, scopes=consent)
    return Seeded(emu, key, cert, bp.app_id, bp.object_id, ai.app_id, au.object_id, au.upn)


def held_tokens(credential: Any) -> list[str]:
    """Every token value a credential holds in memory (T1, T2, T3...)."""
    return [entry.token for entry in credential._memory.snapshot().values()]


def assert_no_secrets(text: str, secrets: Iterable[str] = ()) -> None:
    """``text`` holds no JWT (or JWT prefix), no PEM private key (armour or body start) and none of
    ``secrets``."""
    assert not JWT_RE.search(text), f"JWT found in: {text[:300]}"
    assert not JWT_PREFIX_RE.search(text), f"JWT prefix found in: {text[:300]}"
    assert not PEM_KEY_RE.search(text), f"PEM private key armour found in: {text[:300]}"
    assert not PEM_DER_PREFIX_RE.search(text), f"base64 private key found in: {text[:300]}"
    for secret in secrets:
        assert secret and secret not in text, "a secret value appears in the text"
        assert secret[-40:] not in text, "the tail of a secret appears in the text"


def _encryption_switched_off(path: Any) -> Any:
    raise RuntimeError("encryption switched off by the test: it is about the plaintext cache file")


def force_plaintext_cache(monkeypatch: Any) -> None:
    """Make PersistedTokenStore take its plaintext branch here and in child processes.

    The plaintext-file tests read and corrupt the cache file directly; on a machine with a Secret
    Service (CI runs under scripts/with_secret_service.sh) msal-extensions would encrypt instead.
    The encrypted branch has its own tests (test_keystore_token_cache.py).
    """
    monkeypatch.setattr(persisted_cache, "_encrypted_persistence", _encryption_switched_off)
    monkeypatch.setenv(PLAINTEXT_CACHE_ENV, "1")


def error_texts(exc: BaseException) -> Iterator[str]:
    yield str(exc)
    yield repr(exc)
    yield json.dumps(getattr(exc, "context", {}), default=str)


def _child(config: dict[str, Any]) -> int:
    if os.environ.get(PLAINTEXT_CACHE_ENV) == "1":
        persisted_cache._encrypted_persistence = _encryption_switched_off  # type: ignore[assignment]
    session = make_session(config["ca_bundle"])
    signer = PemSigner.from_pem(config["key_pem"], certificate=config["cert_pem"].encode("ascii"))
    cache = PersistedTokenStore(config["cache_path"], allow_plaintext=True)
    credential = AgentUserCredential(
        tenant=config["authority"],
        blueprint_app_id=config["blueprint_app_id"],
        agent_identity_app_id=config["agent_identity_app_id"],
        agent_user_id=config["agent_user_id"],
        signer=signer,
        session=session,
        cache=cache,
    )
    token = credential.get_token(config["scope"])
    print(json.dumps({"sha256": hashlib.sha256(token.token.encode()).hexdigest(), "expires_on": token.expires_on}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        raise SystemExit(_child(json.loads(Path(sys.argv[2]).read_text())))
    raise SystemExit("usage: credential_helpers.py child CONFIG_JSON_PATH")


class FakeClock:
    """An injectable clock (and ``sleep``) that only moves when a test moves it.

    Starts on a whole second: due times the refresh worker computes (now + 2.5, + 5, ...) are then
    exact, and a test can set the clock to them without rounding surprises.
    """

    def __init__(self) -> None:
        self.now = float(int(time.time()))
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

