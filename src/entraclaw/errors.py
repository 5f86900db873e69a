"""Every error entraclaw raises, in one flat module.

The hierarchy is designed for the whole product: signing (PEM and CNG/TPM),
token exchange, configuration, keystore and the emulator. Each error carries
structured fields (the object involved, OS/HRESULT codes, AADSTS codes) so a
caller can branch on data instead of parsing text, and a ``remedy`` that says
what to do next.

Rule for every subclass: the message names the object (thumbprint, client id,
path) and never contains a secret (token, key, assertion, password). ``repr``
shows only the class name and the message for the same reason.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessDeniedError",
    "AdminSignInRefusedError",
    "AttestationError",
    "BadSignatureError",
    "CertificateNotFoundError",
    "ClientAssertionError",
    "ConfigurationError",
    "EmulatorError",
    "EncodingError",
    "EntraclawError",
    "FilePermissionError",
    "GraphRequestError",
    "InvalidThumbprintError",
    "KeyMaterialError",
    "KeyNotFoundError",
    "KeySlotsExhaustedError",
    "KeystoreError",
    "NativeModuleUnavailableError",
    "NetworkError",
    "PssSaltUnsupportedError",
    "SecretRefusedError",
    "SigningError",
    "ThumbprintMismatchError",
    "TokenDeadlineExceededError",
    "TokenEndpointUnavailableError",
    "TokenExchangeError",
    "TpmLockedOutError",
    "TpmRequiredError",
    "TpmUnavailableError",
    "TransientSigningError",
    "UnsupportedKeyError",
    "UnsupportedKeyStorageError",
    "UserInteractionRequiredError",
]


class EntraclawError(Exception):
    """Root of every entraclaw error.

    ``message`` names what failed and the object involved; ``remedy`` says
    what to do. ``str(err)`` joins both. Extra keyword arguments become
    attributes (for example ``thumbprint`` or ``hresult``) so callers can act on
    them without parsing text.
    """

    default_remedy: str = ""

    def __init__(self, message: str, *, remedy: str | None = None, **context: Any) -> None:
        self.message = message
        self.remedy = remedy if remedy is not None else self.default_remedy
        self.context = dict(context)
        for name, value in context.items():
            setattr(self, name, value)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.remedy:
            return f"{self.message} Fix: {self.remedy}"
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__str__()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions must survive pickling (multiprocessing, logging handlers)
        # with their structured fields intact.
        return (_rebuild, (type(self), self.message, self.remedy, self.context))


def _rebuild(cls: type[EntraclawError], message: str, remedy: str, context: dict[str, Any]) -> EntraclawError:
    return cls(message, remedy=remedy, **context)


# --- configuration -----------------------------------------------------------


class ConfigurationError(EntraclawError):
    """A setting is missing, malformed or inconsistent (``.env``, arguments)."""


class AdminSignInRefusedError(ConfigurationError):
    """The admin's Graph token cannot do the job (it carries a permission the Agent ID APIs refuse).

    Attributes: ``permission`` (the refused permission), ``sign_in`` (which sign-in produced it).
    """


class InvalidThumbprintError(ConfigurationError):
    """A thumbprint does not have the shape its kind requires.

    Attributes: ``kind`` ("x5t#S256" or "SHA-1"), ``value_preview`` (a short,
    non-secret preview of what was given).
    """


class ThumbprintMismatchError(ConfigurationError):
    """The configured thumbprint is not the certificate's thumbprint."""


# --- key material --------------------------------------------------------------


class KeyMaterialError(EntraclawError):
    """A private key could not be loaded or used (PEM path)."""


class UnsupportedKeyError(KeyMaterialError):
    """The key is of a kind Entra client assertions cannot use (EC, < 2048 bits, garbled)."""


# --- signing (PEM and CNG) -----------------------------------------------------


class SigningError(EntraclawError):
    """Signing failed.

    On the CNG path the error carries ``hresult`` (int), ``hresult_name``
    (the SDK constant name, e.g. ``NTE_BAD_KEYSET``), ``api`` (the Win32
    function that failed), ``thumbprint`` (SHA-1 hex) and ``system_message``
    (the OS text for the code, when the OS has one).
    """

    default_remedy = "Check the certificate and key with `entraclaw doctor`."


