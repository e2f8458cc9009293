"""A TCP proxy on loopback that fails the way a dependency does: hung, refusing, back.

Put it in front of a shared server (PostgreSQL, Redis) to inject faults without touching
the server itself, which other processes keep using:

* ``hang()``: every connection, open or new, is accepted and then silently stalls (a
  SIGSTOPped server, a blackholed network): no byte moves, nothing is closed;
* ``refuse()``: open connections are reset and new ones refused (a stopped server);
* ``restore()``: traffic flows again and new connections go through.

It runs its own event loop in a daemon thread, so sync and async tests alike can drive it,
and it stops (closing every connection) on ``close()`` or leaving the ``with`` block.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CHUNK = 64 * 1024
MAX_TRANSCRIPT = 16 * 1024 * 1024


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        with socket.socket() as sock:
            sock.bind((host, 0))
            self.port = int(sock.getsockname()[1])
        self.accepted = 0
        #: What clients sent (first MAX_TRANSCRIPT bytes), held back while hung included:
        #: tells which commands a client still tries to send.
        self.transcript = bytearray()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread.start()
        self._call(self._start())

    # -- driven from the test's thread ---------------------------------------------------

    def hang(self) -> None:
        """Stall every connection, present and future, without closing any."""
        self._call(self._set_flowing(False))

    def refuse(self) -> None:
        """Reset open connections and refuse new ones until ``restore()``."""
        self._call(self._refuse())

    def restore(self) -> None:
        """Let traffic flow again (and listen again after ``refuse()``)."""
        self._call(self._restore())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._call(self._refuse())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # -- on the proxy's loop ---------------------------------------------------------------

    async def _start(self) -> None:
        if self._flowing is None:
            self._flowing = asyncio.Event()
            self._flowing.set()
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _refuse(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # RST, as from a server that went away
        self._writers.clear()

    async def _restore(self) -> None:
        await self._set_flowing(True)
        if self._server is None:
            await self._start()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            # Connected upstream even while hung: the pumps hold every byte back instead.
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            self._writers.add(upstream_writer)
            await asyncio.gather(
                self._pump(reader, upstream_writer, record=True),
                self._pump(upstream_reader, writer),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for end in (writer, upstream_writer):
                if end is not None:
                    self._writers.discard(end)
                    with contextlib.suppress(Exception):
                        end.close()

    def _note(self, data: bytes) -> None:
        room = MAX_TRANSCRIPT - len(self.transcript)
        if room > 0:
            self.transcript += data[:room]

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, record: bool = False
    ) -> None:
        """Copy ``source`` to ``sink``; while hung, keep reading (and noting) but hold
        every byte back, closing nothing.
        """
        assert self._flowing is not None
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        async def read() -> None:
            data = b"x"
            while data:
                try:
                    data = await source.read(CHUNK)
                except OSError:
                    data = b""
                if record:
                    self._note(data)
                queue.put_nowait(data)

        reading = asyncio.create_task(read())
        try:
            while True:
                data = await queue.get()
                await self._flowing.wait()
                if not data:
                    sink.close()
                    return
                sink.write(data)
                await sink.drain()
        finally:
            reading.cancel()
