"""Drive one Hypercorn HTTP/1.1 protocol object in-process: bytes in, app view and bytes out.

Both protocols (Hypercorn's ``H11Protocol`` and quart_app's ``HttpToolsProtocol``) get the
same bytes, in the same pieces, and an app that records what it is given and answers
``200 ok``; the outcome is what the app saw and the statuses written back.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.task_group import TaskGroup
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import ConnectionState

from quart_app.serving.http1 import HttpToolsProtocol

STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) ")


@dataclass
class Seen:
    """One request as the app saw it."""

    method: str
    raw_path: bytes
    query_string: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class Outcome:
    requests: list[Seen] = field(default_factory=list)
    written: bytes = b""
    closed: bool = False

    @property
    def statuses(self) -> list[int]:
        return [int(m) for m in STATUS.findall(self.written)]

    @property
    def refused(self) -> bool:
        """The protocol itself answered an error (the recording app only answers 200)."""
        return any(status >= 400 for status in self.statuses)


def recording_app(outcome: Outcome) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        outcome.requests.append(
            Seen(
                scope["method"],
                scope["raw_path"],
                scope["query_string"],
                scope["http_version"],
                list(scope["headers"]),
                body,
            )
        )
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def exchange(parser: str, pieces: list[bytes], *, settle: float = 0.02) -> Outcome:
    """Send ``pieces`` (one read each) to a fresh ``parser`` protocol; what came of it."""
    outcome = Outcome()
    config = Config()
    config.include_date_header = False
    context = WorkerContext(None)
    closed = asyncio.Event()

    async def send(event: Event) -> None:
        if isinstance(event, RawData):
            if not outcome.closed:
                outcome.written += event.data
        elif isinstance(event, Closed):
            outcome.closed = True
            closed.set()

    cls = H11Protocol if parser == "h11" else HttpToolsProtocol
    async with TaskGroup(asyncio.get_running_loop()) as task_group:
        protocol: Any = cls(
            ASGIWrapper(recording_app(outcome)),
            config,
            context,
            task_group,
            ConnectionState({}),
            False,
            ("127.0.0.1", 5000),
            ("127.0.0.1", 8000),
            send,
        )
        for piece in pieces:
            if outcome.closed:
                break
            await asyncio.wait_for(protocol.handle(RawData(piece)), 5)
            await asyncio.sleep(settle)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closed.wait(), settle * 5)
        await protocol.handle(Closed())
    return outcome
