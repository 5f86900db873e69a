"""Owner-only DACLs on real Windows (NTFS, real advapi32). Skipped elsewhere; required in cibuildwheel.

What Wine cannot show (tests/test_wine_acl.py): that the descriptor is stored
as written, with exactly one ACE and SE_DACL_PROTECTED, that inheritance is
really cut, and that a directory's ACE flows into files created later. .NET's
Get-Acl reads the result back as an independent second opinion (JSON, not
icacls text).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capabilities import require
from entraclaw import cng, errors
from entraclaw.platform import winacl

pytestmark = pytest.mark.windows

FILE_ALL_ACCESS = 0x001F01FF
OI_CI = 0x03
INHERITED_ACE = 0x10


@pytest.fixture
def me() -> str:
    require("windows", sys.platform == "win32" and cng.backend() == "cng", "needs Windows with entraclaw._cng")
    return winacl.current_account().sid


def _get_acl(path: Path) -> dict[str, object]:
    """Protection flag and rules as .NET sees them (FileSystemAccessRule, SIDs translated)."""
    quoted = str(path).replace("'", "''")  # PowerShell single-quoted string
    script = (
        f"$a = Get-Acl -LiteralPath '{quoted}'; "
        "$r = @($a.Access | ForEach-Object { @{ sid = $_.IdentityReference.Translate("
        "[System.Security.Principal.SecurityIdentifier]).Value; rights = [int]$_.FileSystemRights; "
        "inherited = $_.IsInherited; type = [string]$_.AccessControlType } }); "
        "@{ protected = $a.AreAccessRulesProtected; rules = $r } | ConvertTo-Json -Depth 4 -Compress"
    )
    done = subprocess.run(
        ["powershell", "-NoProfile", "-NonInteractive", "-Command", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_current_account_is_this_user(me: str) -> None:
    account = winacl.current_account()
    assert re.fullmatch(r"S-1-5-\d+(-\d+)*", account.sid)
    assert account.name  # DOMAIN\user on a real machine
    # CI runners and developers run as a user; a service would say so.
    assert account.kind in ("user", "LocalSystem", "LocalService", "NetworkService")
    assert account.is_service == (account.kind != "user")


def test_file_gets_one_protected_ace_for_the_current_user(me: str, tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("ENTRACLAW_TENANT_ID=x\n", encoding="utf-8")
    before = winacl.read_dacl(path)
    assert any(ace.inherited for ace in before.aces)  # a temp file inherits its folder's ACL
    winacl.set_owner_only(path)
    dacl = winacl.read_dacl(path)
    assert dacl.protected
    assert dacl.aces == (winacl.Ace(me, FILE_ALL_ACCESS, 0, 0),)
    assert dacl.is_owner_only(me)
    assert winacl.describe_dacl(path) == [(me, FILE_ALL_ACCESS)]
    # Still ours to read and replace.
    assert path.read_text(encoding="utf-8") == "ENTRACLAW_TENANT_ID=x\n"
    path.write_text("ENTRACLAW_TENANT_ID=y\n", encoding="utf-8")
    if shutil.which("powershell"):
        seen = _get_acl(path)
        assert seen["protected"] is True
        rules = seen["rules"]
        assert rules == [{"sid": me, "rights": FILE_ALL_ACCESS, "inherited": False, "type": "Allow"}]


def test_directory_ace_flows_into_new_files(me: str, tmp_path: Path) -> None:
    folder = tmp_path / "entraclaw"
    folder.mkdir()
    winacl.set_owner_only(folder)
    dacl = winacl.read_dacl(folder)
    assert dacl.protected
    assert dacl.aces == (winacl.Ace(me, FILE_ALL_ACCESS, 0, OI_CI),)
    child = folder / "agent_tokens.bin"
    child.write_bytes(b"\0")
    inherited = winacl.read_dacl(child)
    assert not inherited.protected
    assert [(a.sid, a.mask, a.type) for a in inherited.aces] == [(me, FILE_ALL_ACCESS, 0)]
    assert all(a.inherited for a in inherited.aces)


def test_missing_file_is_a_typed_error(me: str, tmp_path: Path) -> None:
    with pytest.raises(errors.FilePermissionError) as caught:
        winacl.set_owner_only(tmp_path / "absent.env")
    assert (caught.value.api, caught.value.error_name) == ("SetNamedSecurityInfoW", "ERROR_FILE_NOT_FOUND")
    assert caught.value.system_message  # FormatMessage text from Windows
