"""Build native/wine's probe (the signer core cross-built with mingw-w64), run it under Wine, parse it.

The probe prints one record per line (format at the top of native/wine/probe.cpp). The parsed
output carries the exported BCRYPT_RSAPUBLIC_BLOB as a `cryptography` public key, so the tests
judge every signature with an independent implementation.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from capabilities import require

REPO = Path(__file__).resolve().parent.parent
TOOLCHAIN = REPO / "cmake" / "mingw-w64-x86_64.cmake"
WINE_SOURCE = REPO / "native" / "wine"
PROBE_NAME = "entraclaw_wine_probe.exe"

MINGW_CXX = "x86_64-w64-mingw32-g++-posix"
DEFAULT_WINE = "/usr/lib/wine/wine64"

# Wine's first start in a new prefix builds the registry (~6 s here, longer on a loaded runner).
WINE_TIMEOUT_S = 150
BUILD_TIMEOUT_S = 240

# SDK values (winerror.h) the tests expect back from Wine's ncrypt/crypt32.
NTE_INVALID_HANDLE = 0x80090026
NTE_INVALID_PARAMETER = 0x80090027
NTE_BUFFER_TOO_SMALL = 0x80090028
NTE_INTERNAL_ERROR = 0x8009002D
HRESULT_FROM_WIN32_ERROR_INVALID_DATA = 0x8007000D  # HRESULT_FROM_WIN32(ERROR_INVALID_DATA = 13)

# BCRYPT_RSAPUBLIC_MAGIC ('RSA1') and the BCRYPT_RSAKEY_BLOB header: six ULONGs.
BCRYPT_RSAPUBLIC_MAGIC = 0x31415352
_RSAKEY_BLOB = struct.Struct("<6I")


def wine_loader() -> str:
    return os.environ.get("ENTRACLAW_WINE", DEFAULT_WINE)


def missing_tools(*, need_compiler: bool) -> list[str]:
    """What this machine lacks for the Wine tests, named with the package that provides it."""
    missing = []
    if not os.access(wine_loader(), os.X_OK):
        missing.append(f"{wine_loader()} (apt-get install wine64)")
    if need_compiler:
        if shutil.which(MINGW_CXX) is None:
            missing.append(f"{MINGW_CXX} (apt-get install g++-mingw-w64-x86-64-posix)")
        if shutil.which("cmake") is None:
            missing.append("cmake (pip install cmake)")
    return missing


def sha256_hex(message: bytes) -> str:
    return hashlib.sha256(message).hexdigest()


def build_probe(build_dir: Path) -> Path:
    """Configure and build native/wine with the mingw-w64 toolchain; returns the exe path."""
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = [
        "cmake", "-S", str(WINE_SOURCE), "-B", str(build_dir), *generator,
        f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}", "-DCMAKE_BUILD_TYPE=Release",
    ]  # fmt: skip
    for cmd in (configure, ["cmake", "--build", str(build_dir), "--parallel", "2"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    exe = build_dir / PROBE_NAME
    if not exe.is_file():
        raise RuntimeError(f"the build finished but {exe} does not exist")
    return exe


# One cross build and one fresh prefix per pytest session, shared by the test_wine_*.py modules
# (each costs tens of seconds on a 2-core runner).
_session_build: Path | None = None
_session_prefix: Path | None = None


def session_build_dir(factory: pytest.TempPathFactory) -> Path:
    """native/wine built once per session; holds every probe exe."""
    global _session_build
    if _session_build is None:
        _session_build = build_probe(factory.mktemp("wine-build")).parent
    return _session_build


def session_prefix(factory: pytest.TempPathFactory) -> Path:
    """ENTRACLAW_WINEPREFIX when set, else one fresh prefix per session."""
    global _session_prefix
    shared = os.environ.get("ENTRACLAW_WINEPREFIX")
    if shared:
        Path(shared).mkdir(parents=True, exist_ok=True)
        return Path(shared)
    if _session_prefix is None:
        _session_prefix = factory.mktemp("wine-prefix")
    return _session_prefix


def probe_exe(factory: pytest.TempPathFactory, name: str = PROBE_NAME) -> Path:
    """The native/wine exe ``name``: next to ENTRACLAW_WINE_PROBE (scripts/wine_test.sh builds them all), else
    from the session build. Skips, or fails under ENTRACLAW_REQUIRE=wine, when Wine or the compiler is missing."""
    prebuilt = os.environ.get("ENTRACLAW_WINE_PROBE")
    if prebuilt:
        missing = missing_tools(need_compiler=False)
        require("wine", not missing, ", ".join(missing))
        path = Path(prebuilt).with_name(name)
        assert path.is_file(), f"{path} does not exist; run scripts/wine_test.sh --build-only"
        return path
    missing = missing_tools(need_compiler=True)
    require("wine", not missing, "missing " + ", ".join(missing))
    return session_build_dir(factory) / name


def wine_env(prefix: Path) -> dict[str, str]:
    env = dict(os.environ)
    # No Mono/Gecko install prompts in a fresh prefix; nothing here opens a window.
    env.update(WINEPREFIX=str(prefix), WINEDEBUG="-all", WINEDLLOVERRIDES="mscoree,mshtml=")
    env.pop("DISPLAY", None)
    return env


def run_probe(exe: Path, prefix: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [wine_loader(), str(exe), *args],
        capture_output=True,
        text=True,
        timeout=WINE_TIMEOUT_S,
        env=wine_env(prefix),
        check=False,
    )


@dataclass(frozen=True)
class StatusLine:
    hr: int
    api: str
    name: str
    category: str = ""
    action: str = ""
    detail: str = ""


@dataclass
class ProbeOutput:
    backend: str = ""
    key_bits: int = 0
    public_blob: bytes = b""
    # (padding, digest index) -> signatures from sign_digest, in order
    signatures: dict[tuple[str, int], list[bytes]] = field(default_factory=dict)
    # (padding, size hint, digest index) -> (HRESULT, signature or b"")
    sized: dict[tuple[str, int, int], tuple[int, bytes]] = field(default_factory=dict)
    raw_small: tuple[int, str, int, bool] | None = None
    after_pss: tuple[int, bytes] | None = None
    statuses: dict[str, StatusLine] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    dpapi: dict[str, StatusLine] = field(default_factory=dict)
    done: bool = False

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return public_key_from_blob(self.public_blob)


def _sig(text: str) -> bytes:
    return b"" if text == "-" else bytes.fromhex(text)


def parse_probe_output(stdout: str) -> ProbeOutput:
    out = ProbeOutput()
    for line in stdout.splitlines():
        kind, _, rest = line.partition(" ")
        f = rest.split(" ")
        if kind == "backend":
            out.backend = rest
        elif kind == "keylen":
            out.key_bits = int(rest)
        elif kind == "pubkey":
            out.public_blob = bytes.fromhex(rest)
        elif kind == "sign":
            out.signatures.setdefault((f[0], int(f[1])), []).append(bytes.fromhex(f[2]))
        elif kind == "sized":
            out.sized[(f[0], int(f[1]), int(f[2]))] = (int(f[3], 16), _sig(f[4]))
        elif kind == "raw_small":
            out.raw_small = (int(f[0], 16), f[1], int(f[2]), f[3] == "1")
        elif kind == "after_pss":
            out.after_pss = (int(f[1], 16), _sig(f[2]))
        elif kind == "status":
            out.statuses[f[0]] = StatusLine(int(f[1], 16), f[2], f[3], f[4], f[5])
        elif kind == "message":
            out.messages[f[0]] = " ".join(f[1:]).strip()
        elif kind == "dpapi":
            out.dpapi[f[0]] = StatusLine(int(f[1], 16), f[2], f[3], detail=f[4])
        elif kind == "done":
            out.done = True
        elif line.strip():
            raise ValueError(f"unexpected probe output line: {line[:120]!r}")
    return out


def public_key_from_blob(blob: bytes) -> rsa.RSAPublicKey:
    """BCRYPT_RSAPUBLIC_BLOB -> RSA public key: the header, then exponent and modulus, big-endian."""
    magic, bits, exp_len, mod_len, prime1_len, prime2_len = _RSAKEY_BLOB.unpack_from(blob)
    if magic != BCRYPT_RSAPUBLIC_MAGIC:
        raise ValueError(f"not a BCRYPT_RSAPUBLIC_BLOB: magic 0x{magic:08X}")
    if prime1_len or prime2_len:
        raise ValueError("a public blob must not carry primes")
    start = _RSAKEY_BLOB.size
    if len(blob) != start + exp_len + mod_len:
        raise ValueError(f"blob is {len(blob)} bytes, its header says {start + exp_len + mod_len}")
    e = int.from_bytes(blob[start : start + exp_len], "big")
    n = int.from_bytes(blob[start + exp_len :], "big")
    if n.bit_length() != bits:
        raise ValueError(f"modulus has {n.bit_length()} bits, the header says {bits}")
    return rsa.RSAPublicNumbers(e, n).public_key()
