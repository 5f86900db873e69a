"""The .env reader and writer: strict parsing with line numbers, in-place updates, atomic owner-only writes."""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crash_helpers import run_writer
from entraclaw.errors import ConfigurationError
from entraclaw.platform import files
from entraclaw.platform.dotenv import format_value, parse_env_text, read_env_file, update_env_file

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and signals")

SAMPLE = (
    "# entraclaw configuration\n"
    "\n"
    "ENTRACLAW_TENANT_ID=11111111-1111-1111-1111-111111111111\n"
    "export ENTRACLAW_BLUEPRINT_APP_ID = 22222222-2222-2222-2222-222222222222   # the Blueprint\n"
    "MY_OWN_SETTING='keep me: $HOME'\n"
    "  # an indented comment\n"
    'QUOTED="a \\"b\\" \\\\ \\$c"\n'
    "ENTRACLAW_BLUEPRINT_CERT_SHA1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
    "EMPTY=\n"
    "ENTRACLAW_BLUEPRINT_CERT_X5T_S256=" + "x" * 43 + " # rotated by entraclaw\n"
    "TRAILER=last\n"
)


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


# --- reading -------------------------------------------------------------------------------


def test_reads_values_with_line_numbers(tmp_path):
    env = read_env_file(write(tmp_path / ".env", SAMPLE))
    assert env.entries == {
        "ENTRACLAW_TENANT_ID": ("11111111-1111-1111-1111-111111111111", 3),
        "ENTRACLAW_BLUEPRINT_APP_ID": ("22222222-2222-2222-2222-222222222222", 4),
        "MY_OWN_SETTING": ("keep me: $HOME", 5),
        "QUOTED": ('a "b" \\ $c', 7),
        "ENTRACLAW_BLUEPRINT_CERT_SHA1": ("A" * 40, 8),
        "EMPTY": ("", 9),
        "ENTRACLAW_BLUEPRINT_CERT_X5T_S256": ("x" * 43, 10),
        "TRAILER": ("last", 11),
    }
    assert env.line_of("TRAILER") == 11 and env.get("missing") is None


def test_duplicate_key_is_refused_naming_both_lines(tmp_path):
    path = write(tmp_path / ".env", "A=1\nB=2\n# c\nA=3\n")
    with pytest.raises(ConfigurationError) as info:
        read_env_file(path)
    text = str(info.value)
    assert str(path) in text and "lines 1 and 4" in text and "A is set twice" in text
    assert info.value.problems == [f"{path} line 4: A is set twice, on lines 1 and 4; keep one of the two lines"]


def test_every_malformed_line_is_reported_at_once(tmp_path):
    path = write(tmp_path / ".env", "GOOD=1\nno equals sign\n1BAD=x\nQ='open\nR=\"open\nS='x' trailing\nGOOD=2\n")
    with pytest.raises(ConfigurationError) as info:
        read_env_file(path)
    lines = [p.split(": ", 1)[0] for p in info.value.problems]
    assert lines == [f"{path} line {n}" for n in (2, 3, 4, 5, 6, 7)]


def test_line_numbers_count_only_line_feeds(tmp_path):
    # U+2028 and form feed are line breaks to str.splitlines(), not to a .env reader.
    path = write(tmp_path / ".env", "A='x\u2028y'\nB=\x0c\nC=3\n")
    env = read_env_file(path)
    assert env.entries["A"] == ("x\u2028y", 1) and env.entries["C"] == ("3", 3)


def test_crlf_file(tmp_path):
    env = read_env_file(write(tmp_path / ".env", "A=1\r\nB='two'\r\n"))
    assert env.values() == {"A": "1", "B": "two"}


def test_bom_is_stripped_with_a_warning_and_dropped_on_write(tmp_path, caplog):
    path = write(tmp_path / ".env", b"\xef\xbb\xbfA=1\nB=2\n")
    with caplog.at_level(logging.WARNING):
        env = read_env_file(path)
    assert env.values() == {"A": "1", "B": "2"} and env.had_bom
    assert "byte-order mark" in caplog.text and str(path) in caplog.text
    update_env_file(path, {"B": "3"})
    assert path.read_bytes() == b"A=1\nB=3\n"


def test_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path / ".env", b"A=1\nB=caf\xe9\n")
    with pytest.raises(ConfigurationError) as info:
        read_env_file(path)
    assert f"{path} line 2 is not UTF-8" in str(info.value)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigurationError) as info:
        read_env_file(tmp_path / "nope" / ".env")
    assert str(tmp_path / "nope" / ".env") in str(info.value)


# --- writing -------------------------------------------------------------------------------


