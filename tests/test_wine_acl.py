"""The core's owner-only DACL code cross-built with mingw-w64 and run under Wine's real advapi32.

What Wine 8.0 (Debian, upstream, not wine-staging) does with file security,
measured with native/wine/acl_probe.cpp and asserted below:

- OpenProcessToken/GetTokenInformation(TokenUser) give S-1-5-21-0-0-0-1000,
  LookupAccountSidW names it <COMPUTERNAME>\\<unix user>, and no well-known
  service SID matches: the core reports kind "user".
- SetNamedSecurityInfoW accepts the core's binary ACL (and the owner) and
  returns ERROR_SUCCESS, but Wine stores no security descriptor for files: no
  ``user.wine.sd`` xattr is written, though the file system takes user xattrs
  (that storage exists only in wine-staging's patch set; Debian's wineserver64
  does not contain the string). The wineserver turns the DACL into Unix mode bits instead
  (server/file.c sd_to_mode): an ACE for the token user sets user *and group*
  bits (rwxrwx), and PROTECTED_DACL_SECURITY_INFORMATION is not honoured: the
  parent directory's inheritable ACEs (synthesised from its mode) are merged
  back in, so a file in a 0755 folder ends up 0775 and one in a 0700 folder 0770.
- GetNamedSecurityInfoW returns a descriptor synthesised from the mode:
  SYSTEM full, the owner, and Everyone when "other" bits are set; never
  SE_DACL_PROTECTED.
- Missing file / folder and a chmod the kernel refuses come back as
  ERROR_FILE_NOT_FOUND / ERROR_PATH_NOT_FOUND / ERROR_ACCESS_DENIED, through
  the core's Status as HRESULT_FROM_WIN32 with the API name.

So Wine proves the ABI and call sequence (token -> SID -> ACL -> set -> read
back -> parse) and that the ACL reaches the file system as "no access for
others"; "exactly one ACE, protected" is proved on Windows only
(tests/test_winacl_windows.py). When a Wine does persist the descriptor (the
xattr is present), these tests demand the Windows answer instead.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import wine_helpers as wh
from entraclaw import errors
from entraclaw.platform import winacl

pytestmark = [pytest.mark.wine, pytest.mark.slow]

ACL_PROBE_NAME = "entraclaw_wine_acl_probe.exe"
FILE_ALL_ACCESS = 0x001F01FF
SYSTEM = "S-1-5-18"
EVERYONE = "S-1-1-0"
OI_CI = 0x03
XATTR_SD = "user.wine.sd"  # where wine-staging keeps a file's security descriptor


def wine_path(path: Path) -> str:
    # Wine maps the Unix root to drive Z:.
    return "Z:" + str(path).replace("/", "\\")


@dataclass
class AclRun:
    account: list[str] = field(default_factory=list)
    sets: dict[str, list[str]] = field(default_factory=dict)  # "set|setdir PATH" -> fields
    reads: list[tuple[str, list[str], list[winacl.Ace]]] = field(default_factory=list)
    done: bool = False

    def read(self, path: str, nth: int = 0) -> tuple[list[str], list[winacl.Ace]]:
        found = [(head, aces) for p, head, aces in self.reads if p == path]
        return found[nth]


def parse(stdout: str) -> AclRun:
    run = AclRun()
    for line in stdout.splitlines():
        f = line.split("\t")
        if f[0] == "account":
            run.account = f[1:]
        elif f[0] in ("set", "setdir", "inherit"):
            run.sets[f"{f[0]} {f[1]}"] = f[2:]
        elif f[0] == "dacl":
            run.reads.append((f[1], f[2:], []))
        elif f[0] == "ace":
            assert run.reads and run.reads[-1][0] == f[1], line
            run.reads[-1][2].append(winacl.Ace(f[3], int(f[6], 16), int(f[4]), int(f[5], 16)))
        elif f[0] == "done":
            run.done = True
        elif line.strip():
            raise ValueError(f"unexpected acl probe line: {line[:120]!r}")
    return run


@pytest.fixture(scope="module")
def acl_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wh.probe_exe(tmp_path_factory, ACL_PROBE_NAME)


@dataclass
class Layout:
    private_file: Path  # in a 0700 folder
    open_file: Path  # in a 0755 folder
    unprotected_file: Path  # in the 0755 folder, DACL set without PROTECTED_DACL_SECURITY_INFORMATION
    folder: Path  # 0755, inside the 0700 folder
    missing: Path
    missing_parent: Path
    refused: str  # a Wine path whose chmod the kernel refuses


@dataclass
class Probe:
    layout: Layout
    first: AclRun
    second: AclRun  # a later process reading the same files


def _run(exe: Path, prefix: Path, args: list[str]) -> AclRun:
    done = wh.run_probe(exe, prefix, args)
    assert done.returncode == 0, f"acl probe exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    run = parse(done.stdout)
    assert run.done, "acl probe output is truncated:\n" + done.stdout[-2000:]
    return run


@pytest.fixture(scope="module")
def probe(acl_exe: Path, wine_prefix: Path, tmp_path_factory: pytest.TempPathFactory) -> Probe:
    root = tmp_path_factory.mktemp("wine-acl")
    private = root / "private"
    private.mkdir(mode=0o700)
    shared = root / "shared"
    shared.mkdir(mode=0o755)
    layout = Layout(
        private_file=private / "a.env",
        open_file=shared / "b.env",
        unprotected_file=shared / "c.env",
        folder=private / "keys",
        missing=private / "absent.env",
        missing_parent=root / "no-such-folder" / "x.env",
        # chmod on a /proc/<pid> directory is always EPERM: a real refusal that changes nothing.
        refused="Z:\\proc\\self",
    )
    for path in (layout.private_file, layout.open_file, layout.unprotected_file):
        path.write_text("ENTRACLAW_TENANT_ID=x\n", encoding="utf-8")
        path.chmod(0o644)
    layout.folder.mkdir(mode=0o755)
    layout.folder.chmod(0o755)
    a, b, d = wine_path(layout.private_file), wine_path(layout.open_file), wine_path(layout.folder)
    first = _run(
        acl_exe,
        wine_prefix,
        ["account", "read", a, "set", a, "read", a, "set", b, "read", b, "setdir", d, "read", d,
         "inherit", wine_path(layout.unprotected_file),
         "read", wine_path(layout.missing), "set", wine_path(layout.missing),
         "read", wine_path(layout.missing_parent), "set", layout.refused],
    )  # fmt: skip
    second = _run(acl_exe, wine_prefix, ["read", a, "read", b])
    return Probe(layout, first, second)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _stored_sd(path: Path) -> bool:
    try:
        return XATTR_SD in os.listxattr(path)
    except OSError:
        return False


def test_account_is_the_token_user(probe: Probe) -> None:
    sid, kind, domain, name, lookup_hr, lookup_api = probe.first.account
    assert re.fullmatch(r"S-1-5-21(-\d+){4}", sid), sid
    assert kind == "user"
    assert (lookup_hr, lookup_api) == ("0x00000000", "-")
    assert domain
    assert name in {pwd.getpwuid(os.getuid()).pw_name, os.environ.get("USER", "")}


def test_set_succeeds_for_the_token_sid_and_sets_the_owner(probe: Probe) -> None:
    sid = probe.first.account[0]
    for command in ("set", "setdir"):
        path = probe.layout.folder if command == "setdir" else probe.layout.private_file
        hr, api, set_sid, owner_set, owner_hr, _owner_api = probe.first.sets[f"{command} {wine_path(path)}"]
        assert (hr, api, set_sid) == ("0x00000000", "-", sid)
        assert (owner_set, owner_hr) == ("1", "0x00000000")


def test_read_back_through_get_named_security_info(probe: Probe) -> None:
    sid = probe.first.account[0]
    path = probe.layout.private_file
    head, aces = probe.first.read(wine_path(path), 1)  # the read after set
    hr, api, owner, _control, present, protected, count = head
    assert (hr, api, owner, present) == ("0x00000000", "-", sid, "1")
    assert int(count) == len(aces)
    if _stored_sd(path):
        # A Wine that keeps the descriptor must give back exactly what was set.
        assert protected == "1"
        assert aces == [winacl.Ace(sid, FILE_ALL_ACCESS, 0, 0)]
    else:
        # Wine 8: synthesised from the mode. The owner keeps full access, SYSTEM is always
        # listed, and Everyone is gone (the file was 0644 before: Everyone could read it).
        assert protected == "0"
        assert [(a.sid, a.mask, a.type) for a in aces] == [(SYSTEM, FILE_ALL_ACCESS, 0), (sid, FILE_ALL_ACCESS, 0)]
        before = [a.sid for a in probe.first.read(wine_path(path), 0)[1]]
        assert EVERYONE in before


def test_the_acl_reaches_the_file_system_as_no_access_for_others(probe: Probe) -> None:
    # What the wineserver did with the DACL: mode bits. Everything for the owner, nothing for others.
    assert _mode(probe.layout.private_file) & 0o707 == 0o700
    if not _stored_sd(probe.layout.private_file):
        # sd_to_mode gives an ACE for the token user to user and group alike.
        assert _mode(probe.layout.private_file) == 0o770
        assert _mode(probe.layout.folder) == 0o770


def test_protected_flag_and_wine_inheritance(probe: Probe) -> None:
    # In a 0755 folder the parent's inheritable "Everyone: read/execute" ACE comes back:
    # Wine does not honour PROTECTED_DACL_SECURITY_INFORMATION. Windows would leave 0 here.
    other = _mode(probe.layout.open_file) & 0o007
    assert other in (0o005, 0)
    sids = [a.sid for a in probe.first.read(wine_path(probe.layout.open_file))[1]]
    assert (EVERYONE in sids) == (other != 0)
    fields = probe.first.sets[f"inherit {wine_path(probe.layout.unprotected_file)}"]
    assert fields[0] == "0x00000000"
    if not _stored_sd(probe.layout.open_file):
        # The same ACL set without the PROTECTED flag lands on the same mode: the flag changes nothing in Wine 8.
        assert _mode(probe.layout.unprotected_file) == _mode(probe.layout.open_file) == 0o775


def test_directory_aces_are_inheritable(probe: Probe) -> None:
    head, aces = probe.first.read(wine_path(probe.layout.folder))
    assert head[0] == "0x00000000"
    assert aces and all(a.flags & OI_CI == OI_CI for a in aces)
    assert probe.first.account[0] in [a.sid for a in aces]


def test_a_second_process_reads_the_same_descriptor(probe: Probe) -> None:
    for path in (probe.layout.private_file, probe.layout.open_file):
        nth = 1 if path == probe.layout.private_file else 0
        assert probe.second.read(wine_path(path))[1] == probe.first.read(wine_path(path), nth)[1]


@pytest.mark.parametrize(
    ("command", "which", "hresult", "api", "name"),
    [
        ("read", "missing", 0x80070002, "GetNamedSecurityInfoW", "ERROR_FILE_NOT_FOUND"),
        ("set", "missing", 0x80070002, "SetNamedSecurityInfoW", "ERROR_FILE_NOT_FOUND"),
        ("read", "missing_parent", 0x80070003, "GetNamedSecurityInfoW", "ERROR_PATH_NOT_FOUND"),
        ("set", "refused", 0x80070005, "SetNamedSecurityInfoW", "ERROR_ACCESS_DENIED"),
    ],
)
def test_real_failures_carry_api_and_hresult_into_the_typed_error(
    probe: Probe, command: str, which: str, hresult: int, api: str, name: str
) -> None:
    target = getattr(probe.layout, which)
    path = target if isinstance(target, str) else wine_path(target)
    if command == "read":
        head = probe.first.read(path)[0]
        got_hr, got_api = head[0], head[1]
    else:
        fields = probe.first.sets[f"set {path}"]
        got_hr, got_api = fields[0], fields[1]
        if which == "refused":
            # The first attempt (with the owner) was refused too, so the DACL-only retry ran.
            assert (fields[3], fields[4], fields[5]) == ("0", "0x80070005", "SetNamedSecurityInfoW")
    assert (int(got_hr, 16), got_api) == (hresult, api)
    err = winacl.error_for_status(path, "restrict to the owner", got_api, int(got_hr, 16))
    assert isinstance(err, errors.FilePermissionError)
    assert (err.error_name, err.api, err.path) == (name, api, path)
    assert err.remedy
