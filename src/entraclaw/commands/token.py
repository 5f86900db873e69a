"""``entraclaw token --scope SCOPE``: get an Agent User token (or the Agent Identity's own) and describe it.

Configuration (a real tenant) comes from the environment, as written by setup:
``ENTRACLAW_TENANT_ID``, ``ENTRACLAW_BLUEPRINT_APP_ID``,
``ENTRACLAW_AGENT_IDENTITY_ID``, ``ENTRACLAW_AGENT_USER_ID``,
``ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT`` and optionally
``ENTRACLAW_AUTHORITY_HOST``. The Blueprint key is a PEM file (``--key-file``)
or, on Windows, the CNG key of the certificate with that thumbprint.
``--emulator`` runs against an in-process emulator instead, provisioned like
``entraclaw demo``.

By default the token's claims are printed, never the token; ``--raw`` prints
the token alone on stdout, for piping into another program.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from entraclaw.auth.credential import AgentIdentityCredential, AgentUserCredential
from entraclaw.auth.jwt_claims import claims_summary
from entraclaw.auth.persisted_cache import PersistedTokenStore
from entraclaw.auth.signer import PemSigner, Signer, SupportsSigner
from entraclaw.auth.thumbprint import compute_cert_thumbprint, validate_sha1_thumbprint, validate_x5t_s256
from entraclaw.errors import ConfigurationError, InvalidThumbprintError

ENV_TENANT = "ENTRACLAW_TENANT_ID"
ENV_BLUEPRINT = "ENTRACLAW_BLUEPRINT_APP_ID"
ENV_AGENT_IDENTITY = "ENTRACLAW_AGENT_IDENTITY_ID"
ENV_AGENT_USER = "ENTRACLAW_AGENT_USER_ID"
ENV_THUMBPRINT = "ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT"
ENV_AUTHORITY_HOST = "ENTRACLAW_AUTHORITY_HOST"
ENV_KEY_PASSWORD = "ENTRACLAW_KEY_PASSWORD"  # noqa: S105 - the variable's name, not a password


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "token",
        help="get an Agent User token for a scope and print its claims (the token itself only with --raw)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scope", action="append", required=True, help="resource scope; repeat for several")
    p.add_argument("--emulator", action="store_true", help="use an in-process emulator instead of a tenant")
    p.add_argument("--key-file", type=Path, help="Blueprint private key (PEM); on Windows the CNG store is the default")
    p.add_argument("--upn", help="name the Agent User by UPN instead of ENTRACLAW_AGENT_USER_ID")
    p.add_argument("--app-only", action="store_true", help="the Agent Identity's own app token (Hops 1-2)")
    p.add_argument("--algorithm", choices=("RS256", "PS256"), default="RS256")
    p.add_argument("--cache", type=Path, help="share tokens with other processes through this cache file")
    p.add_argument(
        "--allow-plaintext-cache",
        action="store_true",
        help="allow --cache to be an unencrypted 0600 file where the OS has no secret store",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the claims summary as JSON")
    out.add_argument("--raw", action="store_true", help="print only the raw token on stdout (for piping)")
    p.set_defaults(handler=run)


def _env(name: str, *, required: bool = True) -> str | None:
    value = os.environ.get(name, "").strip()
    if not value and required:
        raise ConfigurationError(
            f"{name} is not set.",
            remedy=f"Set {name} (setup writes it to .env), or use --emulator to try the flow locally.",
            variable=name,
        )
    return value or None


def _signer_from_config(key_file: Path | None, thumbprint: str) -> tuple[Signer | SupportsSigner, str | None]:
    """The Blueprint key and, for a PEM key, the x5t#S256 to put in the assertion header."""
    if key_file is not None:
        try:
            pem = key_file.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read the key file {key_file}: {exc.strerror}.",
                remedy="Pass --key-file with the Blueprint's PEM private key.",
                path=str(key_file),
            ) from exc
        x5t = validate_x5t_s256(thumbprint, source=ENV_THUMBPRINT)
        return PemSigner.from_pem(pem, password=os.environ.get(ENV_KEY_PASSWORD) or None), x5t
    if sys.platform != "win32":
        raise ConfigurationError(
            "No Blueprint key given.",
            remedy="Pass --key-file PATH (PEM); the CNG key store is used only on Windows.",
        )
    from entraclaw import cng

    try:
        sha1 = validate_sha1_thumbprint(thumbprint, source=ENV_THUMBPRINT)
    except InvalidThumbprintError:
        # An x5t#S256 in .env: find the CNG certificate it names.
        x5t = validate_x5t_s256(thumbprint, source=ENV_THUMBPRINT)
        for listed in cng.list_certificates():
            if compute_cert_thumbprint(listed.certificate.public_bytes(serialization.Encoding.DER)) == x5t:
                return cng.CngKeyHandle(listed.thumbprint), None
        raise ConfigurationError(
            f"No certificate with x5t#S256 {x5t} is in Cert:\\CurrentUser\\My.",
            remedy="Check ENTRACLAW_BLUEPRINT_CERT_THUMBPRINT, or pass --key-file with a PEM key.",
            thumbprint=x5t,
        ) from None
    return cng.CngKeyHandle(sha1), None


