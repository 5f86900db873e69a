"""Linux TPM 2.0 keys: a non-exportable signing key beside :mod:`entraclaw.cng`.

The key is an RSA-2048 sign-only key made inside the TPM under the storage
hierarchy's primary key (``fixedTPM|fixedParent|sensitiveDataOrigin``); only
its TPM-wrapped blobs and its certificate are stored, in the state directory
(``keys/blueprint-key-<app id>-<SHA1>.tpm2``), worthless off this TPM. The key
reference is ``tpm2:<path of that file>``; the TPM is chosen by
``ENTRACLAW_TPM2_TCTI`` (default ``device:/dev/tpmrm0``).

- :mod:`.device`   TCTI selection, the ESAPI connection, device access errors (the ``tss`` group)
- :mod:`.rc`       TPM/TSS response codes -> :mod:`entraclaw.errors` classes
- :mod:`.session`  one connection, templates, retry of transient TPM states
- :mod:`.keyfile`  the key file (JSON: TPM2B_PUBLIC, TPM2B_PRIVATE, certificate)
- :mod:`.signer`   :class:`Tpm2Signer` (warm signature = one TPM2_Sign; reload when evicted)
- :mod:`.provision` :func:`create_key`, :func:`probe`
- :mod:`.attest`   TPM2_Certify by an AK, checked by :mod:`entraclaw.attestation`

Needs the ``tpm2`` extra (``tpm2-pytss``); importing this package does not.
"""

from __future__ import annotations

from entraclaw.tpm2.device import DEFAULT_TCTI, ENV_TCTI, tcti_config
from entraclaw.tpm2.keyfile import Tpm2KeyFile, read_key_file
from entraclaw.tpm2.provision import create_key, probe
from entraclaw.tpm2.signer import Tpm2KeyHandle, Tpm2KeyInfo, Tpm2Signer

__all__ = [
    "DEFAULT_TCTI",
    "ENV_TCTI",
    "Tpm2KeyFile",
    "Tpm2KeyHandle",
    "Tpm2KeyInfo",
    "Tpm2Signer",
    "create_key",
    "probe",
    "read_key_file",
    "tcti_config",
]
