"""The Blueprint's signer for a configuration's key reference: :func:`open_signer`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from entraclaw.config.model import AgentConfig, _missing_error
from entraclaw.config.names import ENV_BLUEPRINT_CERT_X5T_S256, ENV_KEY_REF
from entraclaw.errors import ConfigurationError

if TYPE_CHECKING:
    from entraclaw.auth.signer import Signer
    from entraclaw.keystore import KeyStore

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


def _split_pem(pem: bytes) -> tuple[bytes, bytes | None]:
    """The private key block and, when the PEM also holds one, the first certificate block (either order)."""
    key: bytes | None = None
    cert: bytes | None = None
    for match in _PEM_BLOCK.finditer(pem):
        label = match.group(1)
        if label.endswith(b"PRIVATE KEY") and key is None:
            key = match.group(0)
        elif label == b"CERTIFICATE" and cert is None:
            cert = match.group(0)
    # No key block found: hand the bytes on unchanged so PemSigner reports what is wrong with them.
    return (key if key is not None else pem), cert


def open_signer(
    config: AgentConfig,
    *,
    keystore: KeyStore[str] | None = None,
    password: str | None = None,
) -> Signer:
    """The Blueprint's signer for ``config.key_ref``.

    ``cng:`` -> the CNG key of that certificate (Windows); ``tpm2:`` -> the Linux TPM key
    file's key (:mod:`entraclaw.tpm2`); ``keystore:`` -> the PEM
    in the OS keystore (``keystore`` replaces :func:`entraclaw.keystore.default_keystore`);
    ``file:`` -> the PEM file. A PEM that carries its certificate is checked
    against it; otherwise ``cert_x5t_s256`` must be configured for the assertion header.
    """
    from entraclaw.auth.signer import PemSigner

    ref = config.key_ref
    if ref is None:
        raise _missing_error(["key_ref"], config.env_file)
    origin = str(config.origins.get("key_ref", "the AgentConfig passed in"))
    if ref.kind == "cng":
        from entraclaw import cng

        assert ref.sha1 is not None and ref.location is not None
        return cng.CngKeyHandle(ref.sha1, ref.location).as_signer()
    if ref.kind == "tpm2":
        from entraclaw.tpm2 import Tpm2KeyHandle

        assert ref.path is not None
        return Tpm2KeyHandle(ref.path).as_signer()
    if ref.kind == "keystore":
        assert ref.entry is not None
        store = keystore
        if store is None:
            # Imported here: the keystore pulls in keyring and the OS backends, which file: and cng: never need.
            from entraclaw.keystore import default_keystore

            store = default_keystore()
        pem_text = store.get(ref.entry)
        if pem_text is None:
            raise ConfigurationError(
                f"{ENV_KEY_REF} ({origin}) names keystore entry {ref.entry}, which is not in the "
                f"{getattr(store, 'name', type(store).__name__)} keystore.",
                remedy="Store the Blueprint's PEM key under that entry name, or point ENTRACLAW_KEY_REF at the "
                "entry that holds it.",
                key=ENV_KEY_REF,
                entry=ref.entry,
            )
        pem = pem_text.encode("utf-8") if isinstance(pem_text, str) else bytes(pem_text)
        source_name = f"keystore entry {ref.entry}"
    else:
        assert ref.path is not None
        try:
            pem = ref.path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read the key file {ref.path} ({ENV_KEY_REF}, {origin}): {exc.strerror}.",
                remedy="Point ENTRACLAW_KEY_REF (or --key-file) at the Blueprint's PEM private key.",
                path=str(ref.path),
            ) from exc
        source_name = f"key file {ref.path}"
    key_pem, cert_pem = _split_pem(pem)
    signer = PemSigner.from_pem(key_pem, password=password, certificate=cert_pem)
    if signer.certificate is None and config.cert_x5t_s256 is None:
        raise ConfigurationError(
            f"The {source_name} holds no certificate and {ENV_BLUEPRINT_CERT_X5T_S256} is not set, so the "
            "assertion cannot name the Blueprint certificate.",
            remedy=f"Set {ENV_BLUEPRINT_CERT_X5T_S256} (from `entraclaw thumbprint CERT`), or append the "
            "certificate PEM to the key.",
            key=ENV_BLUEPRINT_CERT_X5T_S256,
        )
    return signer
