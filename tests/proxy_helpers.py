"""A real HTTP proxy for tests: Debian's tinyproxy, started on loopback, stopped afterwards.

``require("proxy", ...)``: CI lists ``proxy`` in ENTRACLAW_REQUIRE, so a missing tinyproxy fails
there instead of skipping.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from capabilities import require

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"


@dataclass
class Tinyproxy:
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests_seen(self) -> str:
        """The log lines tinyproxy wrote (CONNECT lines name each tunnel's target)."""
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tunnels(self, host: str = "127.0.0.1") -> int:
        """CONNECT requests to ``host`` (tinyproxy logs each as ``Request (...): CONNECT host:port``)."""
        return sum(1 for line in self.requests_seen().splitlines() if f": CONNECT {host}:" in line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_tinyproxy() -> None:
    require("proxy", Path(TINYPROXY).is_file(), "tinyproxy is not installed (apt-get install tinyproxy)")


@contextlib.contextmanager
def tinyproxy(workdir: Path, *, basic_auth: tuple[str, str] | None = None) -> Iterator[Tinyproxy]:
    """tinyproxy on 127.0.0.1:<free port>, in the foreground, logging at Info level to ``workdir``."""
    require_tinyproxy()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / f"tinyproxy-{port}.log"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 60",
        "Allow 127.0.0.1",
        "MaxClients 20",
        f"LogFile \"{log}\"",
        "LogLevel Info",
        # No ConnectPort line: CONNECT to any port (the emulator's is random).
    ]
    if basic_auth is not None:
        lines.append(f"BasicAuth {basic_auth[0]} {basic_auth[1]}")
    conf = workdir / f"tinyproxy-{port}.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.Popen([TINYPROXY, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise AssertionError(f"tinyproxy exited ({proc.returncode}): {err}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise AssertionError("tinyproxy did not listen within 15 s")
            time.sleep(0.05)
        yield Tinyproxy(port, log, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
