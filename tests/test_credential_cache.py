"""Token caches: expiry arithmetic, keys, the shared persisted cache, cross-process reuse and locking."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crash_helpers import run_writer
from credential_helpers import GRAPH_SCOPE, assert_no_secrets, force_plaintext_cache, held_tokens, seed
from entraclaw.auth.file_lock import InterProcessLock
from entraclaw.auth.persisted_cache import PersistedTokenStore
from entraclaw.auth.token_cache import CachedToken, MemoryTokenCache, cache_key, refresh_margin
from entraclaw.emulator import Emulator
from entraclaw.errors import KeystoreError
from entraclaw.platform.files import WRITE_STEPS

HELPERS = Path(__file__).with_name("credential_helpers.py")


@pytest.fixture(autouse=True)
def _plaintext_cache(monkeypatch):
    # Every test here reads or damages the cache file itself; the encrypted (Secret Service)
    # branch is tested in test_keystore_token_cache.py.
    force_plaintext_cache(monkeypatch)


# --- arithmetic and keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "lifetime, margin",
    # Half the lifetime, at least 5 min before expiry; short tokens keep a quarter as fresh time.
    [(3599, 1799.5), (600, 300), (300, 225), (120, 90), (60, 45), (7200, 3600), (86400, 43200)],
)
def test_refresh_margin(lifetime, margin):
    assert refresh_margin(lifetime) == pytest.approx(margin)


def test_refresh_in_from_server_wins_when_earlier():
    entry = CachedToken.from_response(
        {"access_token": "x" * 20, "expires_in": 3600, "refresh_on": 1000 + 1800}, now=1000
    )
    assert entry.expires_on == 4600 and entry.refresh_on == 2800


def test_cache_key_has_ids_and_scopes_but_no_token():
    key = cache_key("t3", tenant="T", client="C", user="oid:U", scopes=["b", "a", "a"])
    assert key == "t3|client=c|scopes=a b|tenant=t|user=oid:u"


def test_memory_cache_serves_until_refresh_on():
    now = [1000.0]
    cache = MemoryTokenCache(clock=lambda: now[0])
    cache.put("k", CachedToken.create("tok" * 5, expires_on=1600, obtained_on=1000))
    assert cache.get_fresh("k") is not None
    now[0] = 1299.9
    assert cache.get_fresh("k") is not None
    now[0] = 1300
    assert cache.get_fresh("k") is None and cache.get_any("k") is not None


def test_cached_token_repr_hides_token():
    entry = CachedToken.create("secret-token-value", expires_on=2000, obtained_on=1000)
    assert "secret-token-value" not in repr(entry)
    assert "secret-token-value" not in repr(entry.access_token)
    assert "secret-token-value" not in repr(entry.info)


# --- the persisted store ---------------------------------------------------------------------------


def test_encryption_unavailable_without_opt_in_is_a_clear_error(tmp_path):
    with pytest.raises(KeystoreError) as caught:
        PersistedTokenStore(tmp_path / "cache.bin")
    assert str(tmp_path / "cache.bin") in str(caught.value)
    assert "allow_plaintext" in caught.value.remedy


def test_plaintext_store_is_private_and_round_trips(tmp_path, caplog):
    path = tmp_path / "sub" / "cache.bin"
    with caplog.at_level(logging.WARNING, logger="entraclaw"):
        store = PersistedTokenStore(path, allow_plaintext=True)
    assert not store.is_encrypted
    assert "unencrypted" in caplog.text
    entry = CachedToken.create("tok-" * 10, expires_on=time.time() + 3600, obtained_on=time.time())
    expired = CachedToken.create("old-" * 10, expires_on=time.time() - 1, obtained_on=time.time() - 100)
    with store.lock():
        store.save({"a": entry, "b": expired})
        loaded = store.load()
    assert set(loaded) == {"a"} and loaded["a"].token == entry.token
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_existing_world_readable_file_is_made_private(tmp_path):
    if sys.platform == "win32":
        pytest.skip("POSIX modes only")
    path = tmp_path / "cache.bin"
    path.write_text("")
    path.chmod(0o644)
    store = PersistedTokenStore(path, allow_plaintext=True)
    with store.lock():
        store.save({})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "content",
    ["not json at all", '{"version": 99, "entries": {}}', '{"version": 1, "entries": []}', "[1, 2]"],
)
def test_corrupt_file_is_ignored_with_warning_then_rewritten(tmp_path, caplog, content):
    path = tmp_path / "cache.bin"
    store = PersistedTokenStore(path, allow_plaintext=True)
    path.write_text(content + " eyJhbGciOiJub25lIn0.eyJ4IjoxfQ.sig")
    with caplog.at_level(logging.WARNING, logger="entraclaw"), store.lock():
        assert store.load() == {}
    assert "corrupt" in caplog.text and str(path) in caplog.text
    for record in caplog.records:
        assert_no_secrets(record.getMessage())
    entry = CachedToken.create("tok-" * 10, expires_on=time.time() + 3600, obtained_on=time.time())
    with store.lock():
        store.save({"k": entry})
        assert store.load()["k"].token == entry.token
    assert json.loads(path.read_text())["version"] == 1


def test_corrupt_entry_is_skipped(tmp_path, caplog):
    path = tmp_path / "cache.bin"
    store = PersistedTokenStore(path, allow_plaintext=True)
    good = CachedToken.create("tok-" * 10, expires_on=time.time() + 3600, obtained_on=time.time())
    path.write_text(json.dumps({"version": 1, "entries": {"good": good.to_json(), "bad": {"token": 5}}}))
    with caplog.at_level(logging.WARNING, logger="entraclaw"), store.lock():
        assert set(store.load()) == {"good"}
    assert "1 corrupt" in caplog.text


def test_credential_with_corrupt_cache_recovers(tmp_path):
    with Emulator() as emu:
        seeded = seed(emu)
        path = tmp_path / "cache.bin"
        store = PersistedTokenStore(path, allow_plaintext=True)
        path.write_text("{garbage")
        assert seeded.credential(cache=store).get_token(GRAPH_SCOPE).token
        document = json.loads(path.read_text())
        assert len(document["entries"]) == 3


# --- across processes -----------------------------------------------------------------------------


def _run_child(config_path: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HELPERS.parent), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, str(HELPERS), "child", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert_no_secrets(out.stdout + out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_reuses_persisted_tokens(tmp_path):
    import hashlib

    with Emulator() as emu:
        seeded = seed(emu)
        cache_path = tmp_path / "shared.bin"
        cred = seeded.credential(cache=PersistedTokenStore(cache_path, allow_plaintext=True))
        token = cred.get_token(GRAPH_SCOPE)
        assert emu.stats.count() == 3
        for secret in held_tokens(cred):
            assert secret in cache_path.read_text()  # plaintext store, by explicit opt-in

        config = tmp_path / "child.json"
        config.write_text(json.dumps(seeded.child_config(cache_path)))
        result = _run_child(config)
        assert emu.stats.count() == 3  # zero new requests from the other process
        assert result["sha256"] == hashlib.sha256(token.token.encode()).hexdigest()


def test_parallel_cold_processes_exchange_once_per_hop(tmp_path):
    with Emulator() as emu:
        seeded = seed(emu)
        cache_path = tmp_path / "shared.bin"
        config = tmp_path / "child.json"
        config.write_text(json.dumps(seeded.child_config(cache_path)))
        env = dict(os.environ)
        procs = [
            subprocess.Popen(
                [sys.executable, str(HELPERS), "child", str(config)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(4)
        ]
        hashes = set()
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            hashes.add(json.loads(out.strip().splitlines()[-1])["sha256"])
        assert len(hashes) == 1
        assert sorted(r["hop"] for r in emu.stats.token_requests) == [1, 2, 3]


def _hold_lock(path: str, ready, release) -> None:  # runs in a child process
    with InterProcessLock(path, timeout=10):
        ready.set()
        release.wait(10)


def test_file_lock_excludes_other_processes(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    lock_path = str(tmp_path / "x.lock")
    proc = ctx.Process(target=_hold_lock, args=(lock_path, ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(KeystoreError, match="Timed out") as info:
            InterProcessLock(lock_path, timeout=0.3).acquire()
        assert lock_path in str(info.value)
        release.set()
        proc.join(10)
        with InterProcessLock(lock_path, timeout=5):
            pass
    finally:
        release.set()
        proc.join(10)


@pytest.mark.skipif(sys.platform == "win32", reason="patches fcntl.flock")
@pytest.mark.parametrize("failure", [OSError(37, "No locks available"), KeyboardInterrupt()])
def test_file_lock_failure_releases_the_lock_and_closes_the_file(tmp_path, monkeypatch, failure):
    import fcntl

    lock_path = tmp_path / "y.lock"
    real_flock = fcntl.flock
    calls = {"n": 0}

    def flaky_flock(fd, op):
        calls["n"] += 1
        if calls["n"] == 1:
            raise failure
        return real_flock(fd, op)

    opened: list[int] = []
    real_open = os.open

    def recording_open(path, *args, **kw):
        fd = real_open(path, *args, **kw)
        if Path(path) == lock_path:
            opened.append(fd)
        return fd

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(fcntl, "flock", flaky_flock)
    expected = KeystoreError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as info:
        InterProcessLock(lock_path, timeout=1).acquire()
    if expected is KeystoreError:
        assert str(lock_path) in str(info.value) and "Fix:" in str(info.value)
    assert len(opened) == 1
    if os.path.isdir("/proc/self/fd"):  # the lock file's descriptor was closed (or reused for another file)
        try:
            still = os.readlink(f"/proc/self/fd/{opened[0]}")
        except OSError:
            still = None
        assert still != str(lock_path)
    # The per-path thread lock must have been released: the next holder gets in at once.
    started = time.monotonic()
    with InterProcessLock(lock_path, timeout=1):
        pass
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    "bad_time",
    ["Infinity", "-Infinity", "NaN", "1" + "0" * 400],
    ids=["inf", "neg-inf", "nan", "huge-int"],
)
def test_entry_with_out_of_range_time_is_skipped_not_raised(tmp_path, caplog, bad_time):
    path = tmp_path / "cache.bin"
    store = PersistedTokenStore(path, allow_plaintext=True)
    good = CachedToken.create("tok-" * 10, expires_on=time.time() + 3600, obtained_on=time.time())
    bad = json.dumps({"token": "bad-" * 10, "token_type": "Bearer", "expires_on": 0, "refresh_on": 0, "obtained_on": 0})
    bad = bad.replace('"expires_on": 0', f'"expires_on": {bad_time}')
    path.write_text(f'{{"version": 1, "entries": {{"good": {json.dumps(good.to_json())}, "bad": {bad}}}}}')
    with caplog.at_level(logging.WARNING, logger="entraclaw"), store.lock():
        assert set(store.load()) == {"good"}
    assert "1 corrupt" in caplog.text


def test_shared_cache_lock_order_has_no_deadlock(tmp_path):
    """acquire_chain (which takes the T2 lock first) racing a cold get_token (which takes the shared lock first).

    The credential once took a per-key lock, then the shared-file lock, while a nested hop
    inside the shared lock took per-key locks: thread A (shared lock -> T2 lock) and thread D
    (T2 lock -> shared lock) waited on each other until the file lock timed out.
    """
    import threading

    with Emulator() as emu:
        seeded = seed(emu)
        store = PersistedTokenStore(tmp_path / "cache.bin", allow_plaintext=True, lock_timeout=3)
        cred = seeded.credential(cache=store)
        scope_a, scope_b = "https://graph.microsoft.com/User.Read", GRAPH_SCOPE
        cred.get_token(scope_a)
        # T2 is no longer fresh anywhere (memory or file); T1 and T3(scope_a) still are.
        cred._memory.remove(cred._t2_key)
        with store.lock():
            entries = store.load()
            entries.pop(cred._t2_key)
            store.save(entries)

        in_load, go = threading.Event(), threading.Event()
        real_load = store.load

        def slow_load():
            if threading.current_thread().name == "A" and not in_load.is_set():
                in_load.set()
                go.wait(10)
            return real_load()

        store.load = slow_load  # type: ignore[method-assign]
        errors: list[BaseException] = []

        def run(fn):
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)

        a = threading.Thread(target=run, args=(lambda: cred.get_token(scope_b),), name="A")
        d = threading.Thread(target=run, args=(lambda: cred.acquire_chain([scope_a]),), name="D")
        started = time.monotonic()
        a.start()
        assert in_load.wait(10)  # A holds the shared lock
        d.start()
        time.sleep(0.5)  # D is now waiting for what A holds
        go.set()
        a.join(15)
        d.join(15)
        assert not a.is_alive() and not d.is_alive()
        assert errors == []
        assert time.monotonic() - started < 3, "a thread waited for the lock timeout"
        assert emu.stats.count(2) == 2  # T2 exchanged once more, not once per thread


def test_same_tenant_and_ids_on_another_authority_host_do_not_share_tokens(tmp_path):
    # Two clouds (here: two emulators) with one tenant id and identical app/user ids must not
    # hand each other tokens through one shared cache file.
    import uuid

    tenant = str(uuid.uuid4())
    ids = {"bp": str(uuid.uuid4()), "ai": str(uuid.uuid4()), "au": str(uuid.uuid4())}
    path = tmp_path / "shared.bin"
    with Emulator(tenant_id=tenant) as first, Emulator(tenant_id=tenant) as second:
        seeded = []
        for emu in (first, second):
            s = seed(emu)
            cert = s.cert
            bp = emu.tenant.add_blueprint("same ids", certificates=[cert], app_id=ids["bp"])
            ai = emu.tenant.add_agent_identity(bp.app_id, "same ids", app_id=ids["ai"])
            emu.tenant.add_agent_user(ai.app_id, "same@contoso.example", "same", object_id=ids["au"])
            emu.tenant.grant_consent(ai.app_id, scopes=["User.Read"])
            seeded.append(s)
        tokens = []
        for s, emu in zip(seeded, (first, second), strict=True):
            cred = s.credential(
                blueprint_app_id=ids["bp"],
                agent_identity_app_id=ids["ai"],
                agent_user_id=ids["au"],
                cache=PersistedTokenStore(path, allow_plaintext=True),
            )
            tokens.append(cred.get_token(GRAPH_SCOPE).token)
            assert emu.stats.count() == 3, "each authority must run its own three hops"
        assert tokens[0] != tokens[1]


_KILLED_SAVE = """
import sys, time
sys.path.insert(0, sys.argv[2])
from credential_helpers import _encryption_switched_off
from entraclaw.auth import persisted_cache
from entraclaw.auth.token_cache import CachedToken