@contextmanager
def _credential(args: argparse.Namespace) -> Iterator[tuple[AgentUserCredential | AgentIdentityCredential, Any]]:
    cache = PersistedTokenStore(args.cache, allow_plaintext=args.allow_plaintext_cache) if args.cache else None
    if args.emulator:
        from entraclaw.demo import DemoTrace, provision_emulator_tenant
        from entraclaw.emulator import Emulator

        with Emulator() as emu:
            trace = DemoTrace(echo=None)
            upn = args.upn or "agent-user@entraclaw-demo.example"
            demo = provision_emulator_tenant(emu, trace, upn=upn)
            try:
                common: dict[str, Any] = {
                    "tenant": demo.authority,
                    "blueprint_app_id": demo.blueprint_app_id,
                    "agent_identity_app_id": demo.agent_identity_app_id,
                    "signer": demo.key.signer,
                    "algorithm": args.algorithm,
                    "session": emu.session(),
                    "cache": cache,
                }
                if args.app_only:
                    emu.tenant.grant_app_roles(
                        demo.agent_identity_app_id, "https://graph.microsoft.com", ["User.Read.All"]
                    )
                    yield AgentIdentityCredential(**common), emu
                elif args.upn:
                    yield AgentUserCredential(agent_user_upn=demo.agent_user_upn, **common), emu
                else:
                    yield AgentUserCredential(agent_user_id=demo.agent_user_id, **common), emu
            finally:
                if demo.key.cleanup is not None:
                    demo.key.cleanup()
        return
    tenant = _env(ENV_TENANT)
    thumbprint = _env(ENV_THUMBPRINT)
    assert tenant is not None and thumbprint is not None
    signer, x5t = _signer_from_config(args.key_file, thumbprint)
    common = {
        "tenant": tenant,
        "blueprint_app_id": _env(ENV_BLUEPRINT),
        "agent_identity_app_id": _env(ENV_AGENT_IDENTITY),
        "signer": signer,
        "cert_thumbprint": x5t,
        "algorithm": args.algorithm,
        "authority_host": _env(ENV_AUTHORITY_HOST, required=False) or "https://login.microsoftonline.com",
        "cache": cache,
    }
    if args.app_only:
        yield AgentIdentityCredential(**common), None
    elif args.upn:
        yield AgentUserCredential(agent_user_upn=args.upn, **common), None
    else:
        yield AgentUserCredential(agent_user_id=_env(ENV_AGENT_USER), **common), None


def run(args: argparse.Namespace) -> int:
    with _credential(args) as (credential, _emu):
        info = credential.get_token_info(*args.scope)
    if args.raw:
        sys.stdout.write(info.token + "\n")
        return 0
    summary = claims_summary(info.token)
    summary["expires_on"] = info.expires_on
    summary["refresh_on"] = info.refresh_on
    summary["token_type"] = info.token_type
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        for name, value in summary.items():
            text = " ".join(value) if isinstance(value, list) else value
            print(f"{name:<11} {text}")
        print("(the token itself is not printed; use --raw to pipe it)")
    return 0
