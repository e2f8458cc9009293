"""The requests and WebSockets this process is serving, as its drain needs to know them.

The outermost layer (:class:`~quart_app.middleware.connection.ServingHeaders`) registers
every request and WebSocket in :data:`REQUESTS` and answers for one the drain cut; the
database layer marks a request that committed a write (:func:`mark_committed`), which the
drain then lets finish. The drain itself (stop accepting, the deadline, the cut) is the
server's: quart_app/serving/drain.py. Per-process state, not per-app: every app the
process serves drains with it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class InFlight:
    """One HTTP request or WebSocket being served by this process."""

    __slots__ = ("committed", "cut", "send", "started", "task", "websocket")

    def __init__(self, send: Callable[[Any], Awaitable[None]], websocket: bool) -> None:
        self.task = asyncio.current_task()
        self.send = send
        self.websocket = websocket
        self.started = False  # the response (or the WebSocket handshake answer) began
        self.committed = False  # a database transaction of this request committed
        self.cut = False  # cancelled by the drain: the middleware answers for it

    def stop(self) -> None:
        self.cut = True
        if self.task is not None:
            self.task.cancel("drain")


#: The request the running task serves (set by the outermost middleware).
CURRENT: contextvars.ContextVar[InFlight | None] = contextvars.ContextVar(
    "quart_app_in_flight", default=None
)


def mark_committed() -> None:
    """Say that the current request has committed (or is committing) a write: a drain
    lets it finish instead of answering 503 for a write that happened.
    """
    flight = CURRENT.get()
    if flight is not None:
        flight.committed = True


class Registry(Protocol):
    """What the outermost layer reads and adds to: :class:`InFlightRequests`, or the
    server's drain state that holds them (tests drive one of their own)."""

    @property
    def draining(self) -> bool: ...

    @property
    def in_flight(self) -> set[InFlight]: ...


class InFlightRequests:
    """Whether this process drains, and what it is serving meanwhile."""

    def __init__(self) -> None:
        self.draining = False
        #: Requests and WebSockets being served now.
        self.in_flight: set[InFlight] = set()


#: This process's requests and WebSockets.
REQUESTS = InFlightRequests()
