"""TPM 2.0 and TSS response codes: their names, what to do about them, and the typed error each raises.

A response code (``TSS2_RC``) is 32 bits: bits 16-23 name the layer that produced
it (0 = the TPM itself, 7 = ESAPI, 10 = the TCTI, ...), the low bits the error.
TPM codes come in two formats (TCG TPM 2.0 Library, Part 2, 6.6 "TPM_RC"):

* format zero (bit 7 clear): ``TPM_RC_VER1`` (0x100 + n) errors and ``TPM_RC_WARN``
  (0x900 + n) warnings such as ``TPM_RC_RETRY``;
* format one (bit 7 set): ``TPM_RC_FMT1`` (0x080 + n) errors about one handle,
  session or parameter, whose number sits in bits 8-11 (bit 6 set: a parameter).

This module is the one table from code to category; :data:`CATEGORY_ERRORS`
maps a category to the :mod:`entraclaw.errors` class, as :mod:`entraclaw.cng`
does for Windows statuses. It imports no TSS library, so it loads everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from entraclaw.errors import (
    AccessDeniedError,
    KeyNotFoundError,
    KeySlotsExhaustedError,
    PssSaltUnsupportedError,
    SigningError,
    TpmLockedOutError,
    TpmUnavailableError,
    TransientSigningError,
)

__all__ = [
    "CATEGORY_ERRORS",
    "TpmCode",
    "category_of",
    "decode",
    "error_for_rc",
    "format_rc",
]

RC_FMT1 = 0x080
RC_VER1 = 0x100
RC_WARN = 0x900
LAYER_SHIFT = 16
_LAYERS = {0: "TPM", 6: "FAPI", 7: "ESAPI", 8: "SAPI", 9: "MU", 10: "TCTI", 11: "RESMGR", 12: "RESMGR-TPM"}

# name, category. Categories: transient (retried), stale_handle (the key is reloaded once),
# locked_out / auth_failed (never retried: each failure counts toward dictionary-attack lockout),
# slots_exhausted, wrong_tpm (a blob another TPM, or a cleared one, wrapped), tpm_unavailable,
# pss_unsupported, other.
_TPM: dict[int, tuple[str, str]] = {
    # format zero, version 1 errors
    0x100: ("TPM_RC_INITIALIZE", "tpm_unavailable"),
    0x101: ("TPM_RC_FAILURE", "tpm_unavailable"),
    0x103: ("TPM_RC_SEQUENCE", "other"),
    0x10B: ("TPM_RC_PRIVATE", "other"),
    0x119: ("TPM_RC_HMAC", "other"),
    0x120: ("TPM_RC_DISABLED", "tpm_unavailable"),
    0x121: ("TPM_RC_EXCLUSIVE", "other"),
    0x124: ("TPM_RC_AUTH_TYPE", "other"),
    0x125: ("TPM_RC_AUTH_MISSING", "other"),
    0x126: ("TPM_RC_POLICY", "other"),
    0x127: ("TPM_RC_PCR", "other"),
    0x128: ("TPM_RC_PCR_CHANGED", "transient"),
    0x12D: ("TPM_RC_UPGRADE", "tpm_unavailable"),
    0x12E: ("TPM_RC_TOO_MANY_CONTEXTS", "slots_exhausted"),
    0x12F: ("TPM_RC_AUTH_UNAVAILABLE", "other"),
    0x130: ("TPM_RC_REBOOT", "tpm_unavailable"),
    0x131: ("TPM_RC_UNBALANCED", "other"),
    0x142: ("TPM_RC_COMMAND_SIZE", "other"),
    0x143: ("TPM_RC_COMMAND_CODE", "other"),
    0x144: ("TPM_RC_AUTHSIZE", "other"),
    0x145: ("TPM_RC_AUTH_CONTEXT", "other"),
    0x150: ("TPM_RC_BAD_CONTEXT", "stale_handle"),
    0x152: ("TPM_RC_PARENT", "wrong_tpm"),
    0x153: ("TPM_RC_NEEDS_TEST", "tpm_unavailable"),
    0x154: ("TPM_RC_NO_RESULT", "other"),
    0x155: ("TPM_RC_SENSITIVE", "wrong_tpm"),
    # format one (the number of the handle/session/parameter is stripped before lookup)
    0x081: ("TPM_RC_ASYMMETRIC", "other"),
    0x082: ("TPM_RC_ATTRIBUTES", "other"),
    0x083: ("TPM_RC_HASH", "other"),
    0x084: ("TPM_RC_VALUE", "other"),
    0x085: ("TPM_RC_HIERARCHY", "tpm_unavailable"),
    0x087: ("TPM_RC_KEY_SIZE", "other"),
    0x088: ("TPM_RC_MGF", "other"),
    0x089: ("TPM_RC_MODE", "other"),
    0x08A: ("TPM_RC_TYPE", "other"),
    0x08B: ("TPM_RC_HANDLE", "stale_handle"),
    0x08C: ("TPM_RC_KDF", "other"),
    0x08D: ("TPM_RC_RANGE", "other"),
    0x08E: ("TPM_RC_AUTH_FAIL", "auth_failed"),
    0x08F: ("TPM_RC_NONCE", "other"),
    0x092: ("TPM_RC_SCHEME", "pss_unsupported"),
    0x095: ("TPM_RC_SIZE", "other"),
    0x096: ("TPM_RC_SYMMETRIC", "other"),
    0x097: ("TPM_RC_TAG", "other"),
    0x098: ("TPM_RC_SELECTOR", "other"),
    0x09A: ("TPM_RC_INSUFFICIENT", "other"),
    0x09B: ("TPM_RC_SIGNATURE", "other"),
    0x09C: ("TPM_RC_KEY", "wrong_tpm"),
    0x09D: ("TPM_RC_POLICY_FAIL", "auth_failed"),
    0x09F: ("TPM_RC_INTEGRITY", "wrong_tpm"),
    0x0A0: ("TPM_RC_TICKET", "other"),
    0x0A1: ("TPM_RC_RESERVED_BITS", "other"),
    0x0A2: ("TPM_RC_BAD_AUTH", "auth_failed"),
    0x0A3: ("TPM_RC_EXPIRED", "other"),
    # warnings
    0x901: ("TPM_RC_CONTEXT_GAP", "slots_exhausted"),
    0x902: ("TPM_RC_OBJECT_MEMORY", "slots_exhausted"),
    0x903: ("TPM_RC_SESSION_MEMORY", "slots_exhausted"),
    0x904: ("TPM_RC_MEMORY", "slots_exhausted"),
    0x905: ("TPM_RC_SESSION_HANDLES", "slots_exhausted"),
    0x906: ("TPM_RC_OBJECT_HANDLES", "slots_exhausted"),
    0x907: ("TPM_RC_LOCALITY", "other"),
    0x908: ("TPM_RC_YIELDED", "transient"),
    0x909: ("TPM_RC_CANCELED", "transient"),
    0x90A: ("TPM_RC_TESTING", "transient"),
    **{0x910 + n: (f"TPM_RC_REFERENCE_H{n}", "stale_handle") for n in range(7)},
    **{0x918 + n: (f"TPM_RC_REFERENCE_S{n}", "stale_handle") for n in range(7)},
    0x920: ("TPM_RC_NV_RATE", "transient"),
    0x921: ("TPM_RC_LOCKOUT", "locked_out"),
    0x922: ("TPM_RC_RETRY", "transient"),
    0x923: ("TPM_RC_NV_UNAVAILABLE", "transient"),
}

# The base codes every TSS layer shares (tss2_common.h, TSS2_BASE_RC_*).
_TSS_BASE: dict[int, tuple[str, str]] = {
    1: ("GENERAL_FAILURE", "other"),
    2: ("NOT_IMPLEMENTED", "other"),
    3: ("BAD_CONTEXT", "other"),
    5: ("BAD_REFERENCE", "other"),
    6: ("INSUFFICIENT_BUFFER", "other"),
    7: ("BAD_SEQUENCE", "other"),
    8: ("NO_CONNECTION", "tpm_unavailable"),
    9: ("TRY_AGAIN", "transient"),
    10: ("IO_ERROR", "tpm_unavailable"),
    11: ("BAD_VALUE", "other"),
    12: ("NOT_PERMITTED", "other"),
    17: ("MALFORMED_RESPONSE", "tpm_unavailable"),
    20: ("INCOMPATIBLE_TCTI", "tpm_unavailable"),
    21: ("NOT_SUPPORTED", "other"),
    23: ("MEMORY", "other"),
    24: ("BAD_TR", "stale_handle"),
    27: ("RSP_AUTH_FAILED", "other"),
}

#: Exception class for each category.
CATEGORY_ERRORS: dict[str, type[SigningError]] = {
    "transient": TransientSigningError,
    "stale_handle": KeyNotFoundError,
    "wrong_tpm": KeyNotFoundError,
    "locked_out": TpmLockedOutError,
    "auth_failed": AccessDeniedError,
    "slots_exhausted": KeySlotsExhaustedError,
    "tpm_unavailable": TpmUnavailableError,
    "pss_unsupported": PssSaltUnsupportedError,
    "other": SigningError,
}

_NEW_KEY = "run `entraclaw rotate --force` with admin credentials to make a new TPM key and register it"
# The Windows defaults name Get-Tpm, TBS and certlm.msc; these are the Linux fixes.
_REMEDIES: dict[str, str] = {
    "transient": "The TPM stayed busy (self-test or another command) through every retry; retry later.",
    "stale_handle": f"The key could not be loaded again after the TPM dropped it; {_NEW_KEY}.",
    "wrong_tpm": (
        "The key blob was wrapped by another TPM, or this TPM was cleared since (its storage seed changed): "
        f"the key is lost for good. {_NEW_KEY[0].upper()}{_NEW_KEY[1:]}."
    ),
    "locked_out": (
        "The TPM is in dictionary-attack lockout; entraclaw does not retry. Wait for it to heal "
        "(`tpm2_getcap properties-variable` shows TPM2_PT_LOCKOUT_COUNTER) or have the TPM's owner run "
        "`tpm2_dictionarylockout --clear-lockout`."
    ),
    "auth_failed": (
        "The TPM rejected an authorization; entraclaw does not retry, since every failure counts toward "
        f"dictionary-attack lockout. {_NEW_KEY[0].upper()}{_NEW_KEY[1:]}."
    ),
    "slots_exhausted": (
        "The TPM has no free object slots: use the kernel resource manager (device:/dev/tpmrm0, not /dev/tpm0) "
        "or stop other TPM clients, then retry."
    ),
    "tpm_unavailable": (
        "Check that the TPM is present and enabled (`ls -l /dev/tpmrm0`) and that ENTRACLAW_TPM2_TCTI names "
        "it, or move the key off the TPM with `entraclaw setup --key-storage file` on a fresh state directory."
    ),
    "pss_unsupported": "Sign with RS256 (the default for client assertions) when the key is in this TPM.",
    "other": "Check the key with `entraclaw doctor`; " + _NEW_KEY + " if it keeps failing.",
}


@dataclass(frozen=True)
class TpmCode:
    """One decoded response code."""

    rc: int
    layer: str
    name: str
    category: str
    where: str | None = None  # "handle 1", "parameter 2", "session 1" for format-one codes


def decode(rc: int) -> TpmCode:
    """Name, layer and category of ``rc``; unknown codes are category ``other``."""
    rc &= 0xFFFFFFFF
    layer_no = (rc >> LAYER_SHIFT) & 0xFF
    layer = _LAYERS.get(layer_no, f"layer {layer_no}")
    low = rc & 0xFFFF
    if layer_no in (0, 12):  # the TPM's own code (12: passed through a resource manager)
        where = None
        key = low
        if low & RC_FMT1:
            key = RC_FMT1 | (low & 0x3F)
            number = (low >> 8) & 0xF
            if low & 0x40:
                where = f"parameter {number}"
            elif number:
                where = f"handle {number}" if number < 8 else f"session {number - 8}"
        name, category = _TPM.get(key, (f"TPM_RC 0x{key:03X}", "other"))
        return TpmCode(rc, layer, name, category, where)
    base, category = _TSS_BASE.get(low, (f"0x{low:04X}", "other"))
    return TpmCode(rc, layer, f"TSS2_{layer}_RC_{base}", category)


def category_of(rc: int) -> str:
    return decode(rc).category


def format_rc(rc: int) -> str:
    """``0x00000922 (TPM_RC_RETRY)``, with the handle or parameter for format-one codes."""
    code = decode(rc)
    detail = f"{code.name}, {code.where}" if code.where else code.name
    return f"0x{code.rc:08X} ({detail})"


def error_for_rc(
    rc: int,
    command: str,
    *,
    subject: str,
    attempts: int = 1,
    reloads: int = 0,
    remedy: str | None = None,
    **context: object,
) -> SigningError:
    """The typed error for a failed TPM command; ``subject`` names the key (its blob's path)."""
    code = decode(rc)
    cls = CATEGORY_ERRORS.get(code.category, SigningError)
    message = f"{command} failed with {format_rc(rc)} for {subject}"
    if code.category == "transient":
        message += f" after {attempts} attempt{'s' if attempts != 1 else ''}"
    if reloads:
        message += " (the key was loaded again once and failed again)"
    if code.category == "pss_unsupported":
        message = (
            f"PS256 is not possible with the TPM key {subject}: {command} refused RSASSA-PSS with {format_rc(rc)}"
        )
    return cls(
        message + ".",
        remedy=remedy if remedy is not None else _REMEDIES.get(code.category, _REMEDIES["other"]),
        tpm_rc=code.rc,
        tpm_rc_name=code.name,
        api=command,
        category=code.category,
        attempts=attempts,
        **context,
    )
