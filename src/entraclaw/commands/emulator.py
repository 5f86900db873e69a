"""``entraclaw emulator serve``: run the local Entra + Graph emulator until Ctrl-C or SIGTERM.

``serve`` prints ``key  value`` lines a second process reads: where the emulator is
(authority, tenant_id, graph_url), what to trust (ca_bundle, stable at ``<state>.ca.pem``
with ``--state``, like the port) and how to sign in as the admin (admin_app_id with admin_cert/admin_key,
or the device-code flow of admin_user through admin_client_id), then ``setup``: an ``entraclaw setup``
command line to paste into any shell (paths are absolute). ``approve CODE`` approves
(or ``--deny`` declines) a device code when ``serve`` runs without ``--auto-approve``.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from entraclaw.errors import EmulatorError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "emulator", help="run the local Entra + Graph emulator (HTTPS on loopback, its own CA)"
    )
    actions = p.add_subparsers(dest="emulator_action", metavar="ACTION")
    serve = actions.add_parser("serve", help="serve until Ctrl-C / SIGTERM; prints base URL, tenant id and CA path")
    serve.add_argument("--port", type=int, default=0, help="TCP port (default 0: a free port)")
    serve.add_argument("--host", default="127.0.0.1", help="loopback address to bind (127.0.0.1, ::1 or localhost)")
    serve.add_argument(
        "--state",
        type=Path,
        default=None,
        help="JSON state file: loaded at start if it exists, saved at start and at exit",
    )
    serve.add_argument("--tenant-id", default=None, help="tenant GUID for a new state (default: random)")
    serve.add_argument("--ca-out", type=Path, default=None, help="also write the CA certificate (PEM) here")
    serve.add_argument("--token-lifetime", type=int, default=None, help="access token lifetime in seconds")
    serve.add_argument(
        "--auto-approve",
        action="store_true",
        help="approve device codes for the admin user as soon as they are issued",
    )
    serve.add_argument(
        "--propagation-delay",
        type=float,
        default=0.0,
        help="seconds before an object created over Graph can be used (models Entra's replication lag)",
    )
    serve.add_argument(
        "--permission-delay",
        type=float,
        default=0.0,
        help="seconds before a consent or app-role change made over Graph reaches tokens (Entra: 30-120 s)",
    )
    serve.add_argument(
        "--max-key-credentials",
        type=int,
        default=None,
        help="certificates an application may hold before Graph answers Directory_ResourceSizeExceeded "
        "(default 600)",
    )
    serve.add_argument(
        "--max-certificate-lifetime-days",
        type=float,
        default=None,
        help="app management policy: refuse certificates that live longer (asymmetricKeyLifetime)",
    )
    serve.set_defaults(handler=serve_command)
    approve = actions.add_parser("approve", help="approve (or --deny) a device code shown by a client")
    approve.add_argument("user_code", metavar="CODE", help="the user code the client printed")
    approve.add_argument("--url", required=True, help="the emulator's base_url (printed by serve)")
    approve.add_argument("--ca-bundle", required=True, type=Path, help="the emulator's ca_bundle (printed by serve)")
    approve.add_argument("--username", default=None, help="sign in as this user (default: the admin)")
    approve.add_argument("--deny", action="store_true", help="decline instead of approving")
    approve.set_defaults(handler=approve_command)
    p.set_defaults(handler=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _how_to_authenticate(auto_approve: bool, base_url: str, ca_bundle: str) -> str:
    approve = shlex.join(["entraclaw", "emulator", "approve", "CODE", "--url", base_url, "--ca-bundle", ca_bundle])
    device = "auto-approved" if auto_approve else f"approve it with `{approve}`"
    return (
        "client credentials as admin_app_id with a certificate assertion signed by admin_key (admin_cert); "
        f"or the device code flow as admin_user through admin_client_id ({device})"
    )


def _absolute(path: str | Path) -> str:
    return str(Path(path).absolute())


def _apply_limits(emu: Any, args: argparse.Namespace) -> None:
    from entraclaw.emulator.graph.app_limits import AppLimits

    limits = AppLimits()
    if args.max_key_credentials is not None:
        if args.max_key_credentials < 1:
            raise EmulatorError(
                f"--max-key-credentials {args.max_key_credentials} is below 1.",
                remedy="Pass `entraclaw emulator serve --max-key-credentials` a count of 1 or more.",
            )
        limits.max_key_credentials = args.max_key_credentials
    if args.max_certificate_lifetime_days is not None:
        if not 0 < args.max_certificate_lifetime_days <= 36500:
            raise EmulatorError(
                f"--max-certificate-lifetime-days {args.max_certificate_lifetime_days} is outside (0, 36500].",
                remedy="Pass `entraclaw emulator serve --max-certificate-lifetime-days` a number of days, e.g. 90.",
            )
        limits.max_certificate_lifetime_days = args.max_certificate_lifetime_days
    emu.graph_service.app_limits = limits


def serve_command(args: argparse.Namespace) -> int:
    from entraclaw.emulator import Emulator
    from entraclaw.emulator.state import file_error

    if args.host not in ("127.0.0.1", "::1", "localhost"):
        raise EmulatorError(
            f"Host {args.host} is not a loopback address; the emulator only serves loopback.",
            remedy="Use --host 127.0.0.1, ::1 or localhost.",
            host=args.host,
        )
    if not 0 <= args.port <= 65535:
        raise EmulatorError(f"Port {args.port} is outside 0..65535.", remedy="Pass --port 0 for a free port.")
    emu = Emulator(
        state_file=args.state,
        host=args.host,
        port=args.port,
        tenant_id=args.tenant_id,
        token_lifetime=args.token_lifetime,
        propagation_delay=args.propagation_delay,
        permission_delay=args.permission_delay,
    )
    _apply_limits(emu, args)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    emu.start()
    previous = signal.signal(signal.SIGTERM, _on_signal)
    try:
        ca_path = emu.ca_bundle_path
        if args.ca_out is not None:
            try:
                args.ca_out.write_bytes(emu.ca_cert_pem)
            except OSError as exc:
                raise file_error(
                    "write the CA certificate to", args.ca_out, exc, "Pass a writable --ca-out path."
                ) from exc
            ca_path = str(args.ca_out)
        admin = emu.admin
        emu.auto_approve = bool(args.auto_approve)
        if args.state is not None:
            emu.save_state()
        # Absolute, so what is printed can be pasted into a shell in any directory.
        ca_bundle, admin_cert, admin_key = (_absolute(p) for p in (emu.ca_bundle_path, admin.cert_path, admin.key_path))
        lines = [
            ("base_url", emu.base_url),
            ("tenant_id", emu.tenant_id),
            ("ca_path", _absolute(ca_path)),
            ("ca_bundle", ca_bundle),
            ("authority", emu.authority),
            ("token_endpoint", emu.token_endpoint),
            ("graph_url", emu.graph_url),
            ("admin_app_id", admin.app_id),
            ("admin_cert", admin_cert),
            ("admin_key", admin_key),
            ("admin_user", admin.user_upn),
            ("admin_user_id", admin.user_id),
            ("admin_client_id", admin.client_id),
            ("admin_auth", _how_to_authenticate(bool(args.auto_approve), emu.base_url, ca_bundle)),
            ("setup", shlex.join([
                "entraclaw", "setup", "--tenant", emu.tenant_id, "--authority-host", emu.base_url,
                "--graph-url", emu.graph_url, "--ca-bundle", ca_bundle, "--admin-app-id", admin.app_id,
                "--admin-cert", admin_cert, "--admin-key", admin_key, "--sponsor", admin.user_upn,
            ])),
        ]
        if args.propagation_delay:
            lines.append(("propagation_delay", str(args.propagation_delay)))
        if args.permission_delay:
            lines.append(("permission_delay", str(args.permission_delay)))
        if args.state is not None:
            lines.append(("state", _absolute(args.state)))
        for key, value in lines:
            print(f"{key:<17}{value}")
        print("ready (Ctrl-C or SIGTERM stops)", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        emu.stop()
        signal.signal(signal.SIGTERM, previous)
    print("stopped", file=sys.stderr)
    return 0


def approve_command(args: argparse.Namespace) -> int:
    import requests

    from entraclaw.config import make_session

    try:
        # Trust exactly the emulator's CA: REQUESTS_CA_BUNDLE must not widen or replace it.
        with make_session(args.ca_bundle) as session:
            response = session.post(
                f"{args.url.rstrip('/')}/devicelogin",
                data={
                    "user_code": args.user_code,
                    "action": "deny" if args.deny else "approve",
                    **({"username": args.username} if args.username else {}),
                },
                timeout=30,
            )
    except (requests.RequestException, OSError) as exc:
        raise EmulatorError(
            f"Cannot reach the emulator at {args.url}: {type(exc).__name__}.",
            remedy="Check --url and --ca-bundle against what `entraclaw emulator serve` printed.",
            url=args.url,
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200:
        raise EmulatorError(
            f"The emulator refused device code {args.user_code}: {body.get('error_description', response.status_code)}",
            remedy="Start the sign-in again in the client and pass the new code to `entraclaw emulator approve`.",
            user_code=args.user_code,
        )
    print(f"{'declined' if args.deny else 'approved'} {args.user_code}")
    return 0
