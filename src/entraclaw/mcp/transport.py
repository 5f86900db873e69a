"""stdin/stdout for the SDK's stdio transport without a thread hop per line (POSIX pipes).

The SDK's ``stdio_server()`` reads and writes through ``anyio.wrap_file``: every line read and
every write + flush is a worker-thread round trip, which on a busy machine is most of a warm tool
call's time. It accepts explicit streams, so on POSIX, when fd 0 and fd 1 are pipes or sockets
(what every MCP client gives a server it starts), this module hands it event-loop-native ones
(``loop.connect_read_pipe`` / ``connect_write_pipe``). The SDK still frames and parses every
message; nothing here speaks JSON-RPC.

The SDK diverts fd 0/1 only for the streams it opens itself, so this does the same: the protocol
moves to private duplicates, fd 1 then points at stderr and fd 0 at the null device, so a stray
``print`` (ours or a library's) can never corrupt the wire. Anything else (a regular file as stdin,
Windows) returns None and the caller uses the SDK's own streams.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["native_stdio"]


def _pipe_like(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class _Lines:
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", "replace")


class _Writer:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


@asynccontextmanager
async def native_stdio() -> AsyncIterator[tuple[Any, Any] | None]:
    """Yields (stdin lines, stdout writer) for ``stdio_server(stdin=, stdout=)``, or None to use the SDK's."""
    if sys.platform == "win32" or not (_pipe_like(0) and _pipe_like(1)):
        yield None
        return
    loop = asyncio.get_running_loop()
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        sys.stdout.flush()
        os.dup2(null, 0)
        os.dup2(2, 1)  # stray output goes to stderr, never onto the protocol
    finally:
        os.close(null)
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0)
    )
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(wire_out, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
    try:
        yield _Lines(reader), _Writer(writer)
    finally:
        read_transport.close()
        write_transport.close()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)
