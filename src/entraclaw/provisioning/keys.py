"""The Blueprint key of this device: create, open, delete, enumerate.

Key references use the config's one format (``ENTRACLAW_KEY_REF``):

- ``cng:CurrentUser/<SHA1>``: Windows. The key is made by
  :func:`entraclaw.cng.create_certificate`: TPM first (Microsoft Platform
  Crypto Provider), the software KSP when the TPM cannot, with the reason kept
  so setup prints a visible warning and records ``software_ksp``. Non-exportable.
- ``keystore:<entry>``: elsewhere. An RSA-2048 key made here, stored as PEM
  (key, then its certificate) in the OS keystore (:mod:`entraclaw.keystore`)
  under ``blueprint-key-<blueprint app id>-<SHA1>``, one entry per key, so a
  rotation never overwrites the key still in use.
- ``tpm2:<path>``: Linux with a usable TPM (``--key-storage tpm``, or ``auto``
  when the TPM answers): a non-exportable RSA-2048 key made in the TPM; the file
  ``keys/blueprint-key-<app id>-<SHA1>.tpm2`` holds only its TPM-wrapped blobs
  and certificate (:mod:`entraclaw.tpm2`).
- ``file:<path>``: an explicit owner-only PEM file (``--key-storage file``:
  CI, containers without a keystore or TPM). Never chosen automatically.

``auto`` on Linux: the TPM if it answers, else the Secret Service, else an
error naming both fixes and ``--key-storage file``.

Certificate subjects are ``CN=entraclaw-blueprint-<blueprint app id>``, which is
how doctor finds this product's certificates in the Windows store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from entraclaw.auth.certgen import generate_rsa_key, private_key_to_pem, self_signed_certificate
from entraclaw.auth.signer import PemSigner, Signer
from entraclaw.auth.thumbprint import compute_cert_thumbprint, compute_sha1_thumbprint
from entraclaw.errors import ConfigurationError, EntraclawError, KeystoreError, SigningError, TpmRequiredError
from entraclaw.platform import paths
from entraclaw.provisioning.state import atomic_write

__all__ = [
    "DeviceKey",
    "KeyStorage",
    "blueprint_key_entry",
    "certificate_subject",
    "create_device_key",
    "delete_device_key",
    "key_exists",
    "local_key_refs",
    "open_device_key",
    "require_machine_storage",
    "resolve_storage",
    "unclaimed_key_refs",
]

logger = logging.getLogger(__name__)

KeyStorage = Literal["auto", "cng", "keystore", "file", "tpm"]
CERT_PREFIX = "entraclaw-blueprint-"


def certificate_subject(blueprint_app_id: str) -> str:
    return f"{CERT_PREFIX}{blueprint_app_id}"


def blueprint_key_entry(blueprint_app_id: str, sha1: str) -> str:
    """The entry name agreed in CONTRACTS, from :mod:`entraclaw.keystore` (also the key file's name)."""
    from entraclaw.keystore import blueprint_key_entry as shared

    return shared(blueprint_app_id, sha1)


@dataclass
class DeviceKey:
    key_ref: str
    provider: str  # "tpm" | "software_ksp" | "pem"
    signer: Signer
    certificate: x509.Certificate
    warning: str | None = None

    @property
    def sha1(self) -> str:
        return compute_sha1_thumbprint(self.certificate.public_bytes(serialization.Encoding.DER))

    @property
    def x5t_s256(self) -> str:
        return compute_cert_thumbprint(self.certificate.public_bytes(serialization.Encoding.DER))

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def close(self) -> None:
        self.signer.close()


def _default_keystore() -> object:
    from entraclaw.keystore import default_keystore

    return default_keystore()


def _native_cng() -> bool:
    from entraclaw import cng

    return cng.native_available()


def resolve_storage(storage: KeyStorage) -> Literal["cng", "keystore", "file", "tpm"]:
    if storage != "auto":
        return storage
    if sys.platform == "win32" and _native_cng():
        return "cng"
    if sys.platform.startswith("linux"):
        return _linux_auto()
    return "keystore"


def require_machine_storage(storage: KeyStorage) -> Literal["cng"]:
    """A machine key (``setup --machine``) is a Windows CNG key: the storage must resolve to it."""
    where = resolve_storage(storage)
    if where != "cng":
        raise ConfigurationError(
            f"--machine makes a Windows machine key (CNG); key storage {storage!r} resolves to {where!r} here.",
            remedy="On Windows run `entraclaw setup --machine --account <account>` with key storage auto or cng; "
            "elsewhere run `entraclaw setup` as the account the agent runs as (e.g. --key-storage tpm).",
        )
    return where


def _linux_auto() -> Literal["keystore", "tpm"]:
    """The TPM if it answers, else the Secret Service, else an error naming both fixes and the file option."""
    from entraclaw.tpm2 import probe, tcti_config

    tpm_problem = probe()
    if tpm_problem is None:
        return "tpm"
    if Path("/dev/tpmrm0").exists() or os.environ.get("ENTRACLAW_TPM2_TCTI"):
        # A TPM is there but unusable: say why the key will not be in it (as Windows does for its fallback).
        logger.warning("warning: the TPM is not used for the Blueprint key: %s", tpm_problem)
    try:
        _default_keystore()
    except KeystoreError as exc:
        raise ConfigurationError(
            f"No protected place for the Blueprint key on this machine: no usable TPM ({tpm_problem}) and no OS "
            f"keyring ({exc.message})",
            remedy=(
                f"Make the TPM usable (enable it; add this user to the `tss` group for /dev/tpmrm0; or set "
                f"ENTRACLAW_TPM2_TCTI, now {tcti_config()}) and run `entraclaw setup --key-storage tpm`; or start a "
                "Secret Service (gnome-keyring in a D-Bus session; for a service, scripts/with_state_keyring.sh keeps "
                "one in the state directory: docs/headless.md) and run `entraclaw setup --key-storage keystore`; "
                "or keep an owner-only PEM file with `entraclaw setup --key-storage file` (protected by file "
                "permissions only)."
            ),
        ) from None
    return "keystore"


def _pem_bundle(key_pem: bytes, cert: x509.Certificate) -> bytes:
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def _signer_from_bundle(bundle: bytes, where: str) -> tuple[PemSigner, x509.Certificate]:
    marker = b"-----BEGIN CERTIFICATE-----"
    start = bundle.find(marker)
    if start < 0:
        raise ConfigurationError(
            f"The Blueprint key at {where} holds no certificate next to the key.",
            remedy="Run `entraclaw rotate --force` with admin credentials to make a new key and register it.",
            path=where,
        )
    try:
        certificate = x509.load_pem_x509_certificate(bundle[start:])
    except ValueError:
        raise ConfigurationError(
            f"The certificate stored with the Blueprint key at {where} is garbled or truncated.",
            remedy="Run `entraclaw rotate --force` with admin credentials to make a new key and register it.",
            path=where,
        ) from None
    return PemSigner.from_pem(bundle[:start], certificate=certificate), certificate


def _create_cng(cng: Any, subject: str, days: int, app_id: str, location: str = "CurrentUser") -> Any:
    """The TPM or nothing: what ``auto`` would have fallen back from becomes the error."""
    try:
        return cng.create_certificate(subject, provider="tpm", days=days, location=location)
    except SigningError as exc:
        raise TpmRequiredError(
            f"The TPM is required for the Blueprint key of {app_id} and could not hold it: {exc.message} "
            "No software key was made.",
            reason=exc.message,
            hresult=exc.context.get("hresult"),
            api=exc.context.get("api"),
        ) from exc


def create_device_key(
    blueprint_app_id: str,
    storage: KeyStorage,
    *,
    state_dir: Path,
    keystore: object | None = None,
    days: int = 365,
    require_tpm: bool | None = None,
    machine: bool = False,
) -> DeviceKey:
    """A new key + self-signed certificate, stored where ``storage`` says.

    ``require_tpm`` (default: ENTRACLAW_REQUIRE_TPM) turns the software fallback into TpmRequiredError.
    ``machine``: a Windows machine key in LocalMachine\\My (``setup --machine``; CNG storage only).
    """
    where = require_machine_storage(storage) if machine else resolve_storage(storage)
    location = "LocalMachine" if machine else "CurrentUser"
    subject = certificate_subject(blueprint_app_id)
    if require_tpm is None:
        require_tpm = os.environ.get("ENTRACLAW_REQUIRE_TPM", "").strip().lower() in ("1", "true", "yes", "on")
    if require_tpm and where not in ("cng", "tpm"):
        raise TpmRequiredError(
            f"The TPM is required for the Blueprint key of {blueprint_app_id}, but key storage {storage!r} resolves to "
            f"{where!r}, which is not a TPM; no key was made.",
            reason=f"key storage {where}",
        )
    if where == "tpm":
        return _create_tpm_key(blueprint_app_id, subject, state_dir=state_dir, days=days)
    if where == "cng":
        from entraclaw import cng

        made = (
            _create_cng(cng, subject, days, blueprint_app_id, location)
            if require_tpm
            else cng.create_certificate(subject, provider="auto", days=days, location=location)
        )
        handle = cng.CngKeyHandle(made.thumbprint, location)
        warning = None
        if not made.hardware:
            warning = (
                f"warning: the TPM could not hold the Blueprint key ({made.tpm_fallback_reason or 'no TPM'}); "
                f"it is in the Microsoft Software Key Storage Provider (non-exportable, not hardware-bound)."
            )
        return DeviceKey(
            key_ref=f"cng:{location}/{made.thumbprint}",
            provider="tpm" if made.hardware else "software_ksp",
            signer=handle.as_signer(),
            certificate=made.certificate,
            warning=warning,
        )
    key = generate_rsa_key()
    cert = self_signed_certificate(key, subject, days=days)
    sha1 = compute_sha1_thumbprint(cert.public_bytes(serialization.Encoding.DER))
    entry = blueprint_key_entry(blueprint_app_id, sha1)
    bundle = _pem_bundle(private_key_to_pem(key), cert)
    if where == "file":
        path = paths.keys_dir(state_dir) / f"{entry}.pem"
        atomic_write(path, bundle)
        ref = f"file:{path}"
    else:
        store = keystore if keystore is not None else _default_keystore()
        store.put(entry, bundle.decode("ascii"))  # type: ignore[attr-defined]
        ref = f"keystore:{entry}"
    return DeviceKey(key_ref=ref, provider="pem", signer=PemSigner(key, cert), certificate=cert)


def _create_tpm_key(blueprint_app_id: str, subject: str, *, state_dir: Path, days: int) -> DeviceKey:
    from entraclaw.tpm2.keyfile import write_key_file
    from entraclaw.tpm2.provision import make_key
    from entraclaw.tpm2.signer import Tpm2Signer

    made = make_key(subject, days=days)
    # Named after the certificate, like the PEM files: the TPM holds nothing, so a run killed
    # before this write loses nothing but a key nobody has seen.
    entry = blueprint_key_entry(blueprint_app_id, compute_sha1_thumbprint(made.certificate_der))
    path = paths.keys_dir(state_dir) / f"{entry}.tpm2"
    write_key_file(path, made)
    signer = Tpm2Signer(path)
    return DeviceKey(key_ref=f"tpm2:{path}", provider="tpm", signer=signer, certificate=signer.certificate)


def _split_ref(key_ref: str) -> tuple[str, str]:
    kind, sep, rest = key_ref.partition(":")
    if not sep or kind not in ("cng", "keystore", "file", "tpm2") or not rest:
        raise ConfigurationError(
            f"ENTRACLAW_KEY_REF {key_ref!r} is not cng:<location>/<SHA1>, keystore:<entry>, file:<path> or "
            "tpm2:<path>.",
            remedy="Re-run `entraclaw setup`, which writes the key reference.",
        )
    return kind, rest


def open_device_key(key_ref: str, *, keystore: object | None = None) -> DeviceKey:
    """Open the key a reference names; raises a typed error naming the reference when it is gone."""
    kind, rest = _split_ref(key_ref)
    if kind == "cng":
        from entraclaw import cng

        location, _, sha1 = rest.partition("/")
        handle = cng.CngKeyHandle(sha1, location or "CurrentUser")
        cng_signer = handle.as_signer()
        info = cng_signer.info()
        return DeviceKey(key_ref, "tpm" if info.hardware else "software_ksp", cng_signer, cng_signer.certificate)
    if kind == "tpm2":
        from entraclaw.tpm2.signer import Tpm2Signer

        tpm_signer = Tpm2Signer(rest)
        try:
            tpm_signer.load()  # a key this TPM cannot load (another TPM's, a cleared TPM) fails here
        except EntraclawError:
            tpm_signer.close()
            raise
        return DeviceKey(key_ref, "tpm", tpm_signer, tpm_signer.certificate)
    if kind == "file":
        path = Path(rest)
        try:
            bundle = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"The Blueprint key file {path} cannot be read: {exc.strerror}.",
                remedy="Restore the file, or run `entraclaw rotate --force` with admin credentials for a new key.",
                path=str(path),
            ) from None
        signer, cert = _signer_from_bundle(bundle, str(path))
        return DeviceKey(key_ref, "pem", signer, cert)
    store = keystore if keystore is not None else _default_keystore()
    secret = store.get(rest)  # type: ignore[attr-defined]
    if secret is None:
        raise KeystoreError(
            f"The keystore has no entry {rest} (the Blueprint key named by ENTRACLAW_KEY_REF).",
            remedy="To replace the key, run `entraclaw rotate --force` with admin credentials (not --as-blueprint).",
            service="entraclaw",
            key=rest,
        )
    signer, cert = _signer_from_bundle(secret.encode("ascii") if isinstance(secret, str) else bytes(secret), rest)
    return DeviceKey(key_ref, "pem", signer, cert)


