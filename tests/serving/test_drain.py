"""The drain's connection tracking, on a real asyncio server on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

from quart_app.serving.drain import DrainState


async def test_a_connection_cut_at_stop_logs_no_cancelled_error_traceback() -> None:
    """asyncio.run cancels every connection task left at a worker's stop; Python 3.11's
    stream callback then logged each CancelledError as an unhandled exception."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    state = DrainState()
    serving = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        serving.set()
        await reader.read()  # waits for a request that never comes

    server = await asyncio.start_server(state.track(serve), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.wait_for(serving.wait(), 5)
        assert state.connections == 1
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()  # what asyncio.run does at the end of a worker
        for _ in range(10):
            await asyncio.sleep(0.01)
        assert state.connections == 0
        assert reported == [], reported
        writer.close()
    finally:
        server.close()
        loop.set_exception_handler(None)
