"""DpapiFileStore through the stand-in build of entraclaw._cng (protect/unprotect are AES-GCM there,
keyed per process and per entropy), plus the file format and file-system properties.

Real DPAPI (Wine's CryptProtectData) runs the same suite in tests/test_keystore_wine.py; a real
Windows profile only in the `windows` tests below (cibuildwheel's test step).
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cng_helpers import HR, Standin, require_standin, standin_fixture  # noqa: F401  (fixture)
from credential_helpers import assert_no_secrets, error_texts
from entraclaw import cng
from entraclaw.errors import KeystoreError
from entraclaw.keystore import DpapiFileStore
from entraclaw.keystore.dpapi_file import FILE_MAGIC, entry_entropy
from entraclaw.platform.files import CRASH_ENV, WRITE_STEPS
from keystore_conformance import PEM_LIKE_LINE, KeyStoreConformance
from keystore_helpers import FileKeyProtector, flip_last_byte

SECRET = "-----BEGIN PRIVATE KEY-----\n" + PEM_LIKE_LINE + "\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def dpapi_store(tmp_path: Path) -> DpapiFileStore:
    require_standin()
    return DpapiFileStore(tmp_path / "keys")


class TestDpapiFileStoreStandinConformance(KeyStoreConformance):
    @pytest.fixture
    def store(self, dpapi_store: DpapiFileStore) -> DpapiFileStore:
        return dpapi_store


def test_file_is_header_plus_blob_and_holds_no_plaintext(dpapi_store: DpapiFileStore) -> None:
    dpapi_store.put("blueprint-key-a", SECRET)
    path = dpapi_store.path_for("blueprint-key-a")
    assert path == dpapi_store.directory / "blueprint-key-a.dpapi"
    data = path.read_bytes()
    assert data.startswith(FILE_MAGIC)
    assert SECRET.encode() not in data
    assert PEM_LIKE_LINE.encode() not in data
    # The blob is exactly what DPAPI returns: unprotecting it with the entry's entropy gives the secret.
    assert cng.unprotect(data[len(FILE_MAGIC) :], entropy=entry_entropy("blueprint-key-a")) == SECRET.encode()
    info = dpapi_store.describe("blueprint-key-a")
    assert (info.backend, info.location, info.size) == ("dpapi-file", str(path), len(data))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes; Windows uses the DACL (stream winacl)")
def test_file_and_directory_are_owner_only_whatever_the_umask(dpapi_store: DpapiFileStore) -> None:
    old = os.umask(0)
    try:
        dpapi_store.put("e", SECRET)
    finally:
        os.umask(old)
    assert stat.S_IMODE(dpapi_store.path_for("e").stat().st_mode) == 0o600
    assert stat.S_IMODE(dpapi_store.directory.stat().st_mode) == 0o700
    assert [p.name for p in dpapi_store.directory.iterdir()] == ["e.dpapi"]  # no temp file left behind


def test_a_file_moved_to_another_entry_name_does_not_decrypt(dpapi_store: DpapiFileStore) -> None:
    dpapi_store.put("entry-a", SECRET)
    dpapi_store.put("entry-b", "other")
    dpapi_store.path_for("entry-b").write_bytes(dpapi_store.path_for("entry-a").read_bytes())
    with pytest.raises(KeystoreError) as caught:
        dpapi_store.get("entry-b")
    err = caught.value
    assert err.entry == "entry-b"
    assert err.path == str(dpapi_store.path_for("entry-b"))
    assert err.backend == "dpapi-file"
    assert err.hresult == HR["ERROR_INVALID_DATA"]
    assert "another entry name" in err.message
    for text in error_texts(err):
        assert_no_secrets(text, [SECRET])


def test_a_changed_byte_is_an_error_naming_the_file(dpapi_store: DpapiFileStore) -> None:
    dpapi_store.put("e", SECRET)
    path = dpapi_store.path_for("e")
    flip_last_byte(path)
    with pytest.raises(KeystoreError, match="could not decrypt") as caught:
        dpapi_store.get("e")
    assert str(path) in str(caught.value)


def test_a_foreign_file_is_refused_by_its_header(dpapi_store: DpapiFileStore) -> None:
    dpapi_store.put("e", SECRET)
    dpapi_store.path_for("e").write_text(SECRET)  # someone "restored" a plaintext PEM over it
    with pytest.raises(KeystoreError, match="unknown header") as caught:
        dpapi_store.get("e")
    for text in error_texts(caught.value):
        assert_no_secrets(text, [SECRET])


def test_dpapi_failure_on_protect_names_entry_and_hresult(dpapi_store: DpapiFileStore, standin: Standin) -> None:
    standin.fail("CryptProtectData", HR["E_ACCESSDENIED"])
    with pytest.raises(KeystoreError) as caught:
        dpapi_store.put("e", SECRET)
    err = caught.value
    assert (err.entry, err.backend, err.api) == ("e", "dpapi-file", "CryptProtectData")
    assert err.hresult == HR["E_ACCESSDENIED"]
    assert not dpapi_store.path_for("e").exists()
    for text in error_texts(err):
        assert_no_secrets(text, [SECRET])


def test_odd_names_map_to_distinct_safe_file_names(dpapi_store: DpapiFileStore) -> None:
    names = ["Key", "key", "a/b", "..", "CON", "con.x", "ünï"]
    for name in names:
        dpapi_store.put(name, name)
    files = sorted(p.name for p in dpapi_store.directory.iterdir())
    assert len(files) == len(names)
    assert "key.dpapi" in files  # already a safe lower-case name: kept as is
    for name in files:
        assert "/" not in name and name not in (".dpapi", "..dpapi")
        assert name.split(".")[0].lower() not in ("con", "nul")  # Windows device names, any extension
    # Case-insensitive file systems: no two names differ only by case.
    assert len({f.lower() for f in files}) == len(files)


def test_store_without_the_native_module_says_what_to_use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cng, "native_available", lambda: False)
    with pytest.raises(KeystoreError, match=r"entraclaw\._cng") as caught:
        DpapiFileStore(tmp_path)
    assert "default_keystore" in caught.value.remedy


@pytest.mark.windows
def test_windows_real_dpapi_conformance_smoke(tmp_path: Path) -> None:
    """On Windows: real CryptProtectData under the logged-on profile (cibuildwheel test step)."""
    from capabilities import require

    require("windows", sys.platform == "win32" and cng.backend() == "cng", "needs the Windows wheel (real CNG)")
    store = DpapiFileStore(tmp_path / "keys")
    store.put("blueprint-key-w", SECRET)
    assert store.get("blueprint-key-w") == SECRET
    assert SECRET.encode() not in store.path_for("blueprint-key-w").read_bytes()
    store.path_for("other").write_bytes(store.path_for("blueprint-key-w").read_bytes())
    with pytest.raises(KeystoreError):
        store.get("other")


# --- killed while writing ------------------------------------------------------------------------

_WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from keystore_helpers import FileKeyProtector, flip_last_byte
from entraclaw.keystore import DpapiFileStore
store = DpapiFileStore(sys.argv[2], protector=FileKeyProtector(Path(sys.argv[3])))
store.put("blueprint-key", sys.argv[4])
"""


@pytest.mark.parametrize("step", WRITE_STEPS)
def test_put_killed_at_every_write_step_keeps_old_or_new_and_converges(tmp_path: Path, step: str) -> None:
    # FileKeyProtector: the stand-in's DPAPI key lives and dies with one process; the point here is
    # the file, written through entraclaw.platform.files.atomic_write and its crash points.
    key_file, directory = tmp_path / "test.key", tmp_path / "keys"
    store = DpapiFileStore(directory, protector=FileKeyProtector(key_file))
    old, new = "old " + PEM_LIKE_LINE, "new " + PEM_LIKE_LINE
    store.put("blueprint-key", old)
    env = {**os.environ, CRASH_ENV: step}
    tests_dir = str(Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", _WRITER, tests_dir, str(directory), str(key_file), new],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    got = store.get("blueprint-key")
    assert got == (new if step == WRITE_STEPS[-1] else old)  # a whole value, never a torn one
    store.put("blueprint-key", new)
    assert store.get("blueprint-key") == new
    assert [p.name for p in directory.iterdir()] == ["blueprint-key.dpapi"]  # the next write cleaned up
