"""The signer core cross-built with mingw-w64, run under Wine against Wine's real ncrypt/crypt32.

One probe run per session (tests/wine_helpers.py): an ephemeral RSA-2048 key in
the Microsoft Software Key Storage Provider signs SHA-256 digests through
entraclaw::cng::sign_digest / sign_digest_sized; every signature is verified
here with `cryptography` against the key the probe exported.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

import wine_helpers as wh
from entraclaw.auth import build_client_assertion
from entraclaw.auth._b64 import b64url_encode
from entraclaw.auth.signer import Algorithm, Signer
from entraclaw.auth.thumbprint import compute_cert_thumbprint

pytestmark = [pytest.mark.wine, pytest.mark.slow]

CLIENT_ID = "00000000-0000-4000-8000-00000000c0de"
TOKEN_ENDPOINT = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
PKCS1 = padding.PKCS1v15()


class _RecordingSigner(Signer):
    """Captures the JWS signing input build_client_assertion produces; the probe signs it later."""

    def __init__(self) -> None:
        self.inputs: list[bytes] = []

    @property
    def certificate(self) -> None:
        return None

    def sign(self, data: bytes, algorithm: Algorithm = "RS256") -> bytes:
        self.inputs.append(data)
        return b"\x00" * 256


def _assertion_inputs() -> dict[str, bytes]:
    recorder = _RecordingSigner()
    thumbprint = compute_cert_thumbprint(b"entraclaw wine probe: placeholder certificate bytes")
    algorithms: tuple[Algorithm, ...] = ("RS256", "PS256")
    for algorithm in algorithms:
        build_client_assertion(
            private_key_pem=recorder,
            cert_thumbprint=thumbprint,
            client_id=CLIENT_ID,
            token_endpoint=TOKEN_ENDPOINT,
            algorithm=algorithm,
        )
    return {"RS256": recorder.inputs[0], "PS256": recorder.inputs[1]}


@dataclass
class ProbeRun:
    messages: list[bytes]
    assertion_inputs: dict[str, bytes]
    output: wh.ProbeOutput
    exe: Path
    prefix: Path


@pytest.fixture(scope="session")
def probe_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wh.probe_exe(tmp_path_factory)


@pytest.fixture(scope="session")
def probe(probe_exe: Path, wine_prefix: Path) -> ProbeRun:
    inputs = _assertion_inputs()
    messages = [
        b"",
        b"abc",
        "Entra Agent User \u00fc\u20ac \U0001f511".encode(),
        os.urandom(1 << 20),
        inputs["RS256"],
        inputs["PS256"],
    ]
    done = wh.run_probe(probe_exe, wine_prefix, [wh.sha256_hex(m) for m in messages])
    assert done.returncode == 0, (
        f"probe exited {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    )
    output = wh.parse_probe_output(done.stdout)
    assert output.done, "probe output is truncated:\n" + done.stdout[-2000:]
    return ProbeRun(messages, inputs, output, probe_exe, wine_prefix)


def _verify(probe: ProbeRun, sig: bytes, message: bytes, pad: padding.AsymmetricPadding) -> None:
    probe.output.public_key.verify(sig, message, pad, hashes.SHA256())


def test_probe_exports_an_rsa_2048_public_key(probe: ProbeRun) -> None:
    out = probe.output
    assert out.backend == "cng"
    assert out.key_bits == 2048
    key = out.public_key
    assert key.key_size == 2048
    assert key.public_numbers().e == 65537


@pytest.mark.parametrize("pad_name", ["pkcs1", "pss"])
def test_every_signature_verifies_against_the_exported_key(probe: ProbeRun, pad_name: str) -> None:
    pad = PKCS1 if pad_name == "pkcs1" else PSS
    for index, message in enumerate(probe.messages):
        sigs = probe.output.signatures[(pad_name, index)]
        assert len(sigs) == 2
        for sig in sigs:
            assert len(sig) == 256
            _verify(probe, sig, message, pad)


def test_pkcs1_is_deterministic_and_pss_is_salted(probe: ProbeRun) -> None:
    for index in range(len(probe.messages)):
        first, second = probe.output.signatures[("pkcs1", index)]
        assert first == second
        first, second = probe.output.signatures[("pss", index)]
        assert first != second


def test_pss_signature_uses_a_32_byte_salt(probe: ProbeRun) -> None:
    sig = probe.output.signatures[("pss", 1)][0]
    _verify(probe, sig, probe.messages[1], PSS)
    # A verifier that expects another salt length rejects it: the salt really is 32 bytes.
    with pytest.raises(InvalidSignature):
        _verify(probe, sig, probe.messages[1], padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20))


@pytest.mark.parametrize("pad_name", ["pkcs1", "pss"])
def test_tampering_fails_verification(probe: ProbeRun, pad_name: str) -> None:
    pad = PKCS1 if pad_name == "pkcs1" else PSS
    sig = probe.output.signatures[(pad_name, 2)][0]
    message = probe.messages[2]
    tampered = bytes([message[0] ^ 0x01]) + message[1:]
    with pytest.raises(InvalidSignature):
        _verify(probe, sig, tampered, pad)
    with pytest.raises(InvalidSignature):
        _verify(probe, sig, probe.messages[1], pad)  # another message's digest
    bad_sig = sig[:-1] + bytes([sig[-1] ^ 0x01])
    with pytest.raises(InvalidSignature):
        _verify(probe, bad_sig, message, pad)
    other = PSS if pad is PKCS1 else PKCS1
    with pytest.raises(InvalidSignature):
        _verify(probe, sig, message, other)


def test_provider_answers_a_small_buffer_with_nte_buffer_too_small(probe: ProbeRun) -> None:
    # The answer the core's resize path is built on, straight from ncrypt.dll:
    # the status, the needed size in pcbResult, and no byte written past the buffer.
    assert probe.output.raw_small == (wh.NTE_BUFFER_TOO_SMALL, "NTE_BUFFER_TOO_SMALL", 256, False)


@pytest.mark.parametrize("pad_name", ["pkcs1", "pss"])
def test_sized_signing_resizes_a_small_hint_and_uses_an_exact_one(probe: ProbeRun, pad_name: str) -> None:
    pad = PKCS1 if pad_name == "pkcs1" else PSS
    for index, message in enumerate(probe.messages):
        for hint in (16, 256):
            hr, sig = probe.output.sized[(pad_name, hint, index)]
            assert hr == 0, f"{pad_name} hint={hint} message {index}: 0x{hr:08X}"
            assert len(sig) == 256
            _verify(probe, sig, message, pad)
            if pad_name == "pkcs1":
                assert sig == probe.output.signatures[("pkcs1", index)][0]


@pytest.mark.parametrize("case", ["null_handle", "provider_handle"])
def test_invalid_key_handle_maps_to_stale_handle(probe: ProbeRun, case: str) -> None:
    st = probe.output.statuses[case]
    assert (st.hr, st.api, st.name) == (wh.NTE_INVALID_HANDLE, "NCryptSignHash", "NTE_INVALID_HANDLE")
    assert (st.category, st.action) == ("stale_handle", "reacquire")


def test_wrong_digest_length_is_rejected_before_any_win32_call(probe: ProbeRun) -> None:
    st = probe.output.statuses["short_digest"]
    assert (st.hr, st.api, st.name, st.category) == (
        wh.NTE_INVALID_PARAMETER,
        "sign_digest",
        "NTE_INVALID_PARAMETER",
        "other",
    )


def test_pkcs1_after_pss_on_one_key(probe: ProbeRun) -> None:
    assert probe.output.after_pss is not None
    hr, sig = probe.output.after_pss
    if hr == 0:  # Windows, or a Wine that fixed it
        _verify(probe, sig, probe.messages[0], PKCS1)
    else:
        # Wine 8 (gnutls backend) keeps PSS parameters on the key; see native/wine/README.md.
        assert (hr, sig) == (wh.NTE_INTERNAL_ERROR, b"")


def test_dpapi_round_trip_through_the_core(probe: ProbeRun) -> None:
    dp = probe.output.dpapi
    assert dp["protect"].hr == 0
    assert "plaintext_visible=0" in dp["protect"].detail
    assert (dp["unprotect"].hr, dp["unprotect"].detail) == (0, "roundtrip=1")


@pytest.mark.parametrize("case", ["wrong_entropy", "missing_entropy", "tampered"])
def test_dpapi_rejects_foreign_or_damaged_blobs(probe: ProbeRun, case: str) -> None:
    st = probe.output.dpapi[case]
    assert (st.hr, st.api, st.name) == (
        wh.HRESULT_FROM_WIN32_ERROR_INVALID_DATA,
        "CryptUnprotectData",
        "ERROR_INVALID_DATA",
    )
    assert st.detail == "len=0"


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_client_assertion_signed_by_the_core_validates_with_pyjwt(probe: ProbeRun, algorithm: str) -> None:
    signing_input = probe.assertion_inputs[algorithm]
    index = probe.messages.index(signing_input)
    sig = probe.output.signatures[("pkcs1" if algorithm == "RS256" else "pss", index)][0]
    token = signing_input.decode("ascii") + "." + b64url_encode(sig)
    pem = probe.output.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(token, pem, algorithms=[algorithm], audience=TOKEN_ENDPOINT)
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert jwt.get_unverified_header(token)["alg"] == algorithm


def test_probe_is_self_contained(probe: ProbeRun) -> None:
    # Static libstdc++/libgcc/winpthread: only system DLLs may be imported.
    data = probe.exe.read_bytes()
    imports = {name.lower() for name in _pe_imports(data)}
    assert imports <= {
        "kernel32.dll",
        "msvcrt.dll",
        "ncrypt.dll",
        "crypt32.dll",
        "bcrypt.dll",
        "advapi32.dll",
        "api-ms-win-crt-runtime-l1-1-0.dll",
    }, imports
    assert {"ncrypt.dll", "crypt32.dll"} <= imports


def test_probe_rejects_a_malformed_digest(probe: ProbeRun) -> None:
    done = wh.run_probe(probe.exe, probe.prefix, ["zz"])
    assert done.returncode == 2
    assert "not a 64-digit hex SHA-256 digest" in done.stderr
    assert done.stdout == ""


def _pe_imports(data: bytes) -> list[str]:
    """DLL names from a PE32+ import directory (enough of the format for this check)."""
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    assert data[pe : pe + 4] == b"PE\0\0"
    n_sections = struct.unpack_from("<H", data, pe + 6)[0]
    opt_size = struct.unpack_from("<H", data, pe + 20)[0]
    opt = pe + 24
    assert struct.unpack_from("<H", data, opt)[0] == 0x20B, "not PE32+"
    import_rva = struct.unpack_from("<I", data, opt + 112 + 8)[0]  # DataDirectory[IMAGE_DIRECTORY_ENTRY_IMPORT]
    sections = []
    for i in range(n_sections):
        off = opt + opt_size + 40 * i
        vsize, vaddr, raw_size, raw_ptr = struct.unpack_from("<IIII", data, off + 8)
        sections.append((vaddr, max(vsize, raw_size), raw_ptr))

    def to_offset(rva: int) -> int:
        for vaddr, size, raw_ptr in sections:
            if vaddr <= rva < vaddr + size:
                return rva - vaddr + raw_ptr
        raise ValueError(f"RVA 0x{rva:x} is in no section")

    names = []
    desc = to_offset(import_rva)
    while True:
        name_rva = struct.unpack_from("<I", data, desc + 12)[0]
        if name_rva == 0:
            break
        start = to_offset(name_rva)
        names.append(data[start : data.index(b"\0", start)].decode("ascii"))
        desc += 20
    return names
