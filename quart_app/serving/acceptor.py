"""Accept every pending connection at once under Hypercorn's uvloop worker.

Since libuv 1.45 (libuv/libuv#3696, bundled by uvloop >= 0.18) a listening socket accepts
*one* connection per event-loop iteration. Under load an iteration serves hundreds of
ready connections and lasts milliseconds, so a burst of new connections is accepted at a
few per iteration per worker while the rest wait in the kernel's accept queue, and the
last of a burst wait far longer than the first (benchmarks/results/make-bench.md).
asyncio's own loop accepts up to ``backlog`` connections per wake-up, and so does this
module.

Hypercorn serves each plain-TCP listening socket through ``asyncio.start_server(callback,
sock=...)``, after the app's start-up has run. :func:`install` (called from
``before_serving`` when the running loop is uvloop's) routes those calls to
:func:`start_server`, which watches the socket with ``loop.add_reader``, drains the accept
queue on every wake-up and hands each connection to ``loop.connect_accepted_socket`` with
the same ``StreamReaderProtocol`` that ``asyncio.start_server`` builds. TLS sockets, calls
without ``sock=`` and every other event loop go to ``asyncio.start_server`` unchanged.
``DRAIN_ACCEPT_QUEUE=false`` leaves asyncio's accept loop alone.

Connections the master took from a dead sibling's socket arrive on the worker's end of
a socket pair (``SCM_RIGHTS``) and are served like accepted ones, by the server of the
same address (:func:`_receive_handoffs`).

Every server started through :func:`start_server` is also recorded, with its open
connections counted, in :data:`quart_app.serving.drain.STATE`, so that a worker's
graceful drain can stop accepting at once (quart_app/serving/drain.py).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from .drain import STATE

log = logging.getLogger(__name__)

ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]

#: asyncio.start_server's default StreamReader buffer limit.
STREAM_LIMIT = 2**16
#: Seconds to stop accepting after running out of file descriptors or memory (as asyncio).
ACCEPT_RETRY_DELAY = 1.0
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

_original_start_server = asyncio.start_server


def is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    return type(loop).__module__.split(".")[0] == "uvloop"


#: Whether :func:`start_server` drains accept queues on uvloop (``install(drain_queue=)``).
_drain_queue = True


#: Where the master hands this worker connections it took from a dead sibling's socket.
_handoff: socket.socket | None = None


def install(*, drain_queue: bool = True, handoff: socket.socket | None = None) -> bool:
    """Route ``asyncio.start_server`` through :func:`start_server`; True if newly installed."""
    global _drain_queue, _handoff
    _drain_queue = drain_queue
    if handoff is not None:
        _handoff = handoff
    if asyncio.start_server is start_server:
        return False
    asyncio.start_server = start_server  # type: ignore[assignment]
    log.debug("asyncio.start_server drains the accept queue on uvloop")
    return True


def uninstall() -> None:
    asyncio.start_server = _original_start_server


async def start_server(
    client_connected_cb: ClientConnected,
    host: Any = None,
    port: Any = None,
    *,
    sock: socket.socket | None = None,
    backlog: int = 100,
    ssl: Any = None,
    limit: int = STREAM_LIMIT,
    **kwargs: Any,
) -> asyncio.AbstractServer:
    """``asyncio.start_server``, accepting the whole queue per wake-up on uvloop."""
    loop = asyncio.get_running_loop()
    callback = STATE.track(client_connected_cb)
    server: asyncio.AbstractServer
    if sock is None or ssl is not None or kwargs or not _drain_queue or not is_uvloop(loop):
        options = {"sock": sock, "backlog": backlog, "ssl": ssl, "limit": limit, **kwargs}
        server = await _original_start_server(callback, host, port, **options)
    else:

        def protocol_factory() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(limit=limit, loop=loop)
            return asyncio.StreamReaderProtocol(reader, callback, loop=loop)

        server = DrainingServer(loop, sock, protocol_factory, backlog)
        _receive_handoffs(loop)
    STATE.servers.add(server)
    return server


def _receive_handoffs(loop: asyncio.AbstractEventLoop) -> None:
    """Serve the connections the master hands over (quart_app/serving/supervisor.py): it
    takes them from the socket of a slot whose worker died, where they would otherwise
    wait for the replacement. Each goes to this worker's server on the same address."""
    global _handoff
    channel, _handoff = _handoff, None
    if channel is None:
        return
    channel.setblocking(False)

    def receive() -> None:
        while True:
            try:
                _data, fds, _flags, _addr = socket.recv_fds(channel, 16, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                loop.remove_reader(channel.fileno())
                return
            if not fds and not _data:
                loop.remove_reader(channel.fileno())  # the master is gone
                return
            for fd in fds:
                _serve_handed(socket.socket(fileno=fd))

    loop.add_reader(channel.fileno(), receive)


def _serve_handed(conn: socket.socket) -> None:
    local = conn.getsockname()
    for server in list(STATE.servers):
        if isinstance(server, DrainingServer) and server.is_serving():
            listening = server.sockets[0]
            if listening.family == conn.family and listening.getsockname() == local:
                server.take(conn)
                return
    conn.close()  # no server of this address here (TLS, or draining): reset


class DrainingServer(asyncio.AbstractServer):
    """A listening socket whose accept queue is emptied on every readiness event."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        backlog: int,
    ) -> None:
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._protocol_factory = protocol_factory
        self._backlog = max(backlog, 1)
        self._connecting: set[asyncio.Task[None]] = set()
        self._retry: asyncio.TimerHandle | None = None
        self._closed = asyncio.Event()
        sock.setblocking(False)
        sock.listen(self._backlog)
        loop.add_reader(sock.fileno(), self.accept_pending)

    def accept_pending(self) -> None:
        """Accept every connection waiting in the kernel's queue (up to ``backlog``)."""
        sock = self._sock
        if sock is None:
            return
        for _ in range(self._backlog):
            try:
                conn, _address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # the queue is empty
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                # Out of descriptors or memory: stop accepting for a moment instead of
                # spinning on a socket that stays readable.
                log.warning("accept() failed (%s); pausing for %.1f s", exc, ACCEPT_RETRY_DELAY)
                self._loop.remove_reader(sock.fileno())
                self._retry = self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume)
                return
            self.take(conn)

    def take(self, conn: socket.socket) -> None:
        """Serve an accepted connection (from this socket, or handed over)."""
        conn.setblocking(False)
        task = self._loop.create_task(self._connect(conn))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    def _resume(self) -> None:
        self._retry = None
        if self._sock is not None:
            self._loop.add_reader(self._sock.fileno(), self.accept_pending)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, conn)
        except OSError as exc:  # the peer reset the connection before it was set up
            log.debug("accepted connection dropped: %s", exc)
            conn.close()

    # asyncio.AbstractServer: Hypercorn calls close() and wait_closed() at shutdown and
    # then waits for its own connection tasks; open connections are not touched here.
    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._retry is not None:
            self._retry.cancel()
        self._loop.remove_reader(sock.fileno())
        sock.close()
        self._closed.set()

    async def wait_closed(self) -> None:
        if self._connecting:
            await asyncio.gather(*self._connecting, return_exceptions=True)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._sock is not None

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._sock is None else (self._sock,)

    async def start_serving(self) -> None:
        """Serving starts in ``__init__``, as with ``asyncio.start_server``."""

    async def serve_forever(self) -> None:
        await self._closed.wait()
