"""Key and secret stores: one interface, a backend per OS, never a silent plaintext fallback.

Which store each OS gets from :func:`default_keystore`:

============  ===========================================================================
Windows       Credential Manager (keyring) for values up to 2,560 bytes as UTF-16;
              larger ones (any PEM private key) in a DPAPI-protected file,
              ``<state dir>/keys/<entry>.dpapi``. The Blueprint key itself normally
              stays in CNG (TPM / software KSP): :class:`CngSentinelStore` records its
              thumbprint, and the config's ``cng:`` key reference needs no store at all.
macOS         the login Keychain (keyring).
Linux         the Secret Service over D-Bus (gnome-keyring, KWallet) (keyring).
============  ===========================================================================

:class:`MemoryStore` exists for unit tests and is never chosen here.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

from entraclaw.errors import KeystoreError
from entraclaw.keystore.base import SERVICE, EntryInfo, KeyStore
from entraclaw.keystore.cng_sentinel import CngSentinelStore, format_reference, parse_reference
from entraclaw.keystore.dpapi_file import DpapiFileStore
from entraclaw.keystore.keyring_store import CRED_MAX_CREDENTIAL_BLOB_SIZE, KeyringStore, credential_manager_size
from entraclaw.keystore.memory import MemoryStore

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "CRED_MAX_CREDENTIAL_BLOB_SIZE",
    "SERVICE",
    "CngSentinelStore",
    "DpapiFileStore",
    "EntryInfo",
    "KeyStore",
    "KeyringStore",
    "MemoryStore",
    "blueprint_key_entry",
    "credential_manager_size",
    "default_keystore",
    "format_reference",
    "load_blueprint_pem",
    "parse_reference",
    "store_blueprint_pem",
]

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def default_keystore(*, platform: str | None = None) -> KeyStore[str]:
    """The secret store for this OS (see the module docstring); KeystoreError if the OS offers none."""
    if (platform or sys.platform) == "win32":
        return KeyringStore(size_limit=CRED_MAX_CREDENTIAL_BLOB_SIZE, overflow=DpapiFileStore())
    return KeyringStore()


def blueprint_key_entry(blueprint_app_id: str, sha1: str) -> str:
    """``blueprint-key-<app id>-<SHA1>``: one entry per key, so a rotation never overwrites the key in use."""
    from entraclaw.auth.thumbprint import validate_sha1_thumbprint

    app_id = blueprint_app_id.strip() if isinstance(blueprint_app_id, str) else ""
    if not _GUID.fullmatch(app_id):
        raise KeystoreError(
            f"Blueprint app id {str(blueprint_app_id)[:40]!r} is not a GUID.",
            remedy="Pass the Blueprint's appId (ENTRACLAW_BLUEPRINT_APP_ID), e.g. 1c1b0b5e-....",
            service=SERVICE,
        )
    thumb = validate_sha1_thumbprint(sha1, source="Blueprint certificate SHA-1 thumbprint")
    return f"blueprint-key-{app_id.lower()}-{thumb}"


def store_blueprint_pem(
    private_key_pem: str | bytes,
    *,
    blueprint_app_id: str,
    certificate: bytes | str | x509.Certificate,
    store: KeyStore[str] | None = None,
    include_certificate: bool = True,
) -> str:
    """Put the Blueprint's PEM key into ``store`` (default: :func:`default_keystore`); returns the entry name.

    The entry name comes from the certificate's SHA-1, and the key must be the
    certificate's: a mismatch is refused before anything is written, so an
    entry never names a certificate its key cannot sign for. With
    ``include_certificate`` (default) the certificate PEM follows the key in the
    entry, so the signer built from it (``entraclaw.config.open_signer``) knows
    its certificate and checks the configured thumbprint against it.
    """
    from cryptography.hazmat.primitives import serialization

    from entraclaw.auth.signer import load_certificate
    from entraclaw.auth.thumbprint import compute_sha1_thumbprint

    cert = load_certificate(certificate)
    sha1 = compute_sha1_thumbprint(cert.public_bytes(serialization.Encoding.DER))
    entry = blueprint_key_entry(blueprint_app_id, sha1)
    pem_text = private_key_pem.decode("ascii") if isinstance(private_key_pem, bytes) else private_key_pem
    try:
        key = serialization.load_pem_private_key(pem_text.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise KeystoreError(
            f"The key for entry {entry!r} is not an unencrypted PEM private key ({type(exc).__name__}).",
            remedy="Pass the PKCS#8 PEM that setup generated (-----BEGIN PRIVATE KEY-----), without a passphrase.",
            service=SERVICE,
            entry=entry,
        ) from None
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise KeystoreError(
            f"The private key does not belong to certificate {sha1} (entry {entry!r}); nothing was stored.",
            remedy="Pass the key and the certificate generated together (entraclaw.auth.certgen).",
            service=SERVICE,
            entry=entry,
        )
    value = pem_text if pem_text.endswith("\n") else pem_text + "\n"
    if include_certificate:
        value += cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    target = store if store is not None else default_keystore()
    target.put(entry, value)
    return entry


def load_blueprint_pem(entry: str, store: KeyStore[str] | None = None) -> str:
    """The PEM stored under ``entry`` (ENTRACLAW_KEY_REF ``keystore:<entry>``), or KeystoreError naming it."""
    source = store if store is not None else default_keystore()
    pem = source.get(entry)
    if pem is None:
        info = source.describe(entry)
        raise KeystoreError(
            f"Keystore entry {entry!r} does not exist in {info.location}.",
            remedy=(
                "Store the Blueprint key again with entraclaw.keystore.store_blueprint_pem (what `entraclaw setup` "
                "does), or point ENTRACLAW_KEY_REF at the PEM file as file:<path>."
            ),
            service=SERVICE,
            entry=entry,
            backend=source.name,
        )
    return pem