class NativeModuleUnavailableError(SigningError):
    """The compiled CNG module is not available on this platform or build."""

    default_remedy = (
        "The CNG signer needs the Windows wheel of entraclaw (entraclaw._cng); "
        "on other systems use a PEM key from the OS keystore."
    )


class CertificateNotFoundError(SigningError):
    """No certificate with the thumbprint exists in the store searched."""

    default_remedy = (
        "Compare ENTRACLAW_BLUEPRINT_CERT_SHA1 with `certutil -user -store My` (or run `entraclaw doctor`), or "
        "`entraclaw rotate --force` with admin credentials (scripts/deploy-windows.ps1 -Force wraps it) "
        "to mint and register a new certificate."
    )


class KeyNotFoundError(SigningError):
    """The certificate is there but its private key is gone (deleted out of band)."""

    default_remedy = (
        "The private key was removed outside entraclaw; run `entraclaw rotate --force` with admin "
        "credentials (scripts/deploy-windows.ps1 -Force wraps it) to create a new key and register it."
    )


class KeySlotsExhaustedError(SigningError):
    """The TPM or provider has no room for another key or handle."""

    default_remedy = (
        "Remove stale entraclaw certificates and their keys: "
        "`entraclaw doctor --clean-stale` or, in PowerShell, "
        "Get-ChildItem Cert:\\CurrentUser\\My | Where Subject -like 'CN=entraclaw-*' "
        "and Remove-Item the ones not in use; then retry."
    )


class TpmLockedOutError(SigningError):
    """The TPM is in dictionary-attack lockout. Never retried."""

    default_remedy = (
        "Wait for the TPM lockout to expire (see `Get-Tpm` LockoutHealTime) or have an "
        "administrator clear it with Clear-TpmLockout / tpm.msc; do not retry in a loop."
    )


class TpmUnavailableError(SigningError):
    """The TPM (or its TBS service) is absent, disabled or not running."""

    default_remedy = (
        "Enable the TPM in firmware and make sure the TBS service runs (`Get-Tpm`), "
        "or run `entraclaw rotate --force`, which falls back to the software key storage provider "
        "with a warning."
    )


class UserInteractionRequiredError(SigningError):
    """The key wants a UI prompt (PIN, consent) that a silent agent cannot show, or it was cancelled."""

    default_remedy = (
        "Use a key without a UI protection policy: run `entraclaw rotate --force` "
        "(scripts/deploy-windows.ps1 -Force wraps it), which creates keys that sign silently."
    )


class AccessDeniedError(SigningError):
    """The current user may not use the key (ACL, TBS access policy)."""

    default_remedy = (
        "Run as the user who created the certificate, or grant this account access to "
        "the key (certlm.msc > Manage Private Keys)."
    )


class TransientSigningError(SigningError):
    """A transient device state outlasted the retry policy. Carries ``attempts``."""

    default_remedy = "The TPM was busy; retry later or raise the retry budget (RetryPolicy)."


class PssSaltUnsupportedError(SigningError):
    """The TPM makes RSASSA-PSS signatures only with the maximum salt, so PS256 (salt = hash length) is impossible."""

    default_remedy = (
        "Sign with RS256 (the default for client assertions) when the key is in this TPM, "
        "or update the TPM firmware to TCG spec revision 1.16 or later."
    )


class BadSignatureError(SigningError):
    """The key storage provider returned a signature that does not verify under the certificate's public key."""

    default_remedy = (
        "Sign with RS256 when the key is in a TPM; if RS256 signatures fail too, check the key and "
        "certificate with `entraclaw doctor` and run `entraclaw rotate --force` (scripts/deploy-windows.ps1 -Force)."
    )


class UnsupportedKeyStorageError(SigningError):
    """The certificate's key is held by a legacy CryptoAPI (CAPI) provider, which entraclaw does not manage."""

    default_remedy = (
        "Remove the key with the tool that created it (certutil -user -delkey <container>, or "
        "certutil -user -delstore My <thumbprint> for both), or delete only the certificate with delete_key=False."
    )


class AttestationError(EntraclawError):
    """A TPM key attestation claim is truncated, forged, or does not match the key.

    ``reason`` is one of ``truncated``, ``magic``, ``type``, ``format``,
    ``name``, ``public_key``, ``aik_format``, ``aik_not_restricted``,
    ``signer``, ``signature``, ``nonce``.
    """

    default_remedy = (
        "Do not treat this key as attested. Re-create the claim on the machine that holds the key "
        "(`entraclaw doctor`) with a fresh nonce, and verify it against the AIK's TPM2B_PUBLIC your relying "
        "party enrolled."
    )


