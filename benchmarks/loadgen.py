"""A small keep-alive HTTP/1.1 load generator, the fallback when `wrk` is not installed.

Raw asyncio protocols (uvloop when present) over pre-built request bytes, one request in
flight per connection, spread over several processes so that the generator is not the
ceiling as soon as Locust is. Closed loop by default (like wrk); with ``--rate`` each
connection sends on a fixed schedule and latency is measured from the *intended* send time,
so a stalled server cannot hide its stall (no coordinated omission).

Usage: ``python -m benchmarks.loadgen --url http://127.0.0.1:8000/protected -c 64 -d 10
--spec requests.json``; prints one JSON object (see `LoadResult`) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import re
import sys
import time
from array import array
from dataclasses import asdict, dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:\s*chunked", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)

#: A request still in flight this long when the run ends counts as unanswered.
STALLED_S = 1.0


@dataclass
class RequestSpec:
    """One request template; connections cycle through a list of these."""

    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None


@dataclass
class LoadResult:
    """What a run measured; latencies in milliseconds."""

    tool: str
    connections: int
    duration_s: float
    requests: int
    ok: int
    non_2xx: int
    connect_errors: int
    read_errors: int
    timeouts: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    #: Requests still unanswered after `STALLED_S` when the run ended (their age so far is
    #: counted in the latencies, a lower bound, so a stalled server cannot look fast).
    unanswered: int = 0

    @property
    def errors(self) -> int:
        return (
            self.non_2xx + self.connect_errors + self.read_errors + self.timeouts + self.unanswered
        )


def build_request(host: str, port: int, spec: RequestSpec) -> bytes:
    """Serialise `spec` as HTTP/1.1 keep-alive request bytes."""
    body = spec.body.encode() if spec.body is not None else b""
    lines = [f"{spec.method} {spec.path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in spec.headers.items()]
    if body or spec.method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def percentile(sorted_values: list[float] | array[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return float(sorted_values[rank])


class _Stats:
    def __init__(self) -> None:
        self.latencies = array("d")
        self.statuses: dict[int, int] = {}
        self.connect_errors = 0
        self.read_errors = 0
        self.timeouts = 0
        self.unanswered = 0
        self.recording = False


class _Connection(asyncio.Protocol):
    """One keep-alive client connection with at most one request in flight."""

    def __init__(self, worker: _Worker, index: int) -> None:
        self.worker = worker
        self.index = index
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.in_flight = False
        self.timer: asyncio.TimerHandle | None = None
        self.next_due = 0.0
        self.counter = index

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self) -> None:
        worker = self.worker
        if worker.stopping or self.transport is None or self.transport.is_closing():
            return
        if worker.interval is not None:
            now = time.perf_counter()
            if self.next_due == 0.0:
                self.next_due = now
            if self.next_due > now:
                worker.loop.call_later(self.next_due - now, self.send)
                return
            self.sent_at = self.next_due  # latency from the intended send time
            self.next_due += worker.interval
        else:
            self.sent_at = time.perf_counter()
        requests = worker.requests
        self.counter += 1
        self.buffer.clear()
        self.in_flight = True
        self.transport.write(requests[self.counter % len(requests)])
        self.timer = worker.loop.call_later(worker.timeout, self._on_timeout)

    def _on_timeout(self) -> None:
        if self.in_flight and not self.worker.stopping:
            if self.worker.stats.recording:
                self.worker.stats.timeouts += 1
            self.in_flight = False
            self._reconnect()

    def data_received(self, data: bytes) -> None:
        if not self.in_flight:
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[: end + 2])
        match = _CONTENT_LENGTH.search(head)
        if match is not None:
            if len(self.buffer) < end + 4 + int(match.group(1)):
                return
        elif _CHUNKED.search(head) and not self.buffer.endswith(b"0\r\n\r\n"):
            return
        self._complete(int(head[9:12]), _CLOSE.search(head) is not None)

    def _complete(self, status: int, close: bool) -> None:
        now = time.perf_counter()
        self.in_flight = False
        if self.timer is not None:
            self.timer.cancel()
        stats = self.worker.stats
        if stats.recording:
            stats.latencies.append((now - self.sent_at) * 1000.0)
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
        if close:
            self._reconnect()
        else:
            self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.in_flight and not self.worker.stopping:
            self.in_flight = False
            if self.worker.stats.recording:
                self.worker.stats.read_errors += 1
            self._reconnect()

    def _reconnect(self) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.abort()
        if not self.worker.stopping:
            self.worker.loop.create_task(self.worker.connect(self.index, self))


class _Worker:
    def __init__(
        self,
        host: str,
        port: int,
        requests: list[bytes],
        timeout: float,
        interval: float | None,
    ) -> None:
        self.host = host
        self.port = port
        self.requests = requests
        self.timeout = timeout
        self.interval = interval
        self.stats = _Stats()
        self.stopping = False
        self.loop = asyncio.get_running_loop()

    async def connect(self, index: int, conn: _Connection | None = None) -> _Connection | None:
        protocol = conn or _Connection(self, index)
        while not self.stopping:
            try:
                await asyncio.wait_for(
                    self.loop.create_connection(lambda: protocol, self.host, self.port),
                    self.timeout,
                )
            except (OSError, TimeoutError):
                if self.stats.recording:
                    self.stats.connect_errors += 1
                await asyncio.sleep(0.05)
                continue
            if self.stats.recording:
                protocol.send()
            return protocol
        return None

    async def run(self, connections: int, duration: float) -> None:
        conns = await asyncio.gather(*(self.connect(i) for i in range(connections)))
        self.stats.recording = True
        for conn in conns:
            if conn is not None:
                conn.send()
        await asyncio.sleep(duration)
        now = time.perf_counter()
        for conn in conns:
            if conn is not None and conn.in_flight and now - conn.sent_at >= STALLED_S:
                self.stats.latencies.append((now - conn.sent_at) * 1000.0)
                self.stats.unanswered += 1
        self.stopping = True
        self.stats.recording = False
        for conn in conns:
            if conn is not None and conn.transport is not None:
                conn.transport.abort()


def _worker_main(
    url: str,
    specs: list[dict[str, Any]],
    connections: int,
    duration: float,
    timeout: float,
    rate: float | None,
    queue: mp.Queue[tuple[bytes, dict[int, int], int, int, int, int]],
) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [build_request(host, port, RequestSpec(**spec)) for spec in specs]
    interval = connections / rate if rate else None

    async def main() -> _Stats:
        worker = _Worker(host, port, requests, timeout, interval)
        await worker.run(connections, duration)
        return worker.stats

    stats = asyncio.run(main())
    queue.put(
        (
            stats.latencies.tobytes(),
            stats.statuses,
            stats.connect_errors,
            stats.read_errors,
            stats.timeouts,
            stats.unanswered,
        )
    )


def run_load(
    url: str,
    specs: list[RequestSpec],
    connections: int,
    duration: float,
    *,
    processes: int = 2,
    timeout: float = 10.0,
    rate: float | None = None,
) -> LoadResult:
    """Drive `url` with `connections` keep-alive connections for `duration` seconds."""
    processes = max(1, min(processes, connections))
    ctx = mp.get_context("spawn") if sys.platform == "win32" else mp.get_context("fork")
    queue: mp.Queue[tuple[bytes, dict[int, int], int, int, int, int]] = ctx.Queue()
    raw_specs = [asdict(spec) for spec in specs]
    shares = [connections // processes + (i < connections % processes) for i in range(processes)]
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(
                url,
                raw_specs,
                share,
                duration,
                timeout,
                rate * share / connections if rate else None,
                queue,
            ),
            daemon=True,
        )
        for share in shares
    ]
    for proc in procs:
        proc.start()
    latencies = array("d")
    statuses: dict[int, int] = {}
    connect_errors = read_errors = timeouts = unanswered = 0
    try:
        for _ in procs:
            lat, st, ce, re_, to, un = queue.get(timeout=duration + timeout + 60)
            latencies.frombytes(lat)
            for code, count in st.items():
                statuses[code] = statuses.get(code, 0) + count
            connect_errors += ce
            read_errors += re_
            timeouts += to
            unanswered += un
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    ordered = sorted(latencies)
    total = len(ordered) - unanswered  # answered requests
    ok = sum(count for code, count in statuses.items() if 200 <= code < 300)
    return LoadResult(
        tool="python-loadgen",
        connections=connections,
        duration_s=duration,
        requests=total,
        ok=ok,
        non_2xx=total - ok,
        connect_errors=connect_errors,
        read_errors=read_errors,
        timeouts=timeouts,
        rps=total / duration if duration else 0.0,
        p50_ms=percentile(ordered, 50),
        p90_ms=percentile(ordered, 90),
        p99_ms=percentile(ordered, 99),
        max_ms=ordered[-1] if ordered else 0.0,
        statuses={str(code): count for code, count in sorted(statuses.items())},
        unanswered=unanswered,
    )


def _raise_nofile() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="base URL and default path")
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("-p", "--processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=None, help="total req/s (open loop)")
    parser.add_argument("--spec", help="JSON file: list of RequestSpec objects")
    args = parser.parse_args(argv)
    _raise_nofile()
    if args.spec:
        with open(args.spec, encoding="utf-8") as fh:
            specs = [RequestSpec(**item) for item in json.load(fh)]
    else:
        specs = [RequestSpec(path=urlsplit(args.url).path or "/")]
    result = run_load(
        args.url,
        specs,
        args.connections,
        args.duration,
        processes=args.processes,
        timeout=args.timeout,
        rate=args.rate,
    )
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
