"""``entraclaw emulator serve``: run the local Entra + Graph emulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
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
    serve.set_defaults(handler=serve_command)
    p.set_defaults(handler=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def serve_command(args: argparse.Namespace) -> int:
    from entraclaw.emulator import Emulator

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
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _on_signal)
    emu.start()
    try:
        ca_path = emu.ca_bundle_path
        if args.ca_out is not None:
            try:
                args.ca_out.write_bytes(emu.ca_cert_pem)
            except OSError as exc:
                raise EmulatorError(
                    f"Cannot write the CA certificate to {args.ca_out}: {exc.strerror}.",
                    remedy="Pass a writable --ca-out path.",
                    path=str(args.ca_out),
                ) from exc
            ca_path = str(args.ca_out)
        if args.state is not None:
            emu.save_state()
        print(f"base_url       {emu.base_url}")
        print(f"tenant_id      {emu.tenant_id}")
        print(f"ca_path        {ca_path}")
        print(f"authority      {emu.authority}")
        print(f"token_endpoint {emu.token_endpoint}")
        print(f"graph_url      {emu.graph_url}")
        if args.state is not None:
            print(f"state          {args.state}")
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
