"""Setup shared by the multi-process token benchmarks (bench_multiprocess, bench_longrun).

The parent seeds one Blueprint / Agent Identity / Agent User chain in the emulator and
hands each child process a plain dict (JSON or pickle); each child builds its own
credential from it, with the project's one session rule (entraclaw.config.make_session).
"""

from __future__ import annotations

from typing import Any

__all__ = ["child_credential", "seed_chain"]


def seed_chain(emu: Any, key: Any, cert: Any) -> dict[str, Any]:
    """Blueprint (``cert``), Agent Identity, consented Agent User; what a child needs to build a credential."""
    from cryptography.hazmat.primitives import serialization

    from entraclaw.auth.certgen import private_key_to_pem

    bp = emu.tenant.add_blueprint("bench Blueprint", certificates=[cert])
    ai = emu.tenant.add_agent_identity(bp.app_id, "bench Agent Identity")
    au = emu.tenant.add_agent_user(ai.app_id, "bench@agents.example", "bench Agent User")
    emu.tenant.grant_consent(ai.app_id, scopes=["User.Read"])
    return {
        "authority": emu.authority,
        "ca_bundle": emu.ca_bundle_path,
        "blueprint_app_id": bp.app_id,
        "agent_identity_app_id": ai.app_id,
        "agent_user_id": au.object_id,
        "key_pem": private_key_to_pem(key).decode(),
        "cert_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


def child_credential(config: dict[str, Any], **kwargs: Any) -> Any:
    """The child's AgentUserCredential; ``config["cache_path"]`` None means a memory-only cache."""
    from entraclaw.auth import AgentUserCredential, PemSigner, PersistedTokenStore
    from entraclaw.config import make_session

    cache = PersistedTokenStore(config["cache_path"], allow_plaintext=True) if config["cache_path"] else None
    return AgentUserCredential(
        tenant=config["authority"],
        blueprint_app_id=config["blueprint_app_id"],
        agent_identity_app_id=config["agent_identity_app_id"],
        agent_user_id=config["agent_user_id"],
        signer=PemSigner.from_pem(config["key_pem"], certificate=config["cert_pem"].encode()),
        session=make_session(config["ca_bundle"]),
        cache=cache,
        **kwargs,
    )
