"""MemoryStore passes the conformance suite, and is never what default_keystore() returns."""

from __future__ import annotations

import pytest

from entraclaw.errors import KeystoreError
from entraclaw.keystore import MemoryStore, default_keystore
from keystore_conformance import KeyStoreConformance


class TestMemoryStoreConformance(KeyStoreConformance):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_default_keystore_never_returns_the_memory_store(platform: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends import null

    # Even with nothing usable, the answer is an error, not an in-memory or plaintext store.
    monkeypatch.setattr(keyring, "get_keyring", lambda: null.Keyring())
    with pytest.raises(KeystoreError) as caught:
        default_keystore(platform=platform)
    assert "null" in str(caught.value)
    assert caught.value.backend == "keyring:null.Keyring"
