"""A worker's graceful drain: stop accepting, answer what arrives, then let Hypercorn stop.

Hypercorn's own stop (``worker_serve`` once its shutdown trigger fires) sets
``context.terminated`` and then, at once, closes every idle keep-alive connection and
closes every HTTP/1.1 connection after its current response -- without a
``Connection: close`` header. A client that had just sent its next request on such a
connection gets no response at all (benchmarks/results/restarts.md counts them).

Under the supervisor a worker drains *before* it fires Hypercorn's trigger:

1. its listening servers are closed (after accepting what is already queued), so the
   kernel sends new connections to the other workers, or refuses them when every
   worker is stopping;
2. every HTTP/1.x response from now on carries ``Connection: close``
   (:class:`quart_app.serving.middleware.ServingHeaders` asks :data:`STATE`), so each
   client is told, and h11 closes the connection after that response;
3. open connections keep being served; idle ones still end by ``keep_alive_timeout`` as
   at any other time;
4. when no connection is left, or ``graceful_timeout`` has passed, Hypercorn's trigger
   fires and it finishes as usual (what is still open then is cut).

This is per-process state (one worker process, one drain), not per-app state: every app
the process serves drains with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]


class DrainState:
    """Listening servers and open connections of this process, and whether it drains."""

    def __init__(self) -> None:
        self.draining = False
        self.connections = 0
        self.servers: weakref.WeakSet[asyncio.AbstractServer] = weakref.WeakSet()
        self.deadline = 0.0

    def track(self, callback: ClientConnected) -> ClientConnected:
        """Wrap a ``start_server`` callback so that open connections are counted."""

        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                result = callback(reader, writer)
                if result is not None:
                    await result
            finally:
                self.connections -= 1

        return tracked

    def begin(self, grace: float) -> None:
        """Stop accepting and start announcing the close; at most ``grace`` seconds."""
        if self.draining:
            return
        self.draining = True
        self.deadline = time.monotonic() + grace
        for server in list(self.servers):
            accept_pending = getattr(server, "accept_pending", None)
            if accept_pending is not None:
                accept_pending()  # connections already queued here are served, not reset
            server.close()
        log.info("draining %d open connection(s) for up to %.0f s", self.connections, grace)

    def finished(self) -> bool:
        """True once no connection is left or the grace period is over."""
        return self.draining and (self.connections <= 0 or time.monotonic() >= self.deadline)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


#: This process's drain state.
STATE = DrainState()
