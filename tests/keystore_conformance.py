"""The behaviour every KeyStore backend must show. A backend's test class inherits this and defines
a ``store`` fixture (a fresh, empty store, cleaned up afterwards).

Hooks for stores that do not hold arbitrary strings (the CNG sentinel keeps only certificate
references and returns CngKeyHandle objects): ``value(i)`` makes the i-th distinct valid value,
``normalize(got)`` turns what ``get`` returns back into a comparable string, and
``arbitrary_values = False`` turns the unicode/large-value tests into checks that such values are
refused (the documented limit) and that nothing was written.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from credential_helpers import assert_no_secrets
from entraclaw.errors import KeystoreError, SecretRefusedError
from entraclaw.keystore import EntryInfo, KeyStore

# Names a user or a provisioning bug could produce: path separators, parent references, Windows
# device names, case variants (NTFS/APFS fold case), spaces, wildcards, non-ASCII, astral plane,
# a leading dot, the maximum length.
ODD_NAMES = [
    "a/b",
    "..",
    "../escape",
    "C:\\Windows\\x",
    "CON",
    "con",
    "nul.txt",
    "Key",
    "key",
    "KEY",
    "with space ",
    " lead",
    "star*?<>|\"'",
    "percent%2F",
    "ünïcødé-名前",
    "\U0001f511",
    ".hidden",
    "trailing.",
    "x" * 200,
    "blueprint-key-1c1b0b5e-0000-4000-8000-000000000001-0123456789ABCDEF0123456789ABCDEF01234567",
]

UNICODE_VALUE = "clé 🔑 ü€ 中文 Ω\n\ttab and newline, \U0001f600 astral"
PEM_LIKE_LINE = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" + "A" * 12


def _large_value(size: int = 16 * 1024) -> str:
    lines = ["-----BEGIN PRIVATE KEY-----"]
    while sum(len(line) + 1 for line in lines) < size:
        lines.append(uuid.uuid4().hex + PEM_LIKE_LINE)
    lines.append("-----END PRIVATE KEY-----")
    return "\n".join(lines) + "\n"


class KeyStoreConformance:
    arbitrary_values = True

    # --- hooks ---------------------------------------------------------------------------------

    def value(self, i: int) -> str:
        return f"secret-{i}-{uuid.uuid4().hex}-" + PEM_LIKE_LINE

    def normalize(self, got: Any) -> Any:
        return got

    def entry(self, label: str = "e") -> str:
        return f"conformance-{label}-{uuid.uuid4().hex[:12]}"

    def check_no_secret(self, text: str, secrets: list[str]) -> None:
        assert_no_secrets(text, secrets)

    # --- the tests -----------------------------------------------------------------------------

    def test_round_trip(self, store: KeyStore[Any]) -> None:
        entry, value = self.entry(), self.value(1)
        store.put(entry, value)
        assert self.normalize(store.get(entry)) == value

    def test_overwrite_replaces_the_value(self, store: KeyStore[Any]) -> None:
        entry = self.entry()
        first, second = self.value(1), self.value(2)
        store.put(entry, first)
        store.put(entry, second)
        assert self.normalize(store.get(entry)) == second
        store.put(entry, first)
        assert self.normalize(store.get(entry)) == first

    def test_delete_is_idempotent(self, store: KeyStore[Any]) -> None:
        entry = self.entry()
        store.put(entry, self.value(1))
        assert store.delete(entry) is True
        assert store.get(entry) is None
        assert store.delete(entry) is False
        assert store.describe(entry).exists is False

    def test_get_missing_is_none(self, store: KeyStore[Any]) -> None:
        entry = self.entry("never-written")
        assert store.get(entry) is None
        info = store.describe(entry)
        assert (info.exists, info.size, info.entry) == (False, None, entry)

    def test_unicode_value(self, store: KeyStore[Any]) -> None:
        entry = self.entry()
        if not self.arbitrary_values:
            with pytest.raises(SecretRefusedError):
                store.put(entry, UNICODE_VALUE)
            assert store.get(entry) is None
            return
        store.put(entry, UNICODE_VALUE)
        assert store.get(entry) == UNICODE_VALUE

    def test_large_value_or_documented_limit(self, store: KeyStore[Any]) -> None:
        entry = self.entry()
        big = _large_value()
        if not self.arbitrary_values:
            with pytest.raises(SecretRefusedError) as caught:
                store.put(entry, big)
            self.check_no_secret(str(caught.value) + repr(caught.value), [big])
            assert store.get(entry) is None
            return
        store.put(entry, big)
        assert store.get(entry) == big

    def test_describe_reveals_no_secret(self, store: KeyStore[Any]) -> None:
        entry, value = self.entry(), self.value(7)
        store.put(entry, value)
        info = store.describe(entry)
        assert isinstance(info, EntryInfo)
        assert info.exists is True
        assert info.entry == entry
        assert info.backend == store.name
        assert info.location
        assert info.size is None or info.size > 0
        if self.arbitrary_values:
            self.check_no_secret(repr(info) + str(info) + info.location, [value])

    def test_odd_entry_names(self, store: KeyStore[Any]) -> None:
        # Used as they are (a suffix would hide CON and the case variants): every store fixture is
        # fresh (own directory, own keyring service).
        names = list(ODD_NAMES)
        values = {name: self.value(i) for i, name in enumerate(names)}
        try:
            for name, value in values.items():
                store.put(name, value)
            for name, value in values.items():
                assert self.normalize(store.get(name)) == value, name
                assert store.describe(name).entry == name
        finally:
            for name in names:
                store.delete(name)
        for name in names:
            assert store.get(name) is None, name

    def test_entries_are_isolated(self, store: KeyStore[Any]) -> None:
        a, b = self.entry("a"), self.entry("b")
        va, vb = self.value(1), self.value(2)
        store.put(a, va)
        store.put(b, vb)
        assert self.normalize(store.get(a)) == va
        assert self.normalize(store.get(b)) == vb
        store.put(a, self.value(3))
        assert self.normalize(store.get(b)) == vb
        assert store.delete(a) is True
        assert self.normalize(store.get(b)) == vb
        assert store.describe(b).exists is True

    def test_repr_has_no_secret(self, store: KeyStore[Any]) -> None:
        entry, value = self.entry(), self.value(9)
        store.put(entry, value)
        got = store.get(entry)
        self.check_no_secret(repr(store) + str(store), [value])
        if not isinstance(got, str) and self.arbitrary_values:
            self.check_no_secret(repr(got), [value])

    def test_invalid_entry_names_are_refused(self, store: KeyStore[Any]) -> None:
        value = self.value(1)
        for bad in ("", "line\nbreak", "nul\x00byte", "x" * 201):
            with pytest.raises(KeystoreError) as caught:
                store.put(bad, value)
            self.check_no_secret(str(caught.value) + repr(caught.value), [value])
            with pytest.raises(KeystoreError):
                store.get(bad)

    def test_no_secret_in_logs(self, store: KeyStore[Any], caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        entry, value = self.entry(), self.value(3)
        store.put(entry, value)
        store.get(entry)
        store.describe(entry)
        store.delete(entry)
        for record in caplog.records:
            self.check_no_secret(record.getMessage(), [value])
