"""Shared pieces for the CNG tests: capability checks and a stand-in fixture.

The stand-in (``entraclaw._cng_standin``) is the test-only software
replacement for ncrypt/crypt32 that the same C++ core links against on Linux.
"""

from __future__ import annotations

import gc
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from capabilities import require
from conftest import KeyPair
from entraclaw import cng

try:
    from entraclaw import _cng_standin as standin_module
except ImportError:
    standin_module = None

SOFTWARE = "Microsoft Software Key Storage Provider"
PLATFORM = "Microsoft Platform Crypto Provider"
BUILD_HINT = "build it with: ENTRACLAW_BUILD_NATIVE=standin pip install --no-build-isolation -e ."

# Every HRESULT the tests inject, by SDK name (values from winerror.h; the
# status-table test checks the native table against these independently).
HR = {
    "CRYPT_E_NOT_FOUND": 0x80092004,
    "NTE_BAD_KEYSET": 0x80090016,
    "NTE_NO_KEY": 0x8009000D,
    "CRYPT_E_NO_KEY_PROPERTY": 0x8009200B,
    "NTE_INVALID_HANDLE": 0x80090026,
    "TPM_20_E_HANDLE": 0x8028008B,
    "NTE_NO_MEMORY": 0x8009000E,
    "TBS_E_TOO_MANY_RESOURCES": 0x8028400A,
    "TPM_20_E_OBJECT_MEMORY": 0x80280902,
    "TPM_20_E_LOCKOUT": 0x80280921,
    "TPM_E_DEFEND_LOCK_RUNNING": 0x80280803,
    "TBS_E_TPM_NOT_FOUND": 0x8028400F,
    "TBS_E_SERVICE_NOT_RUNNING": 0x80284008,
    "TBS_E_SERVICE_DISABLED": 0x80284010,
    "NTE_DEVICE_NOT_FOUND": 0x80090035,
    "NTE_SILENT_CONTEXT": 0x80090022,
    "NTE_USER_CANCELLED": 0x80090036,
    "SCARD_W_CANCELLED_BY_USER": 0x8010006E,
    "NTE_PERM": 0x80090010,
    "TBS_E_ACCESS_DENIED": 0x80284012,
    "E_ACCESSDENIED": 0x80070005,
    "NTE_BAD_HASH_STATE": 0x8009000C,
    "TPM_E_RETRY": 0x80280800,
    "TPM_20_E_RETRY": 0x80280922,
    "TPM_20_E_YIELDED": 0x80280908,
    "TPM_20_E_TESTING": 0x8028090A,
    "TPM_E_DOING_SELFTEST": 0x80280802,
    "TBS_E_SERVICE_START_PENDING": 0x8028400B,
    "NTE_DEVICE_NOT_READY": 0x80090030,
    "STATUS_UNSUCCESSFUL": 0xC0000001,
    "NTE_BUFFER_TOO_SMALL": 0x80090028,
    "TPM_E_PCP_BUFFER_TOO_SMALL": 0x80290406,
    "ERROR_INVALID_DATA": 0x8007000D,
    "NTE_BAD_KEY_STATE": 0x8009000B,
    "TPM_E_PCP_UNSUPPORTED_PSS_SALT": 0x40290423,
    "TPM_E_PCP_KEY_HANDLE_INVALIDATED": 0x80290422,
    "TPM_E_PCP_INVALID_HANDLE": 0x80290402,
    "TPM_E_KEY_NOT_LOADED": 0x8029040F,
    "E_FAIL": 0x80004005,
    "NTE_BAD_FLAGS": 0x80090009,
    "TPM_E_LOCKED_OUT": 0x8029041B,
    "TPM_E_PCP_AUTHENTICATION_IGNORED": 0x80290409,
    "TPM_E_PCP_DEVICE_NOT_READY": 0x80290401,
    "TPM_E_PCP_AUTHENTICATION_FAILED": 0x80290408,
    "TPM_20_E_AUTH_FAIL": 0x8028008E,
    "TPM_20_E_BAD_AUTH": 0x802800A2,
    "TPM_E_PCP_IFX_RSA_KEY_CREATION_BLOCKED": 0x8029041F,
    "TPM_20_E_NV_RATE": 0x80280920,
    "TPM_20_E_CANCELED": 0x80280909,
    "TBS_E_COMMAND_CANCELED": 0x8028400D,
    "TPM_20_E_KEY_SIZE": 0x80280087,
    "NTE_NOT_SUPPORTED": 0x80090029,
    "NTE_INVALID_PARAMETER": 0x80090027,
}

FAST = cng.RetryPolicy(attempts=2, initial_delay=0.0)


def standin_available() -> bool:
    return standin_module is not None and cng.backend() == "standin"


def require_native() -> None:
    require("native", cng.native_available(), f"entraclaw._cng is not built; {BUILD_HINT}")


def require_standin() -> None:
    require_native()
    require("standin", standin_available(), f"the stand-in build of entraclaw._cng is not installed; {BUILD_HINT}")


def key_der(kp: KeyPair) -> bytes:
    return kp.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def verify(kp_or_cert: Any, signature: bytes, data: bytes, algorithm: str = "RS256") -> None:
    """Raise InvalidSignature unless ``signature`` verifies under the certificate's public key."""
    cert = kp_or_cert.cert if isinstance(kp_or_cert, KeyPair) else kp_or_cert
    pad: padding.AsymmetricPadding = (
        padding.PKCS1v15() if algorithm == "RS256" else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    )
    cert.public_key().verify(signature, data, pad, hashes.SHA256())


@dataclass
class Installed:
    kp: KeyPair
    thumbprint: str
    provider: str
    container: str
    location: str


class Standin:
    """The stand-in's control API plus helpers to seed it with test keys."""

    def __init__(self, module: Any) -> None:
        self.m = module

    def add(
        self,
        kp: KeyPair,
        *,
        location: str = "CurrentUser",
        provider: str = SOFTWARE,
        with_key: bool = True,
        exportable: bool = False,
    ) -> Installed:
        container = f"test-{uuid.uuid4()}"
        self.m.add_certificate(location, kp.der, key_der(kp) if with_key else None, provider, container, exportable)
        return Installed(kp, kp.sha1, provider, container, location)

    def calls(self, function: str) -> int:
        return int(self.m.call_count(function))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.m, name)


@pytest.fixture(name="standin")
def standin_fixture() -> Iterator[Standin]:
    require_standin()
    standin_module.reset()
    yield Standin(standin_module)
    gc.collect()
    standin_module.reset()


def digest_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
