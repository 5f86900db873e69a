"""One ESAPI connection to the TPM, the object templates, and the retry/reload rules.

Transient TPM states (``TPM_RC_RETRY``, ``TPM_RC_YIELDED``, ``TPM_RC_TESTING``,
...) are retried under :class:`entraclaw.auth.retry.TokenRetryPolicy`'s bounded
backoff (ESYS itself resubmits such a command a few times at once first);
lockout and failed authorizations are never retried, since each failure counts
toward the TPM's dictionary-attack lockout. A connection opened before a
``fork()`` is not used by the child: it opens its own.

Templates (TCG TPM 2.0 Library Part 2, TPMA_OBJECT 8.3; TCG "TPM 2.0 Keys for
Device Identity and Attestation" and the EK Credential Profile's storage key
template):

* parent: the owner hierarchy's ECC P-256 storage primary key (restricted
  decrypt, AES-128-CFB), re-derived from the storage seed whenever needed;
  nothing is persisted in the TPM;
* device key: RSA-2048, ``sign`` only, ``fixedTPM|fixedParent|sensitiveDataOrigin``
  (made inside this TPM, never duplicable), ``userWithAuth`` with an empty
  auth value, scheme NULL (RSASSA or RSASSA-PSS chosen per signature), and
  ``noDA``: with no secret to guess, dictionary-attack protection guards
  nothing, and noDA keeps the agent signing while the TPM is in lockout;
* attestation key (AK): a restricted RSASSA-SHA256 signing primary of the
  endorsement hierarchy: it signs only TPM-generated structures, so its
  TPM2_Certify of the device key is the TPM's own statement.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from entraclaw.auth.retry import TokenRetryPolicy
from entraclaw.tpm2.device import TctiSource, connect, describe_tcti, import_tss
from entraclaw.tpm2.rc import decode

__all__ = ["DEFAULT_TPM_RETRY", "TpmCallFailed", "TpmConnection"]

T = TypeVar("T")

#: Up to 4 tries, 100 ms doubling to at most 2 s: a TPM self-test ends within that.
DEFAULT_TPM_RETRY = TokenRetryPolicy(max_attempts=4, base_delay=0.1, max_delay=2.0, retry_network_errors=False)

_KEY_ATTRS = ("SIGN_ENCRYPT", "FIXEDTPM", "FIXEDPARENT", "SENSITIVEDATAORIGIN", "USERWITHAUTH", "NODA")
_SRK_ATTRS = ("RESTRICTED", "DECRYPT", "FIXEDTPM", "FIXEDPARENT", "SENSITIVEDATAORIGIN", "USERWITHAUTH", "NODA")
_AK_ATTRS = ("RESTRICTED", "SIGN_ENCRYPT", "FIXEDTPM", "FIXEDPARENT", "SENSITIVEDATAORIGIN", "USERWITHAUTH", "NODA")


class TpmCallFailed(Exception):
    """Internal: a TPM command failed with ``rc`` after ``attempts`` tries (turned into a typed error by callers)."""

    def __init__(self, rc: int, command: str, attempts: int) -> None:
        super().__init__(f"{command} rc=0x{rc:08X}")
        self.rc = rc
        self.command = command
        self.attempts = attempts
        self.category = decode(rc).category


def _attrs(tss: Any, names: tuple[str, ...]) -> Any:
    value = 0
    for name in names:
        value |= getattr(tss.TPMA_OBJECT, name)
    return tss.TPMA_OBJECT(value)


def srk_template(tss: Any) -> Any:
    return tss.TPM2B_PUBLIC.parse("ecc256:aes128cfb", objectAttributes=_attrs(tss, _SRK_ATTRS))


def key_template(tss: Any) -> Any:
    return tss.TPM2B_PUBLIC.parse("rsa2048:null:null", objectAttributes=_attrs(tss, _KEY_ATTRS))


def ak_template(tss: Any) -> Any:
    return tss.TPM2B_PUBLIC.parse("rsa2048:rsassa-sha256:null", objectAttributes=_attrs(tss, _AK_ATTRS))


class TpmConnection:
    """A lazily opened ESAPI context; one command at a time (the lock), retried per the policy."""

    def __init__(self, source: TctiSource, retry_policy: TokenRetryPolicy | None = None) -> None:
        self.source = source
        self.retry_policy = retry_policy or DEFAULT_TPM_RETRY
        self.lock = threading.RLock()
        self._esapi: Any = None
        self._tcti: Any = None
        self._pid = 0
        self.tss = import_tss()

    @property
    def description(self) -> str:
        return describe_tcti(self.source)

    def esapi(self) -> Any:
        if self._esapi is None or self._pid != os.getpid():
            # A context inherited through fork() shares the parent's socket/fd: never use it.
            self._esapi = None
            self._esapi, self._tcti = connect(self.source)
            self._pid = os.getpid()
        return self._esapi

    def close(self) -> None:
        with self.lock:
            esapi, self._esapi, self._tcti = self._esapi, None, None
            if esapi is not None and self._pid == os.getpid():
                # Closing a broken connection has nothing left to report.
                with contextlib.suppress(Exception):
                    esapi.close()

    def call(self, command: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(esapi)`` (one TPM command); retry transient states; raise TpmCallFailed otherwise."""
        tss = self.tss
        attempt = 0
        with self.lock:
            while True:
                attempt += 1
                try:
                    return fn(self.esapi())
                except tss.TSS2_Exception as exc:
                    failed = TpmCallFailed(int(exc.rc), command, attempt)
                if failed.category == "transient":
                    delay = self.retry_policy.delay_before(attempt, None)
                    if delay is not None:
                        time.sleep(delay)
                        continue
                if failed.category == "tpm_unavailable":
                    self.close()  # a broken connection: the next call opens a new one
                raise failed

    def create_primary(self, hierarchy: str, template: Any) -> tuple[Any, Any]:
        tss = self.tss
        handle = getattr(tss.ESYS_TR, hierarchy)

        def run(esapi: Any) -> tuple[Any, Any]:
            out = esapi.create_primary(tss.TPM2B_SENSITIVE_CREATE(), template, primary_handle=handle)
            return out[0], out[1]

        return self.call("TPM2_CreatePrimary", run)

    def flush(self, handle: Any) -> None:
        # Already gone (TPM reset, resource manager): nothing to free.
        with contextlib.suppress(TpmCallFailed):
            self.call("TPM2_FlushContext", lambda esapi: esapi.flush_context(handle))
