"""A real TPM for the Linux TPM key tests: swtpm (libtpms) started per test module on loopback.

``Swtpm`` starts ``swtpm socket --tpm2`` with a data port P and a control port P+1, waits (bounded)
until it accepts connections, and kills it at the end. Its TCTI string
``swtpm:host=127.0.0.1,port=P`` is what ``ENTRACLAW_TPM2_TCTI`` takes. ``CountingProxy`` sits
between a TSS and swtpm and counts the TPM commands on the wire (what a warm signature costs),
whoever sends them: entraclaw or tpm2-tools.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from capabilities import require

__all__ = ["CountingProxy", "Swtpm", "have_tpm2", "require_tpm2"]

_STARTUP_WAIT = 20.0


def have_tpm2() -> tuple[bool, str]:
    if shutil.which("swtpm") is None:
        return False, "swtpm is not installed (apt-get install swtpm swtpm-tools)"
    if importlib.util.find_spec("tpm2_pytss") is None:
        return False, "tpm2-pytss is not installed (pip install 'entraclaw[tpm2]'; needs libtss2-dev)"
    return True, ""


def require_tpm2() -> None:
    ok, why = have_tpm2()
    require("tpm2", ok, why)


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no two adjacent free loopback ports")


def _wait_port(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"swtpm exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"swtpm did not listen on 127.0.0.1:{port} within {_STARTUP_WAIT} s")


class Swtpm:
    """One swtpm instance with its own state directory (its own seeds: another TPM)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        """swtpm on ``port`` (commands) and ``port + 1`` (control), keeping its seeds in the state dir."""
        return subprocess.Popen(
            [
                "swtpm", "socket", "--tpm2",
                "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
                "--flags", "not-need-init,startup-clear",
                "--tpmstate", f"dir={self.state_dir}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip

    def start(self) -> Swtpm:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # a port taken between the probe and swtpm's bind: try another
            self.port = _free_port_pair()
            self.proc = self._launch(self.port)
            try:
                _wait_port(self.port, self.proc, time.monotonic() + _STARTUP_WAIT)
                return self
            except RuntimeError:
                self.stop()
        raise RuntimeError(f"swtpm would not start (state {self.state_dir})")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        """Power-cycle: the same seeds (state dir), every transient object gone."""
        port = self.port
        self.stop()
        self.proc = self._launch(port)
        _wait_port(port, self.proc, time.monotonic() + _STARTUP_WAIT)

    def env(self) -> dict[str, str]:
        return {"ENTRACLAW_TPM2_TCTI": self.tcti}

    def __enter__(self) -> Swtpm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CountingProxy:
    """Forward swtpm's data and control ports; count every TPM command sent on the data port.

    A TPM command starts with a 10-byte header: tag (2), commandSize (4), commandCode (4),
    big-endian (TCG TPM 2.0 Part 1, 18.2). ``codes`` counts command codes.
    """

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = _free_port_pair()
        self.codes: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._servers: list[socket.socket] = []
        self._stop = threading.Event()

    @property
    def tcti(self) -> str:
        return f"swtpm:host=127.0.0.1,port={self.port}"

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.codes.values())

    def reset(self) -> None:
        with self._lock:
            self.codes.clear()

    def start(self) -> CountingProxy:
        for offset, counting in ((0, True), (1, False)):
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", self.port + offset))
            server.listen(8)
            self._servers.append(server)
            threading.Thread(target=self._accept, args=(server, self.target + offset, counting), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for server in self._servers:
            with contextlib.suppress(OSError):
                server.close()

    def _accept(self, server: socket.socket, target: int, counting: bool) -> None:
        while not self._stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pipe, args=(client, upstream, counting), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, counting: bool) -> None:
        pending = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if counting:
                    pending += data
                    while len(pending) >= 10:
                        _tag, size, code = struct.unpack(">HII", pending[:10])
                        if len(pending) < size:
                            break
                        with self._lock:
                            self.codes[code] += 1
                        pending = pending[size:]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tpm2_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTRACLAW_")}
    env.update(extra or {})
    return env


TPM2_CC_SIGN = 0x0000015D
TPM2_CC_LOAD = 0x00000157
TPM2_CC_CREATE_PRIMARY = 0x00000131
TPM2_CC_FLUSH_CONTEXT = 0x00000165


def fault_tcti(tcti: str, faults: dict[int, list[int]]) -> object:
    """A TCTI factory: swtpm's TCTI behind a Python TCTI that answers the next commands of a code with RCs.

    ``faults[command_code]`` is a list of response codes consumed one per command of that code; the
    command does not reach the TPM. ``sent`` on the returned factory counts what did reach it.
    """
    from tpm2_pytss import TCTILdr
    from tpm2_pytss.TCTI import PyTCTI

    class FaultTcti(PyTCTI):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()  # max_size 4096: SAPI refuses a TCTI announcing more than its buffer
            name, _, conf = tcti.partition(":")
            self._inner = TCTILdr(name, conf)
            self._pending: bytes | None = None

        def do_transmit(self, command: bytes) -> None:
            code = struct.unpack(">I", bytes(command[6:10]))[0]
            queue = faults.get(code)
            if queue:
                self._pending = struct.pack(">HII", 0x8001, 10, queue.pop(0))
                return
            factory.sent[code] += 1
            self._inner.transmit(bytes(command))

        def do_receive(self, timeout: int) -> bytes:
            if self._pending is not None:
                out, self._pending = self._pending, None
                return out
            return bytes(self._inner.receive(4096, timeout))

        def do_finalize(self) -> None:
            self._inner.finalize()

    def factory() -> FaultTcti:
        return FaultTcti()

    factory.sent = Counter()  # type: ignore[attr-defined]
    factory.description = f"fault injector over {tcti}"  # type: ignore[attr-defined]
    return factory
