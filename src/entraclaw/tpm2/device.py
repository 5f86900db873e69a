"""Which TPM, and the ESAPI connection to it.

The TPM is named by a TCTI string (the TSS's "name:configuration" form):
``ENTRACLAW_TPM2_TCTI`` when set, else ``device:/dev/tpmrm0``, the kernel's
resource-managed TPM device (its resource manager swaps transient objects out
and back in for each open file, so several processes can share the TPM). Tests
and benchmarks use ``swtpm:host=127.0.0.1,port=P``.

``tpm2_pytss`` is imported only here and only when a connection is made, so
``import entraclaw.tpm2`` works where the ``tpm2`` extra is not installed.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from entraclaw.errors import AccessDeniedError, TpmUnavailableError
from entraclaw.tpm2.rc import decode, error_for_rc

__all__ = [
    "DEFAULT_TCTI",
    "ENV_TCTI",
    "TctiSource",
    "connect",
    "describe_tcti",
    "import_tss",
    "tcti_config",
]

ENV_TCTI = "ENTRACLAW_TPM2_TCTI"
DEFAULT_TCTI = "device:/dev/tpmrm0"
#: A TCTI string, or a callable returning a ``tpm2_pytss`` TCTI object (tests wrap swtpm's to count or fault).
TctiSource = str | Callable[[], Any]

_TSS_GROUP_FIX = (
    "Add this user to the `tss` group, which owns the TPM device (sudo usermod -aG tss {user}), and log in "
    "again; or move the key off the TPM with `entraclaw setup --key-storage file` on a fresh state directory."
)


def tcti_config(tcti: str | None = None, *, environ: dict[str, str] | None = None) -> str:
    """The TCTI string: the argument, else ``ENTRACLAW_TPM2_TCTI``, else ``device:/dev/tpmrm0``."""
    if tcti:
        return tcti
    env = os.environ if environ is None else environ
    return env.get(ENV_TCTI, "").strip() or DEFAULT_TCTI


def describe_tcti(source: TctiSource) -> str:
    return source if isinstance(source, str) else getattr(source, "description", "a TCTI given by the caller")


def import_tss() -> Any:
    """The ``tpm2_pytss`` module, or TpmUnavailableError naming the extra to install."""
    # ESYS logs every failed command to stderr; each failure reaches the caller as a typed error instead.
    os.environ.setdefault("TSS2_LOG", "all+NONE")
    try:
        import tpm2_pytss
    except ImportError as exc:
        raise TpmUnavailableError(
            f"TPM keys on Linux need tpm2-pytss, which is not importable here ({exc}).",
            remedy="Install it with pip install 'entraclaw[tpm2]' (it compiles against libtss2-dev: apt-get install "
            "libtss2-dev), or use `entraclaw setup --key-storage file` instead of the TPM.",
            api="import tpm2_pytss",
        ) from None
    return tpm2_pytss


def _device_path(conf: str) -> Path | None:
    name, _sep, rest = conf.partition(":")
    if name != "device":
        return None
    return Path(rest or "/dev/tpmrm0")


def _check_device(path: Path) -> None:
    if not path.exists():
        raise TpmUnavailableError(
            f"There is no TPM device {path} on this machine (TCTI device:{path}).",
            remedy="Enable the TPM in the firmware (or give the VM a vTPM) and load the tpm_crb/tpm_tis driver; "
            f"set {ENV_TCTI} if the TPM is elsewhere; or use `entraclaw setup --key-storage file`.",
            api="open",
            path=str(path),
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise AccessDeniedError(
            f"This user ({_user()}) may not open the TPM device {path}.",
            remedy=_TSS_GROUP_FIX.format(user=_user()),
            api="open",
            path=str(path),
        )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def connect(source: TctiSource) -> tuple[Any, Any]:
    """Open the TCTI and an ESAPI context on it: ``(esapi, tcti)``. Typed errors name the TCTI."""
    tss = import_tss()
    described = describe_tcti(source)
    if isinstance(source, str):
        device = _device_path(source)
        if device is not None:
            _check_device(device)
    try:
        if isinstance(source, str):
            name, _sep, conf = source.partition(":")
            tcti = tss.TCTILdr(name, conf or None)
        else:
            tcti = source()
        esapi = tss.ESAPI(tcti)
    except tss.TSS2_Exception as exc:
        device = _device_path(source) if isinstance(source, str) else None
        if device is not None and decode(int(exc.rc)).category == "tpm_unavailable" and not os.access(
            device, os.R_OK | os.W_OK
        ):
            raise AccessDeniedError(
                f"This user ({_user()}) may not open the TPM device {device}.",
                remedy=_TSS_GROUP_FIX.format(user=_user()),
                api="Tss2_TctiLdr_Initialize",
                path=str(device),
            ) from None
        raise error_for_rc(
            int(exc.rc),
            "Tss2_TctiLdr_Initialize" if isinstance(source, str) else "Esys_Initialize",
            subject=f"the TPM at {described}",
            remedy=(
                f"Check that the TPM named by {ENV_TCTI} ({described}) is running and reachable, or use "
                "`entraclaw setup --key-storage file`."
            ),
            tcti=described,
        ) from None
    return esapi, tcti
