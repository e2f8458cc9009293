"""A keep-alive HTTP/1.1 client that records what became of every request it sent.

For restarts and reloads, a throughput figure hides what matters: was any request left
without an answer? Each connection here sends one request at a time and files every
request under one outcome:

* ``ok`` / ``non_2xx``: a response came back;
* ``lost``: the request was written on a connection that had already carried a response
  (a keep-alive connection the server let the client reuse) and no response came;
* ``reset_new``: the request was written on a fresh connection and no response came;
* ``refused``: the connection could not be opened at all (nobody listening).

A response with ``Connection: close`` makes the client open a new connection for the
next request, as a well-behaved client does; so does a connection the server ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

REFUSED_PAUSE = 0.01


@dataclass
class Recording:
    """Counts of outcomes, and when the last answer came (monotonic seconds)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    answered_at: list[float] = field(default_factory=list)
    closes_announced: int = 0

    @property
    def answered(self) -> int:
        return self.outcomes["ok"] + self.outcomes["non_2xx"]

    @property
    def lost(self) -> int:
        return self.outcomes["lost"]

    def largest_gap(self, start: float, end: float) -> float:
        """The longest stretch within [start, end] with no answer (seconds)."""
        times = sorted(t for t in self.answered_at if start <= t <= end)
        marks = [start, *times, end]
        return max(b - a for a, b in itertools.pairwise(marks))


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    closes = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and "close" in value.lower():
            closes = True
    if length:
        await reader.readexactly(length)
    return status, closes


async def _connection(
    host: str, port: int, request: bytes, stop: asyncio.Event, recording: Recording
) -> None:
    outcomes = recording.outcomes
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        except (OSError, TimeoutError):
            outcomes["refused"] += 1
            await asyncio.sleep(REFUSED_PAUSE)
            continue
        used = False
        try:
            while not stop.is_set():
                writer.write(request)
                try:
                    status, closes = await asyncio.wait_for(_read_response(reader), 30)
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                    outcomes["lost" if used else "reset_new"] += 1
                    break
                used = True
                outcomes["ok" if status < 300 else "non_2xx"] += 1
                recording.answered_at.append(time.monotonic())
                if closes:
                    recording.closes_announced += 1
                    break
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def record(
    host: str,
    port: int,
    path: str,
    stop: asyncio.Event,
    *,
    connections: int = 30,
    headers: dict[str, str] | None = None,
    recording: Recording | None = None,
) -> Recording:
    """Keep ``connections`` keep-alive connections busy with GET ``path`` until ``stop``;
    outcomes go into ``recording`` (a new one by default) as they happen."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    recording = recording if recording is not None else Recording()
    await asyncio.gather(
        *(_connection(host, port, request, stop, recording) for _ in range(connections))
    )
    return recording
