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
   (:class:`quart_app.middleware.connection.ServingHeaders` asks :data:`STATE`'s requests), so each
   client is told, and h11 closes the connection after that response;
3. open connections keep being served; idle ones still end by ``keep_alive_timeout`` as
   at any other time;
4. WebSockets are told at once: each gets a close frame with code 1001 (going away) and
   its handler is cancelled, so a drain never waits for a socket that would stay open;
5. when no connection is left, Hypercorn's trigger fires and it finishes as usual;
6. at the ``graceful_timeout`` deadline, every request still running is *cut*: its
   handler is cancelled (a transaction it had open rolls back) and it is answered 503
   with ``Retry-After`` -- never Hypercorn's empty 500 for a cancelled app. A request
   that has already committed a write (``mark_committed`` in
   quart_app/middleware/inflight.py, called by the database layer) or started its
   response is not cut: it finishes, for up to ``CUT_GRACE`` more seconds, so a write
   that happened is always answered as such. Then the trigger fires.

This is per-process state (one worker process, one drain), not per-app state: every app
the process serves drains with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable

from ..middleware.inflight import REQUESTS, InFlight, InFlightRequests

log = logging.getLogger(__name__)

#: Seconds past the deadline that requests which committed a write, or started their
#: response, get to finish.
CUT_GRACE = 5.0

ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]


class DrainState:
    """Listening servers and open connections of this process, and whether it drains."""

    def __init__(self, requests: InFlightRequests | None = None) -> None:
        #: What the app's outermost layer registers (quart_app/middleware/inflight.py).
        self.requests = InFlightRequests() if requests is None else requests
        self.connections = 0
        self.servers: weakref.WeakSet[asyncio.AbstractServer] = weakref.WeakSet()
        self.deadline = 0.0
        self.cut_done = False

    @property
    def draining(self) -> bool:
        return self.requests.draining

    @property
    def in_flight(self) -> set[InFlight]:
        """Requests and WebSockets being served now."""
        return self.requests.in_flight

    def track(self, callback: ClientConnected) -> ClientConnected:
        """Wrap a ``start_server`` callback so that open connections are counted."""

        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                result = callback(reader, writer)
                if result is not None:
                    await result
            except asyncio.CancelledError:
                # Only a worker's stop cancels a connection's task (asyncio.run cancels
                # what is left). Python 3.11's stream callback calls task.exception() on
                # it and logs the CancelledError as an error with a traceback: end the
                # task normally instead, closing the connection.
                writer.close()
            finally:
                self.connections -= 1

        return tracked

    def begin(self, grace: float) -> None:
        """Stop accepting and start announcing the close; at most ``grace`` seconds."""
        if self.draining:
            return
        self.requests.draining = True
        self.deadline = time.monotonic() + grace
        for server in list(self.servers):
            accept_pending = getattr(server, "accept_pending", None)
            if accept_pending is not None:
                accept_pending()  # connections already queued here are served, not reset
            server.close()
        sockets = [flight for flight in self.in_flight if flight.websocket]
        for flight in sockets:
            flight.stop()  # the middleware sends the close frame (1001)
        log.info(
            "draining %d open connection(s) for up to %.0f s (%d WebSocket(s) closed)",
            self.connections,
            grace,
            len(sockets),
        )

    def finished(self) -> bool:
        """True once no connection is left, or the deadline has passed and every request
        then running has been answered (cut, or let finish within ``CUT_GRACE``).
        """
        if not self.draining:
            return False
        if self.connections <= 0 and not self.in_flight:
            return True
        now = time.monotonic()
        if now < self.deadline:
            return False
        if not self.cut_done:
            self.cut_done = True
            cut = [f for f in self.in_flight if not (f.committed or f.started or f.cut)]
            for flight in cut:
                flight.stop()
            if self.in_flight:
                log.warning(
                    "drain deadline: %d request(s) answered 503, %d let finish",
                    len(cut),
                    len(self.in_flight) - len(cut),
                )
            return not self.in_flight
        return not self.in_flight or now >= self.deadline + CUT_GRACE

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


#: This process's drain state, over the requests the app registers.
STATE = DrainState(REQUESTS)