class TpmRequiredError(SigningError):
    """The TPM is required (``--require-tpm`` / ENTRACLAW_REQUIRE_TPM) and could not hold the key.

    ``reason`` says why; no software key was made.
    """

    default_remedy = (
        "Fix what the reason names (`entraclaw doctor` shows the TPM's state), or run `entraclaw setup` "
        "without --require-tpm (and ENTRACLAW_REQUIRE_TPM unset) to accept a software key."
    )


# --- token exchange ------------------------------------------------------------


class TokenExchangeError(EntraclawError):
    """The token endpoint refused an exchange.

    Attributes: ``hop`` (1, 2 or 3, or None outside the Agent User flow),
    ``client_id``, ``error`` (OAuth error code), ``aadsts_code`` (int or None),
    ``correlation_id``, ``trace_id``, ``http_status``. The server's description
    is kept in ``description`` after it is checked to contain no token.
    """


class TokenEndpointUnavailableError(TokenExchangeError):
    """The token endpoint stayed throttled (429) or failing (5xx) through every retry."""


class TokenDeadlineExceededError(TokenExchangeError):
    """``get_token`` ran out of its total time budget.

    Attributes (besides :class:`TokenExchangeError`'s): ``waited_on`` -- what the budget
    went on when it ran out: ``"Retry-After"`` (the server asked to wait longer than is
    left), ``"backoff"`` (a retry delay), ``"lock"`` (another thread's or process's
    exchange of the same token) or ``"network"`` (an answer that did not come in time);
    ``deadline`` (the budget in seconds) and ``elapsed`` (seconds spent).
    """

    default_remedy = (
        "Retry later, or give get_token a longer deadline (deadline= on the credential or per call); "
        "if it keeps happening, check the authority's health and for a hung entraclaw process."
    )


class NetworkError(TokenExchangeError):
    """The request never got an HTTP answer (DNS, TCP, TLS, timeout)."""

    default_remedy = "Check network access and proxy settings to the authority host, then retry."


class GraphRequestError(EntraclawError):
    """A Microsoft Graph call failed. Carries ``http_status``, ``code`` (Graph's error code),
    ``request_id`` and ``url`` (never the bearer token)."""


class ClientAssertionError(EntraclawError):
    """A client assertion could not be built (bad claims, lifetime, audience)."""


class EncodingError(EntraclawError, ValueError):
    """Text that must be unpadded base64url, or a compact JWT, is not.

    The text is never quoted (it may be a token); ``length`` says how long it was. Also a
    ``ValueError``, which these decoders raised before they had a typed error.
    """


# --- platform --------------------------------------------------------------------


class KeystoreError(EntraclawError):
    """A key or secret store failed.

    Carries ``service`` (the keyring service, ``"entraclaw"``), ``entry`` (the
    entry name), ``backend`` (which store: ``"keyring:SecretService"``,
    ``"dpapi-file"``...) and, when known, ``os_error`` (errno, Win32 error or
    HRESULT) and ``path``. Never the secret, nor its length in a way that
    identifies it.
    """


class SecretRefusedError(KeystoreError):
    """A store that keeps only non-secret references was handed a secret (a PEM private key)."""

    default_remedy = (
        "On Windows the Blueprint key stays in CNG (TPM or software KSP): record its certificate "
        "thumbprint (cng:CurrentUser/<SHA1>), not the key; keep a PEM in the keyring or DPAPI file store."
    )


class FilePermissionError(EntraclawError):
    """A file's permissions could not be read or restricted to the owner (Windows DACL, POSIX mode).

    Carries ``path``, ``operation`` ("restrict to owner", "read DACL", ...), ``api`` (the Win32
    function that failed), ``hresult`` (HRESULT_FROM_WIN32 of the error), ``win32_error``,
    ``error_name`` (e.g. ``ERROR_ACCESS_DENIED``) and ``system_message`` when the OS has one.
    """


# --- emulator --------------------------------------------------------------------


class EmulatorError(EntraclawError):
    """The local Entra emulator could not start, load or save its state."""
