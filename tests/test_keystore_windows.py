"""The keystore on real Windows (cibuildwheel's test step, ENTRACLAW_REQUIRE=windows): Credential
Manager through keyring's WinVaultKeyring, DPAPI under the logged-on profile, the CNG sentinel with a
real software-KSP certificate. Skipped elsewhere; failing, not skipping, where CI requires `windows`.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capabilities import require
from cng_helpers import verify
from entraclaw import cng
from entraclaw.keystore import CRED_MAX_CREDENTIAL_BLOB_SIZE, CngSentinelStore, DpapiFileStore, KeyringStore
from keystore_conformance import KeyStoreConformance
from keystore_helpers import track_puts

pytestmark = pytest.mark.windows


def _require_windows() -> None:
    require("windows", sys.platform == "win32" and cng.backend() == "cng", "needs Windows with entraclaw._cng")


def _purge(store: KeyringStore, entries: list[str]) -> None:
    for entry in entries:
        store.delete(entry)


class TestWindowsDefaultPathConformance(KeyStoreConformance):
    """Credential Manager + DPAPI file, both real: what default_keystore() builds on Windows."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[KeyringStore]:
        _require_windows()
        import keyring

        service = f"entraclaw-test-{uuid.uuid4().hex[:12]}"
        store = KeyringStore(
            service,
            backend=keyring.get_keyring(),
            size_limit=CRED_MAX_CREDENTIAL_BLOB_SIZE,
            overflow=DpapiFileStore(tmp_path / "keys"),
        )
        assert store.name == "keyring:Windows.WinVaultKeyring"
        written = track_puts(store)
        yield store
        _purge(store, written)


class TestWindowsDpapiFileConformance(KeyStoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> DpapiFileStore:
        _require_windows()
        return DpapiFileStore(tmp_path / "keys")


class TestWindowsCngSentinelConformance(KeyStoreConformance):
    arbitrary_values = False

    @pytest.fixture
    def store(self, tmp_path: Path) -> CngSentinelStore:
        _require_windows()
        return CngSentinelStore(tmp_path / "keys")

    def value(self, i: int) -> str:
        import hashlib

        return f"cng:CurrentUser/{hashlib.sha1(f'{i}-{uuid.uuid4()}'.encode()).hexdigest().upper()}"

    def normalize(self, got: Any) -> Any:
        return None if got is None else f"cng:{got.store_location}/{got.thumbprint}"


def test_sentinel_handle_signs_with_a_real_software_ksp_key(tmp_path: Path) -> None:
    _require_windows()
    prefix = f"entraclaw-pytest-{uuid.uuid4().hex[:12]}-"
    made = cng.create_certificate(prefix + "sentinel", provider="software")
    try:
        store = CngSentinelStore(tmp_path / "keys")
        store.put("blueprint-key", f"cng:CurrentUser/{made.thumbprint}")
        handle = store.get("blueprint-key")
        assert handle is not None
        signature = handle.as_signer().sign(b"windows sentinel")
        verify(made.certificate, signature, b"windows sentinel")
        handle.close()
    finally:
        for cert in cng.list_certificates(prefix):
            cng.delete_certificate(cert.thumbprint)