def test_update_changes_only_the_named_lines(tmp_path):
    path = write(tmp_path / ".env", SAMPLE)
    before = path.read_bytes().split(b"\n")
    update_env_file(path, {"ENTRACLAW_BLUEPRINT_CERT_SHA1": "B" * 40, "ENTRACLAW_BLUEPRINT_CERT_X5T_S256": "y" * 43})
    after = path.read_bytes().split(b"\n")
    assert len(before) == len(after)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert changed == [7, 9]  # 0-based: lines 8 and 10, the two thumbprint lines
    assert after[7] == b"ENTRACLAW_BLUEPRINT_CERT_SHA1=" + b"B" * 40
    # The inline comment and the spacing around it survive the update.
    assert after[9] == b"ENTRACLAW_BLUEPRINT_CERT_X5T_S256=" + b"y" * 43 + b" # rotated by entraclaw"


def test_update_keeps_export_prefix_spacing_and_comment(tmp_path):
    path = write(tmp_path / ".env", SAMPLE)
    update_env_file(path, {"ENTRACLAW_BLUEPRINT_APP_ID": "33333333-3333-3333-3333-333333333333"})
    line = path.read_text().splitlines()[3]
    assert line == "export ENTRACLAW_BLUEPRINT_APP_ID = 33333333-3333-3333-3333-333333333333   # the Blueprint"


def test_none_deletes_and_new_keys_are_appended_in_order(tmp_path):
    path = write(tmp_path / ".env", SAMPLE)
    update_env_file(path, {"Z_NEW": "z", "MY_OWN_SETTING": None, "A_NEW": "a b"})
    text = path.read_text()
    expected = SAMPLE.replace("MY_OWN_SETTING='keep me: $HOME'\n", "") + "Z_NEW=z\nA_NEW='a b'\n"
    assert text == expected
    update_env_file(path, {"NOT_THERE": None})
    assert path.read_text() == expected


def test_append_to_a_file_without_final_newline_keeps_crlf(tmp_path):
    path = write(tmp_path / ".env", "A=1\r\nB=2")
    update_env_file(path, {"C": "3"})
    assert path.read_bytes() == b"A=1\r\nB=2\r\nC=3\r\n"


def test_creates_the_file_and_its_directory(tmp_path):
    path = tmp_path / "state" / ".env"
    update_env_file(path, {"A": "1"})
    assert path.read_bytes() == b"A=1\n"


def test_newline_in_value_and_bad_keys_are_refused(tmp_path):
    path = write(tmp_path / ".env", "A=1\n")
    for updates in ({"A": "x\ny"}, {"A": "x\ry"}, {"A": "x\x00"}, {"1A": "x"}, {"A B": "x"}):
        with pytest.raises(ConfigurationError):
            update_env_file(path, updates)
    assert path.read_bytes() == b"A=1\n"
    with pytest.raises(ConfigurationError) as info:
        update_env_file(path, {"A": "secret-ish\nvalue"})
    assert "secret-ish" not in str(info.value)


def test_writer_refuses_to_rewrite_a_file_with_duplicates(tmp_path):
    path = write(tmp_path / ".env", "A=1\nA=2\n")
    with pytest.raises(ConfigurationError, match="lines 1 and 2"):
        update_env_file(path, {"B": "x"})
    assert path.read_bytes() == b"A=1\nA=2\n"


def test_output_has_no_bom_and_is_utf8(tmp_path):
    path = tmp_path / ".env"
    update_env_file(path, {"UPN": "agent@exämple.org", "NAME": "Zoë 'quoted'"})
    data = path.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    assert read_env_file(path).values() == {"UPN": "agent@exämple.org", "NAME": "Zoë 'quoted'"}


@pytest.mark.parametrize(
    ("value", "source"),
    [
        ("plain-1.2_3/x:y@z", "plain-1.2_3/x:y@z"),
        ("", ""),
        ("a b", "'a b'"),
        ("$HOME", "'$HOME'"),
        ("it's", '"it\'s"'),
        ('it\'s $x \\ "q"', '"it\'s \\$x \\\\ \\"q\\""'),
        ("#not-a-comment", "'#not-a-comment'"),
    ],
)
def test_format_value(value, source):
    assert format_value("K", value) == source


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\n\r\x00", blacklist_categories=("Cs",)), max_size=40))
def test_any_single_line_value_round_trips(value):
    text = f"K={format_value('K', value)}\n"
    env, problems = parse_env_text(text, Path(".env"))
    assert problems == []
    assert env.get("K") == value


@POSIX
@pytest.mark.parametrize("umask", [0o000, 0o077, 0o277, 0o022])
def test_file_is_0600_under_any_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = tmp_path / ".env"
        update_env_file(path, {"A": "1"})
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        path.chmod(0o644)  # even a file someone loosened comes back owner-only
        update_env_file(path, {"A": "2"})
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)


@POSIX
def test_temp_file_is_0600_before_data_is_written(tmp_path):
    # Stop the writer right after creating the temp file and look at it.
    path = tmp_path / ".env"
    result = _child_update(path, {"A": "1"}, crash_at="write:temp-created", umask=0o000)
    assert result.returncode == -signal.SIGKILL
    (temp,) = [p for p in tmp_path.iterdir() if p.name.startswith(".env.entraclaw-tmp-")]
    assert stat.S_IMODE(temp.stat().st_mode) == 0o600 and temp.read_bytes() == b""


