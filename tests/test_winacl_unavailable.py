"""entraclaw.platform.winacl without the native module, and its error mapping (pure Python, every OS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from entraclaw import errors
from entraclaw.platform import winacl


@pytest.fixture
def no_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(winacl, "_cng", None)
    monkeypatch.setattr(winacl, "_IMPORT_ERROR", "No module named 'entraclaw._cng'")


@pytest.mark.parametrize(
    "call",
    [
        lambda p: winacl.set_owner_only(p),
        lambda p: winacl.read_dacl(p),
        lambda p: winacl.describe_dacl(p),
        lambda p: winacl.current_account(),
    ],
)
def test_without_native_module_every_call_says_so(no_native: None, tmp_path: Path, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(errors.NativeModuleUnavailableError) as caught:
        call(tmp_path / "x")
    assert "entraclaw._cng" in str(caught.value)
    assert "pip install entraclaw" in caught.value.remedy and "chmod 0600" in caught.value.remedy


def test_access_denied_maps_to_a_remedy_with_real_commands(no_native: None) -> None:
    path = r"C:\Users\agent\AppData\Local\entraclaw\.env"
    err = winacl.error_for_status(path, "restrict to the owner", "SetNamedSecurityInfoW", 0x80070005)
    assert isinstance(err, errors.FilePermissionError)
    assert (err.win32_error, err.error_name, err.hresult) == (5, "ERROR_ACCESS_DENIED", 0x80070005)
    assert err.message == (
        f"Could not restrict to the owner {path}: SetNamedSecurityInfoW failed with 0x80070005 (ERROR_ACCESS_DENIED)."
    )
    assert f'takeown /F "{path}"' in err.remedy and f'icacls "{path}" /reset' in err.remedy
    assert err.system_message is None


def test_braces_in_a_path_do_not_break_the_remedy(no_native: None) -> None:
    path = "/tmp/{odd}/x"
    for code in (0x80070002, 0x80070005, 0x80070020, 0x80070032):
        assert path in winacl.error_for_status(path, "restrict to the owner", "SetNamedSecurityInfoW", code).remedy
    missing_parent = winacl.error_for_status(path, "restrict to the owner", "SetNamedSecurityInfoW", 0x80070003)
    assert "'/tmp/{odd}'" in missing_parent.remedy


@pytest.mark.parametrize(
    ("code", "name", "needle"),
    [
        (0x80070002, "ERROR_FILE_NOT_FOUND", "Test-Path"),
        (0x80070003, "ERROR_PATH_NOT_FOUND", "New-Item"),
        (0x80070020, "ERROR_SHARING_VIOLATION", "close it"),
        (0x80070032, "ERROR_NOT_SUPPORTED", "NTFS"),
        (0x80070538, "ERROR_INVALID_ACL", "bug in entraclaw"),
        (0x8007007A, None, "Get-Acl"),  # ERROR_INSUFFICIENT_BUFFER: not expected from these calls
        (0x80090016, None, "Get-Acl"),  # not a Win32 code at all
    ],
)
def test_codes_map_to_names_and_remedies(no_native: None, code: int, name: str | None, needle: str) -> None:
    err = winacl.error_for_status("C:\\x", "read the DACL of", "GetNamedSecurityInfoW", code)
    assert err.error_name == name
    assert needle in err.remedy
    assert f"0x{code:08X}" in err.message


def test_dacl_info_owner_only_rule() -> None:
    me = "S-1-5-21-1-2-3-1001"
    ace = winacl.Ace(me, winacl.FILE_ALL_ACCESS, 0, 0)
    base = winacl.DaclInfo("p", me, True, True, (ace,))
    assert base.is_owner_only(me)
    assert not base.is_owner_only("S-1-5-18")
    assert not winacl.DaclInfo("p", me, False, True, (ace,)).is_owner_only(me)  # inheritance not cut
    assert not winacl.DaclInfo("p", me, True, False, ()).is_owner_only(me)  # NULL DACL
    assert not winacl.DaclInfo("p", me, True, True, (ace, ace)).is_owner_only(me)
    assert not winacl.DaclInfo("p", me, True, True, (winacl.Ace(me, 0x1200A9, 0, 0),)).is_owner_only(me)
    assert not winacl.DaclInfo("p", me, True, True, (winacl.Ace(me, winacl.FILE_ALL_ACCESS, 1, 0),)).is_owner_only(me)


def test_account_info_describe() -> None:
    svc = winacl.AccountInfo("S-1-5-19", "NT AUTHORITY\\LOCAL SERVICE", "LocalService", "NT AUTHORITY")
    assert svc.is_service
    assert svc.describe() == (
        "NT AUTHORITY\\LOCAL SERVICE (S-1-5-19), the LocalService service account: state lives in that "
        "account's profile"
    )
    user = winacl.AccountInfo("S-1-5-21-1-2-3-1001", "PC\\alice", "user", "PC")
    assert not user.is_service and user.describe() == "PC\\alice (S-1-5-21-1-2-3-1001)"
