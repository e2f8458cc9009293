"""quart_app.serving.acceptor: a burst of connections is accepted in one wake-up on uvloop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import ExitStack
from typing import Any

import pytest

from quart_app.serving import acceptor

uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed on this platform")

BURST = 60


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(BURST * 2)
    return sock


def run_on_uvloop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


StartServer = Callable[..., Awaitable[asyncio.AbstractServer]]


async def accepted_after(start_server: StartServer, iterations: int) -> int:
    """Open BURST connections at once, run the loop `iterations` times; how many were
    handed to the server's callback."""
    connected = 0

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connected
        connected += 1
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    sock = listening_socket()
    server = await start_server(on_client, sock=sock, backlog=BURST * 2)
    with ExitStack() as clients:
        for _ in range(BURST):
            # The kernel completes the handshake; the connection waits in the accept queue.
            client = clients.enter_context(socket.create_connection(sock.getsockname()))
            client.sendall(b"ping\n")
        for _ in range(iterations):
            await asyncio.sleep(0)
        count = connected
    server.close()
    await server.wait_closed()
    return count


def test_uvloop_alone_accepts_one_connection_per_iteration() -> None:
    """The reason for the module (libuv/libuv#3696): if this starts failing, uvloop accepts
    whole queues again and quart_app.serving.acceptor can go."""
    result: list[int] = []

    async def main() -> None:
        result.append(await accepted_after(acceptor._original_start_server, iterations=20))

    run_on_uvloop(main)
    assert result[0] < BURST / 2


def test_draining_server_accepts_the_whole_queue_in_a_few_iterations() -> None:
    result: list[int] = []

    async def main() -> None:
        result.append(await accepted_after(acceptor.start_server, iterations=20))

    run_on_uvloop(main)
    assert result[0] == BURST


def test_every_connection_of_a_burst_is_served() -> None:
    async def main() -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        sock = listening_socket()
        port = sock.getsockname()[1]
        server = await acceptor.start_server(echo, sock=sock, backlog=BURST * 2)
        assert isinstance(server, acceptor.DrainingServer)
        assert server.is_serving() and server.sockets == (sock,)

        async def client(index: int) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"%d\n" % index)
            line = await reader.readline()
            writer.close()
            return line

        lines = await asyncio.gather(*(client(i) for i in range(BURST)))
        assert lines == [b"%d\n" % i for i in range(BURST)]
        server.close()
        await server.wait_closed()
        # mypy keeps server.sockets narrowed to (sock,) from the assertion above
        assert not server.is_serving() and server.sockets == ()  # type: ignore[comparison-overlap]
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    run_on_uvloop(main)


async def test_other_loops_and_tls_use_asyncio_unchanged() -> None:
    """On the default asyncio loop (this test's), start_server is asyncio's own."""
    sock = listening_socket()
    server = await acceptor.start_server(lambda r, w: None, sock=sock)
    try:
        assert not isinstance(server, acceptor.DrainingServer)
        assert isinstance(server, asyncio.Server)
    finally:
        server.close()
        await server.wait_closed()


def test_install_routes_asyncio_start_server_once() -> None:
    original = asyncio.start_server
    try:
        acceptor.uninstall()
        assert acceptor.install() is True
        assert asyncio.start_server is acceptor.start_server
        assert acceptor.install() is False
    finally:
        asyncio.start_server = original
