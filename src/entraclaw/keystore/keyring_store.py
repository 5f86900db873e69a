"""Secrets in the OS keyring through the ``keyring`` library, service ``"entraclaw"``.

macOS: the login Keychain. Linux: the Secret Service (gnome-keyring, KWallet)
over D-Bus. Windows: Credential Manager (generic credentials).

Backend choice: ``keyring`` picks the highest-priority viable backend. When that
is its "fail" backend, the "null" backend, a chainer with nothing to chain, or a
plaintext file backend (``keyrings.alt``), this store refuses to start with a
:class:`~entraclaw.errors.KeystoreError` naming the backend, instead of failing
later or writing a key in the clear.

Credential Manager limit: a generic credential's blob holds at most
CRED_MAX_CREDENTIAL_BLOB_SIZE = 5 * 512 = 2,560 bytes
(https://learn.microsoft.com/en-us/windows/win32/api/wincred/ns-wincred-credentialw,
CredentialBlobSize), and keyring's Windows backend stores the password as
UTF-16-LE, two bytes per BMP character and four per astral one. With
``size_limit`` set (Windows default), ``put`` measures
``len(secret.encode("utf-16-le"))`` first and puts anything larger into
``overflow`` (the DPAPI file store), with one log line and no failure. The
mingw-w64 wincred.h still says 512 (the pre-Vista value); the Windows SDK
header and the page above say 5 * 512.

Credential Manager compares target names without regard to case, and keyring's
Windows backend builds them from the entry (``<entry>@<service>``), so ``Key`` and
``key`` would be one credential. On such a backend (``case_insensitive``, default:
keyring's Windows backend) an entry with an upper-case letter or a ``~`` is stored
under ``<entry in lower case>~<SHA-256 prefix of the entry>``; other entries keep
their name. The mapping is one-to-one: only mapped names contain ``~``.

Where a value is stored in two places after an interrupted ``put`` (process
killed between writing one place and removing the other), ``get`` reads the
keyring first. ``put`` orders its steps so that the keyring copy is always
either the previous value or the new one: a put into the keyring writes it and
then removes the overflow copy; a put into the overflow writes the file and
then removes the keyring copy. Nothing is lost at any point, and the next
``put`` or ``delete`` converges.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from entraclaw.errors import KeystoreError
from entraclaw.keystore.base import SERVICE, EntryInfo, KeyStore, describe_exception, validate_entry, validate_secret

__all__ = [
    "CRED_MAX_CREDENTIAL_BLOB_SIZE",
    "KeyringStore",
    "backend_label",
    "credential_manager_size",
    "resolve_backend",
]

logger = logging.getLogger(__name__)

#: wincred.h (Windows SDK): ``#define CRED_MAX_CREDENTIAL_BLOB_SIZE (5*512)``.
CRED_MAX_CREDENTIAL_BLOB_SIZE = 5 * 512

_REMEDY_NO_BACKEND = (
    "On a headless machine or a service account without a keyring, keep the key in an owner-only PEM in the "
    "state directory: `entraclaw setup --key-storage file` (protected by file permissions only), or run "
    "entraclaw inside scripts/with_state_keyring.sh (a private `dbus-run-session` with a gnome-keyring kept in "
    "the state directory, unlocked from a password file or a systemd credential; docs/headless.md). "
    "With a desktop session: "
    "`apt-get install gnome-keyring libsecret-1-0 dbus-user-session` and log in. "
    "`python -m keyring --list-backends` shows what keyring can use; PYTHON_KEYRING_BACKEND must not name a "
    "plaintext or null backend."
)


def credential_manager_size(secret: str) -> int:
    """Bytes Credential Manager needs for ``secret``: keyring hands it the password as UTF-16-LE."""
    return len(secret.encode("utf-16-le"))


def backend_label(backend: Any) -> str:
    """``keyring:<Class module>.<name>`` for messages, e.g. ``keyring:SecretService.Keyring``."""
    cls = type(backend)
    module = cls.__module__.removeprefix("keyring.backends.")
    return f"keyring:{module}.{cls.__name__}"


def _unsafe_reason(backend: Any) -> str | None:
    cls = type(backend)
    module = cls.__module__
    if module == "keyring.backends.fail":
        return "keyring found no usable backend (its 'fail' backend is active)"
    if module == "keyring.backends.null":
        return "keyring's 'null' backend is active, which stores nothing"
    qualified = f"{module}.{cls.__name__}".lower()
    if "plaintext" in qualified or module.startswith("keyrings.alt.file"):
        return f"the active keyring backend {module}.{cls.__name__} stores secrets in a plaintext file"
    return None


def resolve_backend(backend: Any = None) -> Any:
    """The keyring backend writes go to (a chainer's first backend), or KeystoreError if it is unsafe."""
    if backend is None:
        import keyring

        backend = keyring.get_keyring()
    chained = None
    if type(backend).__name__ == "ChainerBackend":
        # A chainer writes to the first of its backends that accepts the call.
        chained = list(getattr(backend, "backends", []))
        if not chained:
            reason = "keyring's chainer backend is active but has no backend to chain"
            raise KeystoreError(
                f"No OS keyring is available for service {SERVICE!r}: {reason}.",
                remedy=_REMEDY_NO_BACKEND,
                service=SERVICE,
                backend=backend_label(backend),
            )
        effective = chained[0]
    else:
        effective = backend
    unsafe = _unsafe_reason(effective)
    if unsafe is not None:
        raise KeystoreError(
            f"No OS keyring is available for service {SERVICE!r}: {unsafe}; entraclaw never falls back to "
            "storing keys in the clear.",
            remedy=_REMEDY_NO_BACKEND,
            service=SERVICE,
            backend=backend_label(effective),
        )
    return effective


class KeyringStore(KeyStore[str]):
    """Entries are keyring passwords: service ``service``, username = the entry name.

    ``backend``: a keyring backend instance (default: keyring's active one,
    checked by :func:`resolve_backend`). ``size_limit`` / ``overflow``: the
    Credential Manager path, see the module docstring; both or neither.
    """

    def __init__(
        self,
        service: str = SERVICE,
        *,
        backend: Any = None,
        size_limit: int | None = None,
        overflow: KeyStore[str] | None = None,
        case_insensitive: bool | None = None,
    ) -> None:
        if (size_limit is None) != (overflow is None):
            raise KeystoreError(
                "KeyringStore needs size_limit and overflow together (the overflow store takes what is too large).",
                remedy="Pass both, as default_keystore() does on Windows, or neither.",
                service=service,
                backend="keyring",
            )
        self.service = service
        self._backend = resolve_backend(backend)
        self.size_limit = size_limit
        self.overflow = overflow
        self.name = backend_label(self._backend)
        if case_insensitive is None:
            case_insensitive = type(self._backend).__module__ == "keyring.backends.Windows"
        self.case_insensitive = case_insensitive

    @property
    def backend(self) -> Any:
        return self._backend

    def username_for(self, entry: str) -> str:
        """The keyring username ``entry`` is stored under (see the module docstring on case)."""
        if self.case_insensitive and (entry != entry.lower() or "~" in entry):
            return f"{entry.lower()}~{hashlib.sha256(entry.encode('utf-8')).hexdigest()[:16]}"
        return entry

    def _error(self, action: str, entry: str, exc: BaseException, secret: str | None = None) -> KeystoreError:
        os_error = getattr(exc, "winerror", None) or getattr(exc, "errno", None)
        return KeystoreError(
            f"{self.name} could not {action} entry {entry!r} of service {self.service!r} "
            f"({describe_exception(exc, secret)}).",
            remedy=(
                "Unlock the keyring (log in to the desktop session; on a headless Linux run the agent inside "
                "scripts/with_state_keyring.sh, a private `dbus-run-session` + gnome-keyring, with the password "
                "the keyring was created with, from "
                "ENTRACLAW_KEYRING_PASSWORD_FILE or the systemd credential entraclaw-keyring) and retry; "
                "`python -m keyring --list-backends` shows the backends."
            ),
            service=self.service,
            entry=entry,
            backend=self.name,
            os_error=os_error,
        )

    def _keyring_get(self, entry: str) -> str | None:
        try:
            value = self._backend.get_password(self.service, self.username_for(entry))
        except Exception as exc:
            raise self._error("read", entry, exc) from None
        return None if value is None else str(value)

    def _keyring_delete(self, entry: str) -> bool:
        from keyring.errors import PasswordDeleteError

        try:
            self._backend.delete_password(self.service, self.username_for(entry))
        except PasswordDeleteError:
            return False  # not there: delete is idempotent
        except Exception as exc:
            raise self._error("delete", entry, exc) from None
        return True

    def fits(self, secret: str) -> bool:
        """Whether ``secret`` goes to the keyring itself (always, without a size limit)."""
        return self.size_limit is None or credential_manager_size(secret) <= self.size_limit

    def put(self, entry: str, secret: str) -> None:
        entry = validate_entry(entry, backend=self.name)
        secret = validate_secret(secret, backend=self.name, entry=entry)
        if self.overflow is not None and not self.fits(secret):
            size = credential_manager_size(secret)
            logger.warning(
                "Keystore entry %r is %d bytes as UTF-16, over the Credential Manager limit of %d; "
                "storing it in %s instead.",
                entry,
                size,
                self.size_limit,
                self.overflow.describe(entry).location,
            )
            self.overflow.put(entry, secret)
            self._keyring_delete(entry)
            return
        try:
            self._backend.set_password(self.service, self.username_for(entry), secret)
        except Exception as exc:
            raise self._error("write", entry, exc, secret) from None
        if self.overflow is not None:
            self.overflow.delete(entry)

    def get(self, entry: str) -> str | None:
        entry = validate_entry(entry, backend=self.name)
        value = self._keyring_get(entry)
        if value is None and self.overflow is not None:
            return self.overflow.get(entry)
        return value

    def delete(self, entry: str) -> bool:
        entry = validate_entry(entry, backend=self.name)
        removed = self._keyring_delete(entry)
        if self.overflow is not None:
            removed = self.overflow.delete(entry) or removed
        return removed

    def describe(self, entry: str) -> EntryInfo:
        entry = validate_entry(entry, backend=self.name)
        value = self._keyring_get(entry)
        if value is None and self.overflow is not None:
            info = self.overflow.describe(entry)
            if info.exists:
                return info
        size = None
        if value is not None:
            size = credential_manager_size(value) if self.size_limit is not None else len(value.encode("utf-8"))
        username = self.username_for(entry)
        stored_as = f" (stored as {username})" if username != entry else ""
        where = f"service={self.service} entry={entry}{stored_as} in {self.name}"
        return EntryInfo(self.name, entry, value is not None, where, size)

    def __repr__(self) -> str:
        extra = f", over {self.size_limit} bytes -> {self.overflow!r}" if self.overflow is not None else ""
        return f"<KeyringStore {self.name} service={self.service}{extra}>"
