"""The seed design's ctypes signer, for comparison only (never used by entraclaw).

``CtypesPerCallSigner`` is the "original" pattern: every signature opens the
store, finds the certificate, acquires the key, signs (size query + sign) and
frees key, certificate and store again. ``CtypesWarmSigner`` keeps the key
handle and marshals only the size query + sign per call, the best a ctypes
implementation does. Both call the library at ``library_path`` through the same
Win32 names the native module uses (here: the test stand-in).
"""

from __future__ import annotations

import ctypes
import hashlib
from ctypes import POINTER, Structure, byref, c_int32, c_size_t, c_uint32, c_void_p, c_wchar_p

DWORD = c_uint32
BOOL = ctypes.c_int
CERT_STORE_PROV_SYSTEM_W = 10
CERT_SYSTEM_STORE_CURRENT_USER = 1 << 16
CERT_STORE_OPEN_EXISTING_FLAG = 0x4000
CERT_STORE_READONLY_FLAG = 0x8000
X509_ASN_ENCODING = 0x1
PKCS_7_ASN_ENCODING = 0x10000
CERT_FIND_HASH = 1 << 16  # CERT_FIND_SHA1_HASH
CRYPT_ACQUIRE_SILENT_FLAG = 0x40
CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG = 0x40000
NCRYPT_PAD_PKCS1_FLAG = 0x2


class CRYPT_HASH_BLOB(Structure):
    _fields_ = [("cbData", DWORD), ("pbData", POINTER(ctypes.c_ubyte))]


class BCRYPT_PKCS1_PADDING_INFO(Structure):
    _fields_ = [("pszAlgId", c_wchar_p)]


def load(library_path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(library_path)
    lib.CertOpenStore.argtypes = [c_void_p, DWORD, c_size_t, DWORD, c_void_p]
    lib.CertOpenStore.restype = c_void_p
    lib.CertFindCertificateInStore.argtypes = [c_void_p, DWORD, DWORD, DWORD, c_void_p, c_void_p]
    lib.CertFindCertificateInStore.restype = c_void_p
    lib.CryptAcquireCertificatePrivateKey.argtypes = [
        c_void_p,
        DWORD,
        c_void_p,
        POINTER(c_size_t),
        POINTER(DWORD),
        POINTER(BOOL),
    ]
    lib.CryptAcquireCertificatePrivateKey.restype = BOOL
    lib.NCryptSignHash.argtypes = [c_size_t, c_void_p, c_void_p, DWORD, c_void_p, DWORD, POINTER(DWORD), DWORD]
    lib.NCryptSignHash.restype = c_int32
    lib.NCryptFreeObject.argtypes = [c_size_t]
    lib.NCryptFreeObject.restype = c_int32
    lib.CertFreeCertificateContext.argtypes = [c_void_p]
    lib.CertFreeCertificateContext.restype = BOOL
    lib.CertCloseStore.argtypes = [c_void_p, DWORD]
    lib.CertCloseStore.restype = BOOL
    lib.GetLastError.argtypes = []
    lib.GetLastError.restype = DWORD
    return lib


def _sign_with(lib: ctypes.CDLL, key: int, digest: bytes) -> bytes:
    info = BCRYPT_PKCS1_PADDING_INFO("SHA256")
    hash_buf = ctypes.create_string_buffer(digest, len(digest))
    size = DWORD(0)
    status = lib.NCryptSignHash(key, byref(info), hash_buf, len(digest), None, 0, byref(size), NCRYPT_PAD_PKCS1_FLAG)
    if status != 0:
        raise OSError(f"NCryptSignHash size query failed: 0x{status & 0xFFFFFFFF:08X}")
    out = ctypes.create_string_buffer(size.value)
    status = lib.NCryptSignHash(key, byref(info), hash_buf, len(digest), out, size, byref(size), NCRYPT_PAD_PKCS1_FLAG)
    if status != 0:
        raise OSError(f"NCryptSignHash failed: 0x{status & 0xFFFFFFFF:08X}")
    return out.raw[: size.value]


class _Opened:
    def __init__(self, lib: ctypes.CDLL, thumbprint: str) -> None:
        self.lib = lib
        self.store = lib.CertOpenStore(
            CERT_STORE_PROV_SYSTEM_W,
            0,
            0,
            CERT_SYSTEM_STORE_CURRENT_USER | CERT_STORE_OPEN_EXISTING_FLAG | CERT_STORE_READONLY_FLAG,
            "My",
        )
        raw = bytes.fromhex(thumbprint)
        hash_bytes = (ctypes.c_ubyte * len(raw)).from_buffer_copy(raw)
        blob = CRYPT_HASH_BLOB(len(raw), hash_bytes)
        self.cert = lib.CertFindCertificateInStore(
            self.store, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, 0, CERT_FIND_HASH, byref(blob), None
        )
        if not self.cert:
            lib.CertCloseStore(self.store, 0)
            raise OSError(f"certificate {thumbprint} not found: 0x{lib.GetLastError():08X}")
        key = c_size_t(0)
        spec = DWORD(0)
        caller_frees = BOOL(0)
        flags = CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG | CRYPT_ACQUIRE_SILENT_FLAG
        if not lib.CryptAcquireCertificatePrivateKey(
            self.cert, flags, None, byref(key), byref(spec), byref(caller_frees)
        ):
            self.close()
            raise OSError(f"CryptAcquireCertificatePrivateKey failed: 0x{lib.GetLastError():08X}")
        self.key = key.value
        self.caller_frees = bool(caller_frees.value)

    def close(self) -> None:
        if getattr(self, "key", 0) and self.caller_frees:
            self.lib.NCryptFreeObject(self.key)
            self.key = 0
        if self.cert:
            self.lib.CertFreeCertificateContext(self.cert)
            self.cert = None
        if self.store:
            self.lib.CertCloseStore(self.store, 0)
            self.store = None


class CtypesPerCallSigner:
    """Open store / find cert / acquire key / sign / free key / free cert / close store, per signature."""

    def __init__(self, library_path: str, thumbprint: str) -> None:
        self.lib = load(library_path)
        self.thumbprint = thumbprint

    def sign(self, data: bytes) -> bytes:
        opened = _Opened(self.lib, self.thumbprint)
        try:
            return _sign_with(self.lib, opened.key, hashlib.sha256(data).digest())
        finally:
            opened.close()


class CtypesWarmSigner:
    """Key handle kept open; per signature only the ctypes-marshalled size query + sign."""

    def __init__(self, library_path: str, thumbprint: str) -> None:
        self.lib = load(library_path)
        self._opened = _Opened(self.lib, thumbprint)

    def sign_digest(self, digest: bytes) -> bytes:
        return _sign_with(self.lib, self._opened.key, digest)

    def close(self) -> None:
        self._opened.close()
