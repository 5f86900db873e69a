"""The one place that loads the compiled module ``entraclaw._cng``.

``entraclaw.cng`` (signing, provisioning, DPAPI) and
``entraclaw.platform.winacl`` (DACLs) both need it, and both must still import
where it is absent (the pure-Python wheel on Linux/macOS, or a native build
that failed to load) and then fail with the same typed error. Each caller keeps
its own module-level reference (so a test can take the module away from one
caller) and passes it to :func:`require`.
"""

from __future__ import annotations

import sys

from entraclaw.errors import NativeModuleUnavailableError

try:
    from entraclaw import _cng
except ImportError as _exc:  # pure-Python wheel, or a native build that failed to load
    _cng = None  # type: ignore[assignment]
    IMPORT_ERROR: str | None = str(_exc)
else:
    IMPORT_ERROR = None

cng_module = _cng

__all__ = ["IMPORT_ERROR", "cng_module", "require"]


def require(module: object, import_error: str | None, doing: str, *, remedy: str | None = None) -> None:
    """Raise NativeModuleUnavailableError unless ``module`` (a caller's ``_cng``) is loaded.

    ``doing`` starts the message: "<doing> the compiled module entraclaw._cng,
    which is not available on <platform> (<why the import failed>)."
    """
    if module is not None:
        return
    detail = f" ({import_error})" if import_error else ""
    raise NativeModuleUnavailableError(
        f"{doing} the compiled module entraclaw._cng, which is not available on {sys.platform}{detail}.",
        remedy=remedy,
        platform=sys.platform,
    )
