"""CNG signer benchmarks against the stand-in (ratios within one run).

1. Win32 calls per warm signature: entraclaw._cng vs the seed's ctypes pattern
   (open store / find cert / acquire key / sign / free key / free cert / close
   store on every call), counted by the stand-in.
2. Per-signature wrapper overhead in null-signature mode (no RSA math):
   time per call minus the native floor (the same stand-in calls made from C++),
   for entraclaw._cng vs a warm ctypes signer (size query + sign per call).
3. GIL release: 4 threads vs 1 signing with 5 ms injected device latency.
4. Serialized hardware vs parallel software (issue 8): the same 4-vs-1-thread
   run for a key the stand-in marks as TPM (signatures serialized per key, so
   the ratio stays ~1x) and for a software key (parallel, ~4x), with the
   largest overlap of NCryptSignHash calls the stand-in saw on one key.

Needs the stand-in build: ENTRACLAW_BUILD_NATIVE=standin pip install --no-build-isolation -e .
Run: python bench/bench_cng.py
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from cryptography.hazmat.primitives import serialization

from ctypes_signer import CtypesPerCallSigner, CtypesWarmSigner
from entraclaw import cng
from entraclaw.auth.certgen import generate_rsa_key, self_signed_certificate

try:
    from entraclaw import _cng, _cng_standin
except ImportError:
    sys.exit("bench_cng needs the stand-in build: ENTRACLAW_BUILD_NATIVE=standin pip install --no-build-isolation -e .")

SOFTWARE = "Microsoft Software Key Storage Provider"
PLATFORM = "Microsoft Platform Crypto Provider"
DATA = b"eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJiZW5jaCJ9"
DIGEST = hashlib.sha256(DATA).digest()


def install_key(provider: str = SOFTWARE, container: str = "bench-key") -> str:
    key = generate_rsa_key(2048)
    cert = self_signed_certificate(key, "entraclaw-bench")
    der = cert.public_bytes(serialization.Encoding.DER)
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _cng_standin.add_certificate("CurrentUser", der, key_der, provider, container, False)
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def best_ns_per_call(fn, n: int, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e9


def calls_per_signature(fn, n: int) -> float:
    fn()  # warm
    _cng_standin.reset_counters()
    for _ in range(n):
        fn()
    return _cng_standin.total_calls() / n


def throughput(signer: cng.CngSigner, threads: int, per_thread: int) -> float:
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            signer.sign(DATA)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return threads * per_thread / (time.perf_counter() - start)


def main() -> None:
    _cng_standin.reset()
    thumb = install_key()
    lib = _cng_standin.library_path()
    signer = cng.CngSigner(thumb)
    rows: list[tuple[str, str, str, str, str]] = []

    # 1. Win32 calls per warm signature (real RSA).
    ours = calls_per_signature(lambda: signer.sign(DATA), 200)
    per_call = CtypesPerCallSigner(lib, thumb)
    theirs = calls_per_signature(lambda: per_call.sign(DATA), 200)
    rows.append(
        (
            "Win32 calls / warm signature",
            f"{ours:.1f}",
            f"{theirs:.1f} (ctypes per-call)",
            f"{ours / theirs:.3f}",
            "1 vs 7+",
        )
    )

    # 2. Wrapper overhead, null-signature mode.
    _cng_standin.set_null_signature(True)
    key = _cng.CertKey(thumb)
    warm = CtypesWarmSigner(lib, thumb)
    pkcs1 = _cng.PADDING_PKCS1
    n = 20000
    floor_1 = min(_cng_standin.native_sign_ns(thumb, n, False) for _ in range(5))
    floor_2 = min(_cng_standin.native_sign_ns(thumb, n, True) for _ in range(5))
    t_module = best_ns_per_call(lambda: key.sign_digest(DIGEST, pkcs1), n)
    t_signer = best_ns_per_call(lambda: signer.sign(DATA), n)
    t_ctypes = best_ns_per_call(lambda: warm.sign_digest(DIGEST), n)
    over_module = t_module - floor_1
    over_ctypes = t_ctypes - floor_2
    rows.append(
        (
            "ns / call, null signature (total)",
            f"{t_module:.0f}",
            f"{t_ctypes:.0f} (ctypes warm)",
            f"{t_module / t_ctypes:.3f}",
            "",
        )
    )
    rows.append(("native floor (same calls from C++)", f"{floor_1:.0f} (1 call)", f"{floor_2:.0f} (2 calls)", "", ""))
    rows.append(
        (
            "wrapper overhead ns / signature",
            f"{over_module:.0f}",
            f"{over_ctypes:.0f}",
            f"{over_module / over_ctypes:.3f}",
            "<= 0.100",
        )
    )
    rows.append(("CngSigner.sign (sha256 + wrapper) ns", f"{t_signer:.0f}", "", "", "info"))
    warm.close()
    key.close()

    # 3. Threads with 5 ms device latency (null signatures: the device does the math).
    _cng_standin.set_sign_latency_us(5000)
    one = throughput(signer, 1, 40)
    four = throughput(signer, 4, 40)
    rows.append(
        (
            "signatures / s, 5 ms latency",
            f"{four:.0f} (4 threads)",
            f"{one:.0f} (1 thread)",
            f"{four / one:.2f}x",
            ">= 3.5x",
        )
    )
    _cng_standin.set_null_signature(False)
    one_rsa = throughput(signer, 1, 25)
    four_rsa = throughput(signer, 4, 25)
    rows.append(
        (
            "same, real RSA in the stand-in (2 cores)",
            f"{four_rsa:.0f} (4 threads)",
            f"{one_rsa:.0f} (1 thread)",
            f"{four_rsa / one_rsa:.2f}x",
            "info",
        )
    )
    _cng_standin.set_sign_latency_us(0)

    # 4. Serialized hardware vs parallel software, 5 ms device latency, null signatures.
    tpm_thumb = install_key(PLATFORM, "bench-tpm-key")
    tpm = cng.CngSigner(tpm_thumb)
    tpm_calls = calls_per_signature(lambda: tpm.sign(DATA), 200)
    rows.append(("Win32 calls / warm signature, TPM key", f"{tpm_calls:.1f}", f"{ours:.1f} (software key)", "", "1"))
    _cng_standin.set_null_signature(True)
    _cng_standin.set_sign_latency_us(5000)
    table: list[tuple[str, float, float, int]] = []
    for label, key_signer, hardware in (("software key", signer, False), ("TPM key", tpm, True)):
        _cng_standin.reset_counters()
        single = throughput(key_signer, 1, 40)
        quad = throughput(key_signer, 4, 40)
        table.append((label, quad, single, _cng_standin.max_sign_overlap(hardware)))
    for label, quad, single, overlap in table:
        goal = ">= 3.5x (parallel)" if label == "software key" else "<= 1.1x (serialized)"
        rows.append(
            (
                f"sig/s 4 threads vs 1, 5 ms, {label}",
                f"{quad:.0f} (4 thr, overlap {overlap})",
                f"{single:.0f} (1 thread)",
                f"{quad / single:.2f}x",
                goal,
            )
        )
    sw_quad, tpm_quad = table[0][1], table[1][1]
    rows.append(
        (
            "4-thread throughput, TPM vs software",
            f"{tpm_quad:.0f}",
            f"{sw_quad:.0f}",
            f"{tpm_quad / sw_quad:.2f}",
            "~0.25",
        )
    )
    _cng_standin.set_sign_latency_us(0)
    _cng_standin.set_null_signature(False)
    tpm.close()
    signer.close()
    leaked = _cng_standin.open_handles()
    _cng_standin.reset()

    header = ("metric", "entraclaw._cng", "baseline", "ratio", "goal")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for r in rows:
        print(line.format(*r))
    print(f"\nopen stand-in handles after the run: {leaked}")


if __name__ == "__main__":
    main()
