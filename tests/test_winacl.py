"""Owner-only DACLs and account detection through the core, against the stand-in's advapi32 model.

The stand-in keeps a real security descriptor per file (the ACL bytes the core
built, copied), checks WRITE_DAC / WRITE_OWNER / READ_CONTROL like Windows
does before it lets the caller touch them, and reports the process token's
user as whatever SID the test picks (LocalSystem, LocalService, ...).
What only Windows can prove is in tests/test_winacl_windows.py.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from cng_helpers import require_standin
from entraclaw import errors
from entraclaw.platform import winacl

pytestmark = [pytest.mark.standin, pytest.mark.native]

try:
    from entraclaw import _cng_standin as standin_module
except ImportError:
    standin_module = None

# winerror.h values, written out independently of the code under test.
ERROR_FILE_NOT_FOUND = 2
ERROR_PATH_NOT_FOUND = 3
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_OWNER = 1307
ERROR_NOT_ENOUGH_MEMORY = 8
ERROR_INSUFFICIENT_BUFFER = 122
FILE_ALL_ACCESS = 0x001F01FF
OI_CI = 0x01 | 0x02
INHERITED_ACE = 0x10
SYSTEM = "S-1-5-18"
LOCAL_SERVICE = "S-1-5-19"
NETWORK_SERVICE = "S-1-5-20"
ADMINISTRATORS = "S-1-5-32-544"


def hresult(win32: int) -> int:
    return 0x80070000 | win32


@pytest.fixture
def standin() -> Iterator[object]:
    require_standin()
    assert standin_module is not None
    standin_module.reset()
    yield standin_module
    # Every token closed, every LocalFree'd buffer freed, nothing freed twice.
    assert standin_module.open_handles() == 0
    assert standin_module.invalid_frees() == 0
    standin_module.reset()


@pytest.fixture
def me(standin: object) -> str:
    assert standin_module is not None
    return str(standin_module.default_user_sid())


@pytest.fixture
def state_file(tmp_path: Path, standin: object) -> Path:
    path = tmp_path / "state" / ".env"
    path.parent.mkdir()
    path.write_text("ENTRACLAW_TENANT_ID=00000000-0000-4000-8000-000000000000\n", encoding="utf-8")
    return path


def test_new_file_starts_with_the_inherited_acl(state_file: Path, me: str) -> None:
    dacl = winacl.read_dacl(state_file)
    assert dacl.owner_sid == me
    assert not dacl.protected
    assert [(a.sid, a.mask) for a in dacl.aces] == [(me, FILE_ALL_ACCESS), (SYSTEM, FILE_ALL_ACCESS),
                                                    (ADMINISTRATORS, FILE_ALL_ACCESS)]  # fmt: skip
    assert all(a.inherited for a in dacl.aces)
    assert not dacl.is_owner_only(me)


def test_set_owner_only_leaves_one_protected_ace_for_the_current_sid(state_file: Path, me: str) -> None:
    winacl.set_owner_only(state_file)
    dacl = winacl.read_dacl(state_file)
    assert dacl.protected
    assert dacl.dacl_present
    assert dacl.owner_sid == me
    assert dacl.aces == (winacl.Ace(me, FILE_ALL_ACCESS, 0, 0),)
    assert dacl.is_owner_only(me)
    assert winacl.describe_dacl(state_file) == [(me, FILE_ALL_ACCESS)]
    assert dacl.path == str(state_file)


def test_set_owner_only_is_idempotent_and_accepts_str_paths(state_file: Path, me: str) -> None:
    winacl.set_owner_only(str(state_file))
    winacl.set_owner_only(state_file)
    assert winacl.read_dacl(state_file).is_owner_only(me)


def test_directory_ace_is_inheritable_by_what_is_created_inside(state_file: Path, me: str) -> None:
    winacl.set_owner_only(state_file.parent)
    dacl = winacl.read_dacl(state_file.parent)
    assert dacl.protected
    assert dacl.aces == (winacl.Ace(me, FILE_ALL_ACCESS, 0, OI_CI),)


def test_relative_path_is_reported_absolute(state_file: Path, monkeypatch: pytest.MonkeyPatch, me: str) -> None:
    monkeypatch.chdir(state_file.parent)
    winacl.set_owner_only(".env")
    assert winacl.read_dacl(".env").path == str(state_file)
    assert winacl.read_dacl(state_file).is_owner_only(me)


def test_access_denied_is_a_typed_error_naming_path_api_and_code(state_file: Path, me: str) -> None:
    assert standin_module is not None
    # Both attempts (with the owner, then DACL only) are refused.
    standin_module.fail("SetNamedSecurityInfoW", ERROR_ACCESS_DENIED, times=2)
    with pytest.raises(errors.FilePermissionError) as caught:
        winacl.set_owner_only(state_file)
    err = caught.value
    assert err.path == str(state_file)
    assert err.api == "SetNamedSecurityInfoW"
    assert err.hresult == hresult(ERROR_ACCESS_DENIED)
    assert err.win32_error == ERROR_ACCESS_DENIED
    assert err.error_name == "ERROR_ACCESS_DENIED"
    assert err.operation == "restrict to the owner"
    text = str(err)
    assert str(state_file) in text and "SetNamedSecurityInfoW" in text and "0x80070005" in text
    assert "takeown /F" in err.remedy and "icacls" in err.remedy
    # Nothing changed on disk.
    assert not winacl.read_dacl(state_file).protected
    assert standin_module.call_count("SetNamedSecurityInfoW") == 2
    # Survives pickling with its fields.
    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.api, again.hresult) == (err.path, err.api, err.hresult)


@pytest.mark.parametrize(
    ("api", "code"),
    [
        ("OpenProcessToken", ERROR_ACCESS_DENIED),
        ("GetTokenInformation", ERROR_NOT_ENOUGH_MEMORY),
        ("ConvertSidToStringSidW", ERROR_NOT_ENOUGH_MEMORY),
        ("InitializeAcl", ERROR_INSUFFICIENT_BUFFER),
        ("AddAccessAllowedAceEx", ERROR_NOT_ENOUGH_MEMORY),
        ("SetNamedSecurityInfoW", ERROR_NOT_ENOUGH_MEMORY),
    ],
)
def test_each_call_failing_names_itself_and_changes_nothing(state_file: Path, api: str, code: int) -> None:
    assert standin_module is not None
    standin_module.fail(api, code)
    with pytest.raises(errors.FilePermissionError) as caught:
        winacl.set_owner_only(state_file)
    assert (caught.value.api, caught.value.hresult, caught.value.path) == (api, hresult(code), str(state_file))
    assert not winacl.read_dacl(state_file).protected


@pytest.mark.parametrize("api", ["GetNamedSecurityInfoW", "GetSecurityDescriptorControl", "GetAce"])
def test_read_failures_are_typed_too(state_file: Path, api: str) -> None:
    assert standin_module is not None
    standin_module.fail(api, ERROR_ACCESS_DENIED)
    with pytest.raises(errors.FilePermissionError) as caught:
        winacl.read_dacl(state_file)
    assert (caught.value.api, caught.value.error_name) == (api, "ERROR_ACCESS_DENIED")
    assert caught.value.operation == "read the DACL of"


def test_owner_refused_still_applies_the_dacl(state_file: Path, me: str, caplog: pytest.LogCaptureFixture) -> None:
    assert standin_module is not None
    standin_module.fail("SetNamedSecurityInfoW", ERROR_INVALID_OWNER)
    with caplog.at_level(logging.INFO, logger="entraclaw.platform.winacl"):
        winacl.set_owner_only(state_file)
    assert winacl.read_dacl(state_file).is_owner_only(me)
    assert standin_module.call_count("SetNamedSecurityInfoW") == 2
    assert "owner left unchanged" in caplog.text and "0x8007051B" in caplog.text


def test_another_account_is_really_refused_after_the_owner_locked_it(state_file: Path, me: str) -> None:
    assert standin_module is not None
    winacl.set_owner_only(state_file)
    # No fault injected: the stand-in's access check refuses WRITE_DAC and READ_CONTROL.
    standin_module.set_current_sid(LOCAL_SERVICE)
    with pytest.raises(errors.FilePermissionError) as caught:
        winacl.set_owner_only(state_file)
    assert caught.value.error_name == "ERROR_ACCESS_DENIED"
    with pytest.raises(errors.FilePermissionError):
        winacl.read_dacl(state_file)
    standin_module.set_current_sid()
    assert winacl.read_dacl(state_file).is_owner_only(me)


def test_missing_file_and_missing_folder(tmp_path: Path, standin: object) -> None:
    with pytest.raises(errors.FilePermissionError) as caught:
        winacl.set_owner_only(tmp_path / "absent.env")
    assert caught.value.error_name == "ERROR_FILE_NOT_FOUND"
    assert "Test-Path" in caught.value.remedy
    with pytest.raises(errors.FilePermissionError) as caught:
        winacl.read_dacl(tmp_path / "no-such-dir" / "x")
    assert caught.value.error_name == "ERROR_PATH_NOT_FOUND"
    assert caught.value.api == "GetNamedSecurityInfoW"
    assert str(tmp_path / "no-such-dir") in caught.value.remedy
    assert "New-Item -ItemType Directory" in caught.value.remedy


def test_current_account_is_a_user_by_default(me: str) -> None:
    account = winacl.current_account()
    assert account == winacl.AccountInfo(sid=me, name="STANDIN-PC\\standin-user", kind="user", domain="STANDIN-PC")
    assert not account.is_service
    assert me in account.describe()


@pytest.mark.parametrize(
    ("sid", "kind", "name"),
    [
        (SYSTEM, "LocalSystem", "NT AUTHORITY\\SYSTEM"),
        (LOCAL_SERVICE, "LocalService", "NT AUTHORITY\\LOCAL SERVICE"),
        (NETWORK_SERVICE, "NetworkService", "NT AUTHORITY\\NETWORK SERVICE"),
    ],
)
def test_service_accounts_are_detected_by_well_known_sid(standin: object, sid: str, kind: str, name: str) -> None:
    assert standin_module is not None
    standin_module.set_current_sid(sid)
    account = winacl.current_account()
    assert (account.sid, account.kind, account.name) == (sid, kind, name)
    assert account.is_service
    assert kind in account.describe() and "service account" in account.describe()


def test_a_sid_that_only_looks_like_a_service_is_a_user(standin: object) -> None:
    assert standin_module is not None
    # Same authority and first sub-authority as LocalService, one more sub-authority.
    standin_module.set_current_sid("S-1-5-19-1", "lookalike", "X")
    assert winacl.current_account().kind == "user"


def test_unmapped_sid_has_no_name_but_is_not_an_error(standin: object) -> None:
    assert standin_module is not None
    standin_module.set_current_sid("S-1-5-21-1-2-3-4242")
    account = winacl.current_account()
    assert (account.sid, account.name, account.kind) == ("S-1-5-21-1-2-3-4242", None, "user")
    assert "did not resolve" in account.describe()


def test_service_account_locks_files_to_its_own_sid(state_file: Path, standin: object) -> None:
    assert standin_module is not None
    standin_module.set_current_sid(SYSTEM)
    fresh = state_file.parent / "token_cache.bin"
    fresh.write_bytes(b"\0")
    winacl.set_owner_only(fresh)
    dacl = winacl.read_dacl(fresh)
    assert dacl.is_owner_only(SYSTEM)
    assert dacl.owner_sid == SYSTEM


def test_current_account_failure_names_the_call(standin: object) -> None:
    assert standin_module is not None
    standin_module.fail("OpenProcessToken", ERROR_ACCESS_DENIED)
    with pytest.raises(errors.FilePermissionError) as caught:
        winacl.current_account()
    assert (caught.value.api, caught.value.error_name) == ("OpenProcessToken", "ERROR_ACCESS_DENIED")


def test_one_token_and_no_buffers_left_open(state_file: Path) -> None:
    assert standin_module is not None
    standin_module.reset_counters()
    winacl.set_owner_only(state_file)
    winacl.read_dacl(state_file)
    winacl.current_account()
    assert standin_module.call_count("OpenProcessToken") == standin_module.call_count("CloseHandle") == 2
    assert standin_module.open_handles("local") == 0
    assert standin_module.open_handles("token") == 0


def test_interrupted_between_the_two_attempts_changes_nothing_and_a_rerun_converges(state_file: Path, me: str) -> None:
    assert standin_module is not None
    # Step 1 (DACL + owner) refused, step 2 (DACL only) dies: each SetNamedSecurityInfoW is all or
    # nothing, so the file keeps the ACL it had and the next run finishes the job.
    standin_module.fail("SetNamedSecurityInfoW", ERROR_INVALID_OWNER)
    standin_module.fail("SetNamedSecurityInfoW", ERROR_NOT_ENOUGH_MEMORY)
    with pytest.raises(errors.FilePermissionError) as caught:
        winacl.set_owner_only(state_file)
    assert caught.value.error_name == "ERROR_NOT_ENOUGH_MEMORY"
    before = winacl.read_dacl(state_file)
    assert not before.protected and len(before.aces) == 3
    winacl.set_owner_only(state_file)
    assert winacl.read_dacl(state_file).is_owner_only(me)
