"""DpapiFileStore on real DPAPI: Wine's CryptProtectData/CryptUnprotectData, reached through the core's
protect_data/unprotect_data cross-built with mingw-w64 (native/wine/dpapi_probe.cpp).

The probe serves protect/unprotect line by line, so the whole conformance suite runs with Wine as
the store's protector; and it reads and writes keystore files itself, so a file the Python store
wrote is decrypted by native code reading it from disk, and the other way round.
"""

from __future__ import annotations

import select
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import wine_helpers as wh
from entraclaw.errors import KeystoreError
from entraclaw.keystore import DpapiFileStore
from entraclaw.keystore.dpapi_file import FILE_MAGIC, entry_entropy
from keystore_conformance import KeyStoreConformance
from keystore_helpers import flip_last_byte

pytestmark = [pytest.mark.wine, pytest.mark.slow]

DPAPI_PROBE_NAME = "entraclaw_wine_dpapi_probe.exe"
ERROR_INVALID_DATA = 0x8007000D
ANSWER_TIMEOUT_S = 120  # the first request in a fresh prefix waits for Wine to build it


def _hex(data: bytes) -> str:
    return data.hex() if data else "-"


def wine_path(path: Path) -> str:
    # Wine maps drive Z: to the Unix root.
    return "Z:" + str(path.resolve()).replace("/", "\\")


class WineDpapi:
    """A DataProtector backed by one running probe process (one Wine start for many calls)."""

    def __init__(self, exe: Path, prefix: Path, log: Path) -> None:
        self._stderr = log.open("wb")
        self.proc = subprocess.Popen(
            [wh.wine_loader(), str(exe), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=wh.wine_env(prefix),
        )
        self._log = log

    def request(self, *fields: str) -> tuple[bool, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((" ".join(fields) + "\n").encode("ascii"))
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], ANSWER_TIMEOUT_S)
        assert ready, f"no answer from the DPAPI probe in {ANSWER_TIMEOUT_S}s: {self._log.read_text()[-2000:]}"
        line = self.proc.stdout.readline().decode("ascii").strip()
        assert line, f"the DPAPI probe exited: {self._log.read_text(errors='replace')[-2000:]}"
        kind, _, rest = line.partition(" ")
        return kind == "ok", rest

    def _call(self, op: str, payload: bytes, entropy: bytes) -> bytes:
        ok, rest = self.request(op, _hex(payload), _hex(entropy))
        if ok:
            return b"" if rest == "-" else bytes.fromhex(rest)
        hresult, api = rest.split(" ")
        # What entraclaw.cng's DPAPI wrapper raises, with the same fields.
        raise KeystoreError(f"DPAPI {op} failed: {api} returned {hresult}.", hresult=int(hresult, 16), api=api)

    def protect(self, data: bytes, entropy: bytes) -> bytes:
        return self._call("protect", data, entropy)

    def unprotect(self, blob: bytes, entropy: bytes) -> bytes:
        return self._call("unprotect", blob, entropy)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"quit\n")
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


@pytest.fixture(scope="module")
def dpapi_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wh.probe_exe(tmp_path_factory, DPAPI_PROBE_NAME)


@pytest.fixture(scope="module")
def wine_dpapi(dpapi_exe: Path, wine_prefix: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WineDpapi]:
    server = WineDpapi(dpapi_exe, wine_prefix, tmp_path_factory.mktemp("wine-dpapi-log") / "stderr.txt")
    yield server
    server.close()


@pytest.fixture
def wine_store(wine_dpapi: WineDpapi, tmp_path: Path) -> DpapiFileStore:
    return DpapiFileStore(tmp_path / "keys", protector=wine_dpapi)


class TestDpapiFileStoreWineConformance(KeyStoreConformance):
    @pytest.fixture
    def store(self, wine_store: DpapiFileStore) -> DpapiFileStore:
        return wine_store


SECRET = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC wine test\n-----END PRIVATE KEY-----\n"


def test_blob_in_the_file_is_a_real_dpapi_blob(wine_store: DpapiFileStore) -> None:
    wine_store.put("blueprint-key-w", SECRET)
    data = wine_store.path_for("blueprint-key-w").read_bytes()
    assert data.startswith(FILE_MAGIC)
    blob = data[len(FILE_MAGIC) :]
    # A CryptProtectData blob starts with dwVersion = 1 and a 16-byte provider id: on Windows the
    # DPAPI GUID {df9d8cd0-1501-11d1-8c7a-00c04fc297eb}, in Wine 8 the bytes "Wine Crypt32 ok\0"
    # (measured). The stand-in's blobs start with "ECDPAPI1" instead.
    assert blob[:4] == b"\x01\x00\x00\x00"
    assert blob[4:20] in (bytes.fromhex("d08c9ddf0115d1118c7a00c04fc297eb"), b"Wine Crypt32 ok\x00")
    assert SECRET.encode() not in data


def test_file_written_by_the_python_store_is_read_by_native_code_in_another_process(
    wine_store: DpapiFileStore, dpapi_exe: Path, wine_prefix: Path, tmp_path: Path
) -> None:
    wine_store.put("blueprint-key-w", SECRET)
    other = WineDpapi(dpapi_exe, wine_prefix, tmp_path / "other.txt")
    try:
        ok, rest = other.request(
            "readfile", wine_path(wine_store.path_for("blueprint-key-w")), entry_entropy("blueprint-key-w").hex()
        )
        assert ok, rest
        assert bytes.fromhex(rest) == SECRET.encode("utf-8")
        # The entropy is the entry name: under another name the same file does not decrypt.
        ok, rest = other.request(
            "readfile", wine_path(wine_store.path_for("blueprint-key-w")), entry_entropy("other").hex()
        )
        assert (ok, rest) == (False, f"0x{ERROR_INVALID_DATA:08X} CryptUnprotectData")
    finally:
        other.close()


def test_file_written_by_native_code_is_read_by_the_python_store(
    wine_store: DpapiFileStore, dpapi_exe: Path, wine_prefix: Path, tmp_path: Path
) -> None:
    path = wine_store.path_for("written-natively")
    path.parent.mkdir(parents=True, exist_ok=True)
    other = WineDpapi(dpapi_exe, wine_prefix, tmp_path / "other.txt")
    try:
        ok, rest = other.request(
            "writefile", wine_path(path), entry_entropy("written-natively").hex(), SECRET.encode().hex()
        )
        assert ok, rest
    finally:
        other.close()
    assert wine_store.get("written-natively") == SECRET
    assert wine_store.describe("written-natively").size == path.stat().st_size


def test_file_moved_to_another_entry_is_refused_by_real_dpapi(wine_store: DpapiFileStore) -> None:
    wine_store.put("entry-a", SECRET)
    wine_store.put("entry-b", "b")
    shutil.copyfile(wine_store.path_for("entry-a"), wine_store.path_for("entry-b"))
    with pytest.raises(KeystoreError) as caught:
        wine_store.get("entry-b")
    err = caught.value
    assert (err.hresult, err.api, err.entry) == (ERROR_INVALID_DATA, "CryptUnprotectData", "entry-b")
    assert SECRET not in str(err) and SECRET not in repr(err)


def test_a_flipped_byte_is_refused_by_real_dpapi(wine_store: DpapiFileStore) -> None:
    wine_store.put("e", SECRET)
    path = wine_store.path_for("e")
    flip_last_byte(path)
    with pytest.raises(KeystoreError) as caught:
        wine_store.get("e")
    assert caught.value.hresult == ERROR_INVALID_DATA
