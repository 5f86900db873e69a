"""Linux TPM signing: TPM commands per signature and signatures per second, on swtpm.

Two tables, both measured in this run against baselines of the same run:

1. TPM commands per signature, counted on the wire by a proxy between the TSS and
   swtpm (tests/tpm2_helpers.CountingProxy: it parses each command's 10-byte header):
   - entraclaw ``Tpm2Signer``, warm (the key stays loaded): goal 1 (one TPM2_Sign);
   - entraclaw cold (first signature: CreatePrimary + Load + FlushContext + Sign);
   - tpm2-tools load-and-sign per call (``tpm2_load`` + ``tpm2_sign``, what a shell script
     does), and with the ``tpm2_flushcontext -t`` that a TPM without a resource manager
     needs after it (with /dev/tpmrm0 the kernel sends the equivalent flushes instead).
2. Signatures per second (RS256 over a 1 KB signing input), rounds interleaved so drift
   hits all alike; ratio = the contender's rate / the software key's rate (``PemSigner``,
   RSA-2048 in process memory), median over rounds.

swtpm is libtpms in a process on this machine: its RSA is software, so the speed column
says nothing about a real TPM (tens of ms per RSA-2048 signature on discrete TPMs);
the command counts carry over.

Run: python bench/bench_tpm2.py     (about a minute on 2 cores, most of it key creation)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from entraclaw.auth.certgen import generate_rsa_key
from entraclaw.auth.signer import PemSigner
from entraclaw.tpm2 import Tpm2Signer, create_key
from tpm2_helpers import CountingProxy, Swtpm

WARM_SIGNATURES = 50
ROUNDS = 7
ROUND_BUDGET = 0.5  # seconds per contender per round
DATA = b"x" * 1024


def _tools(workdir: Path, tcti: str) -> Callable[..., None]:
    def run(*argv: str) -> None:
        subprocess.run([*argv, "-T", tcti], cwd=workdir, check=True, capture_output=True)

    return run


def _tools_setup(workdir: Path, tcti: str) -> None:
    run = _tools(workdir, tcti)
    run("tpm2_createprimary", "-C", "o", "-G", "ecc256:aes128cfb", "-c", "primary.ctx")
    run("tpm2_create", "-C", "primary.ctx", "-G", "rsa2048", "-u", "key.pub", "-r", "key.priv",
        "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign|noda")
    run("tpm2_flushcontext", "-t")
    (workdir / "data").write_bytes(DATA)


def _tools_sign(workdir: Path, tcti: str, *, flush: bool = True) -> Callable[[], object]:
    run = _tools(workdir, tcti)

    def sign() -> object:
        run("tpm2_load", "-C", "primary.ctx", "-u", "key.pub", "-r", "key.priv", "-c", "key.ctx")
        run("tpm2_sign", "-c", "key.ctx", "-g", "sha256", "-o", "sig", "data")
        if flush:
            run("tpm2_flushcontext", "-t")
        return None

    return sign


def commands_table(tpm: Swtpm, key: Path, workdir: Path) -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    with CountingProxy(tpm.port) as proxy:
        with Tpm2Signer(key, tcti=proxy.tcti) as signer:
            signer.sign(DATA)
            rows.append(("entraclaw Tpm2Signer, cold (first signature)", proxy.total))
            proxy.reset()
            for _ in range(WARM_SIGNATURES):
                signer.sign(DATA)
            rows.append(("entraclaw Tpm2Signer, warm", proxy.total / WARM_SIGNATURES))
        run = _tools(workdir, proxy.tcti)
        n = 5
        proxy.reset()
        load_sign, flushes = 0, 0
        for _ in range(n):
            run("tpm2_load", "-C", "primary.ctx", "-u", "key.pub", "-r", "key.priv", "-c", "key.ctx")
            run("tpm2_sign", "-c", "key.ctx", "-g", "sha256", "-o", "sig", "data")
            load_sign += proxy.total
            proxy.reset()
            run("tpm2_flushcontext", "-t")
            flushes += proxy.total
            proxy.reset()
        rows.append(("tpm2-tools tpm2_load + tpm2_sign per call", load_sign / n))
        rows.append(("tpm2-tools load + sign + tpm2_flushcontext -t (no resource manager)", (load_sign + flushes) / n))
    return rows


def speed_table(tpm: Swtpm, key: Path, tools_tpm: Swtpm, workdir: Path) -> list[tuple[str, float, float]]:
    # tpm2-tools gets a swtpm of its own: without a resource manager, its load-and-sign needs
    # all three of swtpm's object slots, and entraclaw's signer keeps one.
    software = PemSigner(generate_rsa_key(), None)
    tpm_signer = Tpm2Signer(key, tcti=tpm.tcti)
    tpm_signer.sign(DATA)  # warm
    contenders: dict[str, Callable[[], object]] = {
        "PemSigner (software RSA-2048, baseline)": lambda: software.sign(DATA),
        "entraclaw Tpm2Signer, warm (swtpm)": lambda: tpm_signer.sign(DATA),
        "tpm2-tools load + sign + flush per call (swtpm)": _tools_sign(workdir, tools_tpm.tcti),
    }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, fn in contenders.items():
            count, start = 0, time.perf_counter()
            while True:
                fn()
                count += 1
                elapsed = time.perf_counter() - start
                if elapsed >= ROUND_BUDGET:
                    break
            rates[name].append(count / elapsed)
    tpm_signer.close()
    base = rates["PemSigner (software RSA-2048, baseline)"]
    rows = []
    for name, values in rates.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        rows.append((name, statistics.median(values), statistics.median(ratios)))
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with Swtpm(root / "tpm") as tpm:
            key = root / "k.tpm2"
            create_key(key, "entraclaw-blueprint-bench", tcti=tpm.tcti).close()
            workdir = root / "tools"
            workdir.mkdir()
            _tools_setup(workdir, tpm.tcti)
            commands = commands_table(tpm, key, workdir)
            with Swtpm(root / "tools-tpm") as tools_tpm:
                tools_dir = root / "tools2"
                tools_dir.mkdir()
                _tools_setup(tools_dir, tools_tpm.tcti)
                speed = speed_table(tpm, key, tools_tpm, tools_dir)
    print("\nTPM commands per signature (counted on the wire; goal for warm: 1)\n")
    print("| signer | TPM commands per signature |")
    print("|---|---:|")
    for name, value in commands:
        print(f"| {name} | {value:g} |")
    warm = next(v for n, v in commands if n.endswith("warm"))
    tools = next(v for n, v in commands if n.endswith("per call"))
    print(f"\nwarm entraclaw vs tpm2-tools load+sign: {tools / warm:.1f}x fewer TPM commands")
    print(f"\nSignatures per second, RS256, {ROUNDS} interleaved rounds (median)\n")
    print("| signer | signatures/s | ratio to PemSigner |")
    print("|---|---:|---:|")
    for name, rate, ratio in speed:
        print(f"| {name} | {rate:,.1f} | {ratio:.4f} |")


if __name__ == "__main__":
    main()
