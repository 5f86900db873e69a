"""Argument parsing shared by ``entraclaw setup``, ``rotate`` and ``doctor``: endpoints and admin sign-in."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from entraclaw.errors import ConfigurationError
from entraclaw.provisioning.auth import AzureCliAuth, ClientCertificateAuth, DeviceCodeAuth, GraphAuth
from entraclaw.provisioning.context import DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_URL, Endpoints
from entraclaw.provisioning.diagnose import check_ca_bundle
from entraclaw.provisioning.graph import GraphClient

__all__ = ["add_admin_args", "add_endpoint_args", "admin_auth", "admin_given", "endpoints_from_args", "graph_client"]


def add_endpoint_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tenant (default: the device config, then ENTRACLAW_* variables)")
    g.add_argument("--tenant", help="directory (tenant) id; ENTRACLAW_TENANT_ID")
    g.add_argument("--authority-host", help=f"ENTRACLAW_AUTHORITY_HOST (default {DEFAULT_AUTHORITY_HOST})")
    g.add_argument("--graph-url", help=f"ENTRACLAW_GRAPH_URL (default {DEFAULT_GRAPH_URL})")
    g.add_argument("--ca-bundle", help="PEM bundle trusted for the authority and Graph; ENTRACLAW_CA_BUNDLE")
    g.add_argument(
        "--proxy",
        help="HTTP(S) proxy URL, or `direct` (default: HTTPS_PROXY/NO_PROXY, then the Windows system proxy); "
        "ENTRACLAW_PROXY. Trust is still --ca-bundle's",
    )


def add_admin_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    title = "admin sign-in (one of)" if required else "admin sign-in (optional: checks Graph directly)"
    g = p.add_argument_group(title)
    g.add_argument("--admin-app-id", help="provisioner app's client id (with --admin-cert/--admin-key)")
    g.add_argument("--admin-cert", help="provisioner app's certificate (PEM)")
    g.add_argument("--admin-key", help="provisioner app's private key (PEM)")
    g.add_argument("--admin-cert-thumbprint", help="Windows: SHA-1 of the provisioner certificate in CurrentUser\\My")
    g.add_argument("--device-code", action="store_true", help="sign in as a delegated admin with a device code")
    g.add_argument("--admin-client-id", help="public client id for --device-code (default: Graph Command Line Tools)")
    g.add_argument("--azure-cli", action="store_true", help="use `az account get-access-token` (see docs: limits)")


def admin_given(args: argparse.Namespace) -> bool:
    return bool(args.admin_app_id or args.device_code or args.azure_cli)


def endpoints_from_args(args: argparse.Namespace, config: dict[str, str]) -> Endpoints:
    tenant = args.tenant or config.get("ENTRACLAW_TENANT_ID")
    if not tenant:
        raise ConfigurationError(
            "No tenant given.",
            remedy="Pass --tenant <tenant id> (or set ENTRACLAW_TENANT_ID).",
            variable="ENTRACLAW_TENANT_ID",
        )
    ca_bundle = args.ca_bundle or config.get("ENTRACLAW_CA_BUNDLE") or os.environ.get("ENTRACLAW_CA_BUNDLE") or None
    check_ca_bundle(ca_bundle)
    return Endpoints(
        tenant_id=tenant,
        authority_host=(args.authority_host or config.get("ENTRACLAW_AUTHORITY_HOST") or DEFAULT_AUTHORITY_HOST),
        graph_url=(args.graph_url or config.get("ENTRACLAW_GRAPH_URL") or DEFAULT_GRAPH_URL).rstrip("/"),
        ca_bundle=ca_bundle,
        proxy=args.proxy or config.get("ENTRACLAW_PROXY") or os.environ.get("ENTRACLAW_PROXY") or None,
    )


def _to_stderr(line: str) -> None:
    # The sign-in prompt is for the person at the terminal: on stderr it never mixes into --json or a pipe.
    print(line, file=sys.stderr, flush=True)


def admin_auth(
    args: argparse.Namespace, endpoints: Endpoints, *, echo: Callable[[str], None] = _to_stderr
) -> GraphAuth:
    chosen = [
        name
        for name, on in (
            ("--admin-app-id", bool(args.admin_app_id)),
            ("--device-code", args.device_code),
            ("--azure-cli", args.azure_cli),
        )
        if on
    ]
    if len(chosen) != 1:
        raise ConfigurationError(
            "Give exactly one admin sign-in: --admin-app-id with --admin-cert/--admin-key (or "
            f"--admin-cert-thumbprint), --device-code, or --azure-cli (got {', '.join(chosen) or 'none'}).",
            remedy="`entraclaw emulator serve` prints admin_app_id, admin_cert and admin_key for its tenant.",
        )
    if args.admin_app_id:
        if args.admin_cert_thumbprint:
            from entraclaw import cng

            handle = cng.CngKeyHandle(args.admin_cert_thumbprint)
            return ClientCertificateAuth(
                authority=endpoints.authority, client_id=args.admin_app_id, signer=handle, session=endpoints.session()
            )
        if not (args.admin_cert and args.admin_key):
            raise ConfigurationError(
                f"--admin-app-id {args.admin_app_id} needs --admin-cert and --admin-key (or --admin-cert-thumbprint).",
                remedy="Pass the provisioner app's certificate and PEM key files.",
            )
        return ClientCertificateAuth.from_files(
            authority=endpoints.authority,
            client_id=args.admin_app_id,
            cert_path=args.admin_cert,
            key_path=args.admin_key,
            session=endpoints.session(),
        )
    if args.device_code:
        kwargs = {"client_id": args.admin_client_id} if args.admin_client_id else {}
        return DeviceCodeAuth(
            authority=endpoints.authority,
            session=endpoints.session(),
            echo=echo,
            microsoft_authority=endpoints.is_microsoft,
            **kwargs,
        )
    return AzureCliAuth(tenant=endpoints.tenant_id)


def graph_client(endpoints: Endpoints, auth: GraphAuth) -> GraphClient:
    return GraphClient(endpoints.graph_url, auth, session=endpoints.session())