def test_restrict_to_owner_posix(tmp_path):
    if sys.platform == "win32":
        pytest.skip("POSIX")
    path = write(tmp_path / "f", "x")
    path.chmod(0o666)
    files.restrict_to_owner(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    files.restrict_to_owner(tmp_path)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700


def test_windows_branch_uses_winacl_before_writing(tmp_path, monkeypatch):
    # On Windows the owner-only DACL goes on the temp file before any byte of data.
    import types

    seen: list[tuple[str, int]] = []
    fake = types.ModuleType("entraclaw.platform.winacl")
    fake.set_owner_only = lambda p: seen.append((Path(p).name, Path(p).stat().st_size))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "entraclaw.platform.winacl", fake)
    monkeypatch.setattr(files.sys, "platform", "win32")
    monkeypatch.setattr(files, "fsync_dir", lambda d: None)
    files.atomic_write(tmp_path / ".env", b"A=1\n")
    assert len(seen) == 1 and seen[0][0].startswith(".env.entraclaw-tmp-") and seen[0][1] == 0
    assert (tmp_path / ".env").read_bytes() == b"A=1\n"


# --- killed between steps --------------------------------------------------------------------


def _child_update(
    path: Path, updates: dict[str, str | None], *, crash_at: str | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        f"""
        import os, sys
        from entraclaw.platform.dotenv import update_env_file
        if {umask!r} is not None:
            os.umask({umask!r})
        update_env_file({str(path)!r}, {updates!r})
        """
    )
    return run_writer(code, crash_at=crash_at)


@POSIX
@pytest.mark.parametrize("step", files.WRITE_STEPS)
def test_killed_writer_leaves_old_or_new_file_and_next_run_converges(tmp_path, step):
    path = write(tmp_path / ".env", SAMPLE)
    old = path.read_bytes()
    rotation = {"ENTRACLAW_BLUEPRINT_CERT_SHA1": "C" * 40}
    new = old.replace(b"A" * 40, b"C" * 40)

    killed = _child_update(path, rotation, crash_at=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr  # the hook fired at this step
    after_kill = path.read_bytes()
    # Before the rename the old file is intact; from the rename on, the new one is whole.
    expected = new if step == "write:replaced" else old
    assert after_kill == expected
    read_env_file(path)  # never a half file

    again = _child_update(path, {**rotation, "ENTRACLAW_SCOPES": "https://graph.microsoft.com/.default"})
    assert again.returncode == 0, again.stderr
    assert path.read_bytes() == new + b"ENTRACLAW_SCOPES=https://graph.microsoft.com/.default\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", ".env.lock"], "a temp file was left behind"


@POSIX
def test_every_write_step_is_reached_in_order(tmp_path):
    # Guards the kill test above: each step name must be a real crash point of one write.
    path = write(tmp_path / ".env", "A=1\n")
    for step in files.WRITE_STEPS:
        assert _child_update(path, {"A": "2"}, crash_at=step).returncode == -signal.SIGKILL
    assert _child_update(path, {"A": "3"}, crash_at="write:no-such-step").returncode == 0
    assert path.read_bytes() == b"A=3\n"


def test_temp_of_a_live_writer_is_not_removed(tmp_path):
    # A temp file whose writer (this test process) is alive belongs to a write in progress.
    path = write(tmp_path / ".env", "A=1\n")
    live = tmp_path / f".env.entraclaw-tmp-{os.getpid()}-0000"
    live.write_bytes(b"partial")
    dead = tmp_path / ".env.entraclaw-tmp-999999999-0000"
    dead.write_bytes(b"partial")
    update_env_file(path, {"A": "2"})
    assert live.exists() and not dead.exists()
    assert path.read_bytes() == b"A=2\n"


def test_concurrent_writers_lose_no_key(tmp_path):
    # Two processes each set their own keys over and over; the lock keeps every read-modify-write whole.
    path = write(tmp_path / ".env", "# shared\n")
    code = textwrap.dedent(
        """
        import sys
        from entraclaw.platform.dotenv import update_env_file
        name = sys.argv[1]
        for i in range(40):
            update_env_file(sys.argv[2], {f"{name}_{i % 5}": str(i)})
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, name, str(path)], stderr=subprocess.PIPE, text=True)
        for name in ("A", "B")
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    values = read_env_file(path).values()
    assert values == {f"{n}_{k}": str(35 + k) for n in ("A", "B") for k in range(5)}
    assert path.read_text().startswith("# shared\n")


def test_a_malformed_value_is_reported_without_quoting_it(tmp_path):
    secret = "hunter2-correct-horse"
    path = write(tmp_path / ".env", f'ENTRACLAW_KEY_PASSWORD="pw"{secret}\nENTRACLAW_SCOPES=\'a\' {secret}\n'.encode())
    with pytest.raises(ConfigurationError) as caught:
        read_env_file(path)
    err = caught.value
    assert str(path) in err.message and "line 1" in err.message and "line 2" in err.message
    assert "after the closing quote" in err.message
    for text in (str(err), repr(err), repr(err.context)):
        assert secret not in text and secret[:8] not in text
