"""The ``entraclaw`` command line.

Each subcommand lives in its own module, which exposes ``register(subparsers)``;
it adds its parser and sets ``handler`` (a callable taking the parsed args and
returning an exit code). Modules are imported lazily only when listed here, so
``entraclaw --help`` stays fast and a broken optional piece cannot break the rest.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from entraclaw import __version__
from entraclaw.errors import EntraclawError

# (module path) — each module defines register(subparsers).
COMMAND_MODULES: tuple[str, ...] = (
    "entraclaw.commands.thumbprint",
    "entraclaw.commands.emulator",
    "entraclaw.commands.demo",
    "entraclaw.commands.token",
    "entraclaw.commands.setup",
    "entraclaw.commands.rotate",
    "entraclaw.commands.doctor",
    "entraclaw.commands.conformance",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="entraclaw",
        description=(
            "Act as a Microsoft Entra Agent User with a private key that never leaves this machine "
            "(TPM/CNG on Windows, the OS keystore elsewhere)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"entraclaw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return int(handler(args))
    except EntraclawError as exc:
        print(f"entraclaw: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        command = f"entraclaw {args.command}"
        resumes = " (it resumes from its journal where it stopped)" if args.command in ("setup", "rotate") else ""
        print(
            f"entraclaw: error: `{command}` was interrupted (Ctrl-C) before it finished. "
            f"Fix: Re-run `{command}`{resumes}; `entraclaw doctor` shows what is unfinished.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
