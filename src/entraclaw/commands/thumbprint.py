"""``entraclaw thumbprint CERT``: print a certificate's x5t#S256 and SHA-1 thumbprints."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from entraclaw.auth import compute_cert_thumbprint, compute_sha1_thumbprint, load_certificate
from entraclaw.errors import ConfigurationError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "thumbprint",
        help="print a certificate's x5t#S256 (Entra) and SHA-1 (Windows store) thumbprints",
    )
    p.add_argument("certificate", type=Path, help="certificate file, DER (.cer) or PEM")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.certificate
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read certificate file {path}: {exc.strerror}.",
            remedy="Pass the path of a DER or PEM certificate file.",
            path=str(path),
        ) from exc
    der = load_certificate(data).public_bytes(serialization.Encoding.DER)
    print(f"x5t#S256 {compute_cert_thumbprint(der)}")
    print(f"sha1     {compute_sha1_thumbprint(der)}")
    return 0