persisted_cache._encrypted_persistence = _encryption_switched_off
store = persisted_cache.PersistedTokenStore(sys.argv[1], allow_plaintext=True)
now = time.time()
with store.lock():
    store.save({"k": CachedToken.create("new-" * 10, expires_on=now + 3600, obtained_on=now)})
"""


@pytest.mark.skipif(sys.platform == "win32", reason="kills the writer with SIGKILL")
@pytest.mark.parametrize("step", WRITE_STEPS)
def test_a_cache_writer_killed_between_steps_leaves_the_old_or_new_file_and_the_next_write_converges(
    tmp_path, monkeypatch, step
):
    force_plaintext_cache(monkeypatch)
    path = tmp_path / "cache.bin"
    store = PersistedTokenStore(path, allow_plaintext=True)
    now = time.time()
    with store.lock():
        store.save({"k": CachedToken.create("old-" * 10, expires_on=now + 3600, obtained_on=now)})

    killed = run_writer(_KILLED_SAVE, str(path), str(Path(__file__).parent), crash_at=step)
    assert killed.returncode != 0, killed.stderr
    # Readers take no lock: whatever the kill left, the file is one whole version.
    token = store.load()["k"].token
    assert token == ("new-" * 10 if step == WRITE_STEPS[-1] else "old-" * 10)

    finished = run_writer(_KILLED_SAVE, str(path), str(Path(__file__).parent))
    assert finished.returncode == 0, finished.stderr
    assert store.load()["k"].token == "new-" * 10
    assert sorted(p.name for p in tmp_path.iterdir() if "entraclaw-tmp" in p.name) == []
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
