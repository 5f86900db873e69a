"""``entraclaw token [--scope SCOPE]``: get an Agent User token (or the Agent Identity's own) and describe it.

Configuration comes from :func:`entraclaw.config.load_config`: command-line
options > process environment > the ``.env`` in the state directory
(``ENTRACLAW_HOME``, else ``%LOCALAPPDATA%\\entraclaw`` on Windows, ``~/.entraclaw``
elsewhere). It needs ``ENTRACLAW_TENANT_ID``, ``ENTRACLAW_BLUEPRINT_APP_ID``,
``ENTRACLAW_AGENT_IDENTITY_ID``, ``ENTRACLAW_AGENT_USER_ID`` (or ``--upn``) and the
Blueprint key: ``ENTRACLAW_KEY_REF`` (``file:``, ``keystore:``, ``cng:``) or
``--key-file PEM``; optional ``ENTRACLAW_AUTHORITY_HOST``, ``ENTRACLAW_CA_BUNDLE``,
``ENTRACLAW_SCOPES`` (used when no ``--scope`` is given). See docs/platform.md.
``--emulator`` runs against an in-process emulator instead, provisioned like
``entraclaw demo``.

By default the token's claims are printed, never the token; ``--raw`` prints
the token alone on stdout, for piping into another program.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from entraclaw.auth.credential import AgentIdentityCredential, AgentUserCredential
from entraclaw.auth.jwt_claims import claims_summary
from entraclaw.auth.persisted_cache import PersistedTokenStore
from entraclaw.config import (
    ENV_SCOPES,
    TOKEN_REQUIRED,
    USER_TOKEN_REQUIRED,
    AgentConfig,
    KeyReference,
    load_config,
)
from entraclaw.errors import ConfigurationError

EMULATOR_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "token",
        help="get an Agent User token for a scope and print its claims (the token itself only with --raw)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--scope",
        action="append",
        help=f"resource scope; repeat for several (default: {ENV_SCOPES} from the config; with --emulator "
        f"{EMULATOR_DEFAULT_SCOPE})",
    )
    p.add_argument("--emulator", action="store_true", help="use an in-process emulator instead of a tenant")
    p.add_argument(
        "--key-file", type=Path, help="Blueprint private key (PEM); overrides ENTRACLAW_KEY_REF from the config"
    )
    p.add_argument("--upn", help="name the Agent User by UPN instead of ENTRACLAW_AGENT_USER_ID")
    p.add_argument("--app-only", action="store_true", help="the Agent Identity's own app token (Hops 1-2)")
    p.add_argument(
        "--algorithm", choices=("RS256", "PS256"), default="RS256", help="client assertion algorithm (default RS256)"
    )
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


@contextmanager
def _credential(args: argparse.Namespace) -> Iterator[tuple[AgentUserCredential | AgentIdentityCredential, Any]]:
    cache = PersistedTokenStore(args.cache, allow_plaintext=args.allow_plaintext_cache) if args.cache else None
    if args.emulator:
        from entraclaw.demo import DemoTrace, provision_emulator_tenant
        from entraclaw.emulator import Emulator

        with Emulator() as emu:
            trace = DemoTrace(echo=None)
            if args.upn and "@" in args.upn:
                # A UPN must be in a verified domain of the tenant: verify the one asked for, as an
                # administrator would in the portal, before setup creates the Agent User under it.
                emu.tenant.add_domain(args.upn.rsplit("@", 1)[1], is_verified=True)
            demo = provision_emulator_tenant(emu, trace, upn=args.upn)
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
    config = _config(args)
    if args.app_only:
        yield AgentIdentityCredential.from_config(config, cache=cache, algorithm=args.algorithm), None
    else:
        yield AgentUserCredential.from_config(config, cache=cache, algorithm=args.algorithm), None


def _config(args: argparse.Namespace) -> AgentConfig:
    """The configuration with the command line's options on top; every problem in one error."""
    overrides: dict[str, Any] = {"agent_user_upn": args.upn}
    if args.key_file is not None:
        overrides["key_ref"] = KeyReference.file(args.key_file.expanduser().absolute())
    try:
        return load_config(overrides, required=TOKEN_REQUIRED if args.app_only else USER_TOKEN_REQUIRED)
    except ConfigurationError as exc:
        raise ConfigurationError(
            exc.message,
            remedy=f"{exc.remedy} To try the flow without a tenant: entraclaw token --emulator.",
            **exc.context,
        ) from None


def _scopes(args: argparse.Namespace) -> list[str]:
    if args.scope:
        return list(args.scope)
    if args.emulator:
        # The emulator's tenant is provisioned like the demo's, which consents User.Read on Graph.
        return [EMULATOR_DEFAULT_SCOPE]
    config = _config(args)
    if config.scopes:
        return list(config.scopes)
    raise ConfigurationError(
        "No scope given.",
        remedy=f"Pass --scope (e.g. https://graph.microsoft.com/.default) or set {ENV_SCOPES} in the .env.",
    )


def run(args: argparse.Namespace) -> int:
    scopes = _scopes(args)
    with _credential(args) as (credential, _emu):
        info = credential.get_token_info(*scopes)
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
