"""Build TPM 2.0 structures in tests: TPMT_PUBLIC / TPM2B_PUBLIC, names, TPMS_ATTEST and PCP claim blobs.

Layouts: TCG TPM 2.0 Library Part 2 (TPMT_PUBLIC 12.2.4, TPMS_ATTEST 10.12.12), the PCP claim header of
docs/attestation.md. Used to forge what a real TPM would refuse to sign.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

FIXED_TPM, FIXED_PARENT, SENSITIVE, USER_AUTH = 1 << 1, 1 << 4, 1 << 5, 1 << 6
RESTRICTED, DECRYPT, SIGN = 1 << 16, 1 << 17, 1 << 18
KEY_ATTRS = FIXED_TPM | FIXED_PARENT | SENSITIVE | USER_AUTH | SIGN
AIK_ATTRS = KEY_ATTRS | RESTRICTED
ALG_RSASSA, ALG_NULL, ALG_SHA256 = 0x0014, 0x0010, 0x000B


def b2(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def tpmt_public(key: rsa.RSAPublicKey, attrs: int, *, scheme: int = ALG_NULL, scheme_hash: int = ALG_SHA256) -> bytes:
    n = key.public_numbers().n.to_bytes(key.key_size // 8, "big")
    area = struct.pack(">HHI", 0x0001, ALG_SHA256, attrs) + b2(b"") + struct.pack(">H", ALG_NULL)
    area += struct.pack(">H", scheme) + (struct.pack(">H", scheme_hash) if scheme != ALG_NULL else b"")
    return area + struct.pack(">HI", key.key_size, 0) + b2(n)


def name_of(area: bytes) -> bytes:
    return struct.pack(">H", ALG_SHA256) + hashlib.sha256(area).digest()


def attest(signer_name: bytes, extra: bytes, key_name: bytes, *, magic: int = 0xFF544347) -> bytes:
    body = struct.pack(">IH", magic, 0x8017) + b2(signer_name) + b2(extra)
    return body + struct.pack(">QIIB", 1, 2, 3, 1) + struct.pack(">Q", 4) + b2(key_name) + b2(key_name)


def claim_blob(attest_bytes: bytes, signer: rsa.RSAPrivateKey, key_area: bytes) -> bytes:
    raw = signer.sign(attest_bytes, padding.PKCS1v15(), hashes.SHA256())
    sig = struct.pack(">HH", ALG_RSASSA, ALG_SHA256) + b2(raw)
    key_blob = b2(key_area)
    header = struct.pack("<6I", 0x5344414B, 2, 24, len(attest_bytes), len(sig), len(key_blob))
    return header + attest_bytes + sig + key_blob
