"""Without the compiled module entraclaw.cng still imports and fails clearly (runs everywhere)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from entraclaw import cng, errors

THUMB = "0123456789ABCDEF0123456789ABCDEF01234567"


@pytest.fixture
def no_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cng, "_cng", None)
    monkeypatch.setattr(cng, "_IMPORT_ERROR", "No module named 'entraclaw._cng'")


def test_module_imports_without_the_native_module() -> None:
    # A fresh interpreter where importing entraclaw._cng fails, as on the pure wheel.
    code = (
        "import sys; sys.modules['entraclaw._cng'] = None\n"
        "from entraclaw import cng, errors\n"
        "assert not cng.native_available() and cng.status_table() == ()\n"
        "try:\n"
        f"    cng.CngKeyHandle({THUMB!r})\n"
        "except errors.NativeModuleUnavailableError as exc:\n"
        "    print('unavailable:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("unavailable: CngKeyHandle needs the compiled module entraclaw._cng")


@pytest.mark.parametrize(
    "call",
    [
        lambda: cng.CngKeyHandle(THUMB),
        lambda: cng.CngSigner(THUMB),
        lambda: cng.create_certificate("entraclaw-x"),
        lambda: cng.list_certificates(),
        lambda: cng.delete_certificate(THUMB),
        lambda: cng.protect(b"x"),
        lambda: cng.unprotect(b"x"),
    ],
)
def test_everything_raises_native_module_unavailable(no_native: None, call) -> None:
    with pytest.raises(errors.NativeModuleUnavailableError) as info:
        call()
    assert "entraclaw._cng" in str(info.value)
    assert "Windows wheel" in str(info.value)
    assert cng.native_available() is False
    assert cng.backend() is None
