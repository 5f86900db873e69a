"""16 processes cold-starting at once against one emulator: how many token exchanges reach it?

Baseline (ratio 1.00): one process alone, cold — 3 exchanges (one per hop).
Contenders: 16 processes released at the same instant (after their imports),
each with an ``AgentUserCredential`` for the same Blueprint / Agent Identity /
Agent User:

- with a shared ``PersistedTokenStore`` (check -> exchange -> write under one
  inter-process file lock): the first process exchanges, the others read;
- with memory-only caches: every process runs all three hops.

Goal: 3 exchanges in all with the shared cache (one per hop), not 48.

Run: python bench/bench_multiprocess.py     (about 20 s on 2 cores)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROCESSES = 16
SCOPE = "https://graph.microsoft.com/.default"


def child(config_path: str) -> int:
    """One cold process: build the credential, wait for the common start instant, get a token."""
    import hashlib

    from _chain import child_credential

    config = json.loads(Path(config_path).read_text())
    credential = child_credential(config)
    delay = config["start_at"] - time.time()
    if delay > 0:
        time.sleep(delay)
    started = time.perf_counter()
    token = credential.get_token(SCOPE)
    elapsed = time.perf_counter() - started
    digest = hashlib.sha256(token.token.encode()).hexdigest()
    print(json.dumps({"sha256": digest, "seconds": elapsed, "late": delay <= 0}))
    return 0


def run_batch(emu, base_config: dict, processes: int, cache_path: str | None, tmp: Path) -> dict:
    emu.stats.reset()
    config = dict(base_config, cache_path=cache_path, start_at=time.time() + 3.0 + 0.25 * processes)
    config_path = tmp / f"config-{processes}-{bool(cache_path)}.json"
    config_path.write_text(json.dumps(config))
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", str(config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    hashes, seconds, late = set(), [], 0
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise SystemExit(f"child failed:\n{err[-2000:]}")
        result = json.loads(out.strip().splitlines()[-1])
        hashes.add(result["sha256"])
        seconds.append(result["seconds"])
        late += bool(result["late"])
    by_hop = {hop: emu.stats.count(hop) for hop in (1, 2, 3)}
    return {
        "exchanges": emu.stats.count(),
        "by_hop": by_hop,
        "tokens": len(hashes),
        "slowest": max(seconds),
        "late": late,
    }


def main() -> None:
    from _chain import seed_chain
    from entraclaw.auth.certgen import generate_rsa_key, self_signed_certificate
    from entraclaw.emulator import Emulator

    key = generate_rsa_key()
    cert = self_signed_certificate(key, "bench-multiprocess")
    with Emulator() as emu, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        base = seed_chain(emu, key, cert)
        one = run_batch(emu, base, 1, str(tmp / "one.bin"), tmp)
        shared = run_batch(emu, base, PROCESSES, str(tmp / "shared.bin"), tmp)
        separate = run_batch(emu, base, PROCESSES, None, tmp)

    print(f"Cold start of {PROCESSES} processes at one instant against one emulator (loopback TLS)")
    print(f"{'case':<40} {'exchanges':>9} {'hop1/2/3':>10} {'ratio':>7} {'tokens':>7} {'slowest get_token':>18}")
    print("-" * 96)
    for name, row in (
        ("1 process, cold (baseline)", one),
        (f"{PROCESSES} processes, shared persisted cache", shared),
        (f"{PROCESSES} processes, memory-only caches", separate),
    ):
        hops = "/".join(str(row["by_hop"][h]) for h in (1, 2, 3))
        ratio = row["exchanges"] / one["exchanges"]
        print(
            f"{name:<40} {row['exchanges']:>9} {hops:>10} {ratio:>6.1f}x {row['tokens']:>7} "
            f"{row['slowest'] * 1000:>15.0f} ms"
        )
    print("-" * 96)
    late = shared["late"] + separate["late"]
    if late:
        print(f"note: {late} process(es) finished importing after the start instant (machine overloaded)")
    ok = shared["exchanges"] == 3 and shared["tokens"] == 1
    print(
        f"goal: {PROCESSES} cold processes with the shared cache cause 3 exchanges: "
        f"{'met' if ok else 'MISSED'} ({shared['exchanges']}; memory-only: {separate['exchanges']})"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        raise SystemExit(child(sys.argv[2]))
    main()