def key_exists(key_ref: str, *, keystore: object | None = None) -> bool:
    try:
        key = open_device_key(key_ref, keystore=keystore)
    except EntraclawError:
        return False
    key.close()
    return True


def delete_device_key(key_ref: str, *, keystore: object | None = None) -> bool:
    """Delete the key (and its certificate); False when it was already gone."""
    kind, rest = _split_ref(key_ref)
    if kind == "cng":
        from entraclaw import cng

        location, _, sha1 = rest.partition("/")
        try:
            return cng.delete_certificate(sha1, location or "CurrentUser")
        except EntraclawError:
            return False
    if kind in ("file", "tpm2"):
        # tpm2: the TPM holds nothing once the key is flushed; the file is all there is of the key.
        try:
            Path(rest).unlink()
        except FileNotFoundError:
            return False
        return True
    store = keystore if keystore is not None else _default_keystore()
    return bool(store.delete(rest))  # type: ignore[attr-defined]


def unclaimed_key_refs(blueprint_app_id: str, *, state_dir: Path, exclude: set[str]) -> list[str]:
    """Local keys of this Blueprint not in ``exclude``, newest certificate first.

    A run killed between making a key and journalling it leaves such a key; the
    next run adopts the newest instead of making another.
    """
    found: list[tuple[float, str]] = []
    for ref in local_key_refs(blueprint_app_id, state_dir=state_dir):
        if ref in exclude:
            continue
        try:
            key = open_device_key(ref)
        except EntraclawError:
            continue
        found.append((key.certificate.not_valid_before_utc.timestamp(), ref))
        key.close()
    return [ref for _when, ref in sorted(found, reverse=True)]


def local_key_refs(blueprint_app_id: str, *, state_dir: Path) -> list[str]:
    """Keys of this Blueprint this device can enumerate: CNG certificates and key files.

    Keystore entries cannot be listed through every backend; the config and the
    journals name those.
    """
    refs: list[str] = []
    with contextlib.suppress(EntraclawError):
        if _native_cng():
            from entraclaw import cng

            for location in ("CurrentUser", "LocalMachine"):
                for listed in cng.list_certificates(certificate_subject(blueprint_app_id), location):
                    refs.append(f"cng:{location}/{listed.thumbprint}")
    key_dir = paths.keys_dir(state_dir)
    if key_dir.is_dir():
        for path in sorted(key_dir.glob(f"blueprint-key-{blueprint_app_id}-*.pem")):
            refs.append(f"file:{path}")
        for path in sorted(key_dir.glob(f"blueprint-key-{blueprint_app_id}-*.tpm2")):
            refs.append(f"tpm2:{path}")
    return refs
