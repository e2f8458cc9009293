"""An answer sent before the request body has arrived must not lose the next request.

Hypercorn closes an HTTP/1.1 connection whose request body was not read to its end, so an
early answer (auth error, 400, 405, 413, 429) must either wait for the body (the
``DrainRequestBody`` middleware drains it) or say ``Connection: close``.

* unit tests of the middleware with fake ASGI apps (no server);
* the raw-socket reproduction against real Hypercorn subprocesses: headers with
  ``Content-Length`` but no body, 150 ms pause, then the body and ``GET /healthz`` on the
  same socket -- the second answer must arrive, or the first must have said
  ``Connection: close``;
* an httpx loop of rejected-then-normal request pairs on one keep-alive connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from quart_app.middleware.connection import DrainRequestBody
from tests.helpers.rawhttp import RawResponse, Reader

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_APP = "tests/helpers/early_app.py:app"
FIXTURE_MAX = 1024  # tests/helpers/early_app.py MAX_CONTENT_LENGTH
PAUSE = 0.15  # seconds between the request head and its body
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"


# --------------------------------------------------------------------------------------
# Unit tests: the middleware against fake ASGI apps
# --------------------------------------------------------------------------------------

Message = dict[str, Any]


def http_scope(headers: list[tuple[bytes, bytes]], http_version: str = "1.1") -> Message:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": http_version,
        "method": "PUT",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": None,
        "server": None,
        "state": {},
        "extensions": {},
    }


@dataclass
class FakeServer:
    """receive()/send() of a server whose client sends ``chunks`` with ``gap`` between them."""

    chunks: list[bytes]
    gap: float = 0.02
    disconnect_after: bool = False  # client leaves instead of sending the last chunk
    stall: bool = False  # client never sends anything
    sent: list[Message] = field(default_factory=list)
    delivered: list[Message] = field(default_factory=list)
    receive_calls: int = 0
    queue: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)

    async def feed(self) -> None:
        if self.stall:
            return
        for i, chunk in enumerate(self.chunks):
            await asyncio.sleep(self.gap)
            last = i == len(self.chunks) - 1
            if last and self.disconnect_after:
                await self.queue.put({"type": "http.disconnect"})
                return
            await self.queue.put({"type": "http.request", "body": chunk, "more_body": not last})

    async def receive(self) -> Message:
        self.receive_calls += 1
        message = await self.queue.get()
        self.delivered.append(message)
        return message

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            # like Hypercorn: once the response is over the app hears http.disconnect
            await self.queue.put({"type": "http.disconnect"})

    @property
    def start(self) -> Message:
        return next(m for m in self.sent if m["type"] == "http.response.start")

    @property
    def closes(self) -> bool:
        return (b"connection", b"close") in list(self.start["headers"])

    @property
    def body_left(self) -> bool:
        """True when the client had not sent its whole body when the response started."""
        delivered = sum(1 for m in self.delivered if m["type"] == "http.request")
        return delivered < len(self.chunks)


Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Message, Receive, Send], Awaitable[None]]


def early_app(status: int = 401, after: list[Message] | None = None) -> App:
    """Answers at once without reading; then records what a later receive() returns."""

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})
        if after is not None:
            after.append(await asyncio.wait_for(receive(), 1))

    return app


def quart_like_app(status: int = 401, got: list[Message] | None = None) -> App:
    """Reads the body in a background task while the handler answers early, as Quart does."""

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        async def reader() -> None:
            while True:
                message = await receive()
                if got is not None:
                    got.append(message)
                if message["type"] == "http.disconnect":
                    return

        async def handler() -> None:
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        reader_task = asyncio.ensure_future(reader())
        handler_task = asyncio.ensure_future(handler())
        done, pending = await asyncio.wait(
            [reader_task, handler_task], return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        for task in done:
            task.result()

    return app


async def run(
    app: App,
    server: FakeServer,
    headers: list[tuple[bytes, bytes]],
    *,
    max_body_size: int = 1024,
    drain_timeout: float = 1.0,
    http_version: str = "1.1",
) -> None:
    middleware = DrainRequestBody(app, max_body_size, drain_timeout=drain_timeout)  # type: ignore[arg-type]
    feeder = asyncio.ensure_future(server.feed())
    try:
        await asyncio.wait_for(
            middleware(http_scope(headers, http_version), server.receive, server.send),  # type: ignore[arg-type]
            5,
        )
    finally:
        feeder.cancel()


def content_length(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"t"), (b"content-length", str(n).encode())]


CHUNKED = [(b"host", b"t"), (b"transfer-encoding", b"chunked")]


async def test_unit_no_body_is_passed_through_untouched() -> None:
    seen: list[tuple[object, object]] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        seen.append((receive, send))

    server = FakeServer(chunks=[])
    for headers in ([(b"host", b"t")], content_length(0)):
        await run(app, server, headers)
    await run(app, server, content_length(10), http_version="2")
    assert all(r == server.receive and s == server.send for r, s in seen)  # no wrapping
    assert len(seen) == 3


async def test_unit_early_answer_drains_the_body_first() -> None:
    after: list[Message] = []
    server = FakeServer(chunks=[b"a" * 100, b"b" * 100, b"c" * 100])
    await run(early_app(401, after), server, content_length(300))
    assert not server.closes
    assert not server.body_left  # the whole body was read before the answer went out
    assert server.start["status"] == 401
    # the app's own later receive() is not left hanging: it gets the end of the body
    assert after == [{"type": "http.request", "body": b"", "more_body": False}]


async def test_unit_quart_like_reader_and_drain_share_the_body() -> None:
    got: list[Message] = []
    server = FakeServer(chunks=[b"x" * 10] * 5)
    await run(quart_like_app(401, got), server, content_length(50))
    assert not server.closes
    assert not server.body_left
    assert server.receive_calls == len(server.delivered)


async def test_unit_chunked_body_within_limit_is_drained() -> None:
    server = FakeServer(chunks=[b"x" * 100] * 5)
    await run(early_app(429), server, CHUNKED, max_body_size=1024)
    assert not server.closes
    assert not server.body_left


async def test_unit_chunked_body_past_the_limit_closes() -> None:
    server = FakeServer(chunks=[b"x" * 100] * 20)
    await run(early_app(401), server, CHUNKED, max_body_size=250)
    assert server.closes
    assert server.body_left


async def test_unit_declared_length_over_the_limit_closes_without_reading() -> None:
    server = FakeServer(chunks=[b"x" * 2000])
    await run(early_app(401), server, content_length(2000), max_body_size=1024)
    assert server.closes
    assert server.receive_calls == 0


async def test_unit_413_closes_without_reading() -> None:
    server = FakeServer(chunks=[b"x" * 10])
    await run(early_app(413), server, content_length(10))
    assert server.closes
    assert server.receive_calls == 0


async def test_unit_stalled_client_times_out_and_closes() -> None:
    after: list[Message] = []
    server = FakeServer(chunks=[b"x" * 10], stall=True)
    started = time.monotonic()
    await run(early_app(401, after), server, content_length(10), drain_timeout=0.1)
    assert time.monotonic() - started < 1
    assert server.closes
    assert after == [{"type": "http.disconnect"}]  # passed through from the server


async def test_unit_disconnect_during_drain_is_passed_on() -> None:
    after: list[Message] = []
    server = FakeServer(chunks=[b"x" * 10, b"y" * 10], disconnect_after=True)
    await run(early_app(401, after), server, content_length(20))
    assert server.closes
    assert after == [{"type": "http.disconnect"}]


async def test_unit_body_already_read_costs_nothing() -> None:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    server = FakeServer(chunks=[b"x" * 10, b"y" * 10])
    await run(app, server, content_length(20))
    assert not server.closes
    assert server.receive_calls == 2


async def test_unit_existing_connection_header_is_replaced() -> None:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        headers = [(b"Connection", b"keep-alive"), (b"x", b"1")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    server = FakeServer(chunks=[b"x"])
    await run(app, server, content_length(1))
    assert list(server.start["headers"]) == [(b"x", b"1"), (b"connection", b"close")]


# --------------------------------------------------------------------------------------
# Real Hypercorn in a subprocess, raw sockets
# --------------------------------------------------------------------------------------


def request_head(method: str, path: str, body_length: int, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", f"Content-Length: {body_length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin1")


def early_then_healthz(
    port: int,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    answer_first: bool = False,
) -> tuple[RawResponse | None, RawResponse | None]:
    """Head, pause, body + GET /healthz on one socket; the two responses (None: lost).

    ``answer_first``: read the first response before sending the body (it must come early).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(request_head(method, path, len(body), headers or {}))
        reader = Reader(sock)
        first = reader.response() if answer_first else None
        time.sleep(PAUSE)
        with contextlib.suppress(OSError):  # the server may have closed already
            sock.sendall(body + HEALTHZ)
        if not answer_first:
            first = reader.response()
        second = reader.response() if first is not None else None
        return first, second


def assert_not_lost(
    first: RawResponse | None, second: RawResponse | None, status: int, *, kept_alive: bool
) -> None:
    assert first is not None, "no first response"
    assert first.status == status, (first.status, first.body)
    if kept_alive:
        assert not first.closes
        assert second is not None, "the request after the early answer was lost"
        assert second.status == 200
    else:
        # the connection is not reused: the client has been told so
        assert first.closes, "connection dropped without Connection: close"


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"hypercorn exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
        ):
            sock.sendall(HEALTHZ)
            response = Reader(sock).response()
            if response is not None and response.status == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"hypercorn not ready on {port}:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def hypercorn(app: str, env: dict[str, str] | None = None) -> Iterator[int]:
    """Serve ``app`` with real Hypercorn on a free 127.0.0.1 port; kill it on exit."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "hypercorn.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hypercorn",
                    "--bind",
                    f"fd://{listener.fileno()}",
                    "--graceful-timeout",
                    "1",
                    app,
                ],
                cwd=ROOT,
                env={**os.environ, **(env or {})},
                pass_fds=[listener.fileno()],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        listener.close()  # the child has its own copy
        try:
            _wait_ready(proc, port, log)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture(scope="module")
def fixture_server(http1_parser_module: str) -> Iterator[int]:
    with hypercorn(FIXTURE_APP, {"HTTP1_PARSER": http1_parser_module}) as port:
        yield port


@pytest.mark.live
def test_fixture_bug_reproduces_without_the_middleware(http1_parser: str) -> None:
    """Guards the reproduction itself: without the fix, the request after a 401 is lost."""
    with hypercorn(FIXTURE_APP, {"EARLY_APP_DRAIN": "0", "HTTP1_PARSER": http1_parser}) as port:
        first, second = early_then_healthz(
            port, "PUT", "/me/password", b'{"a": 1}', answer_first=True
        )
    assert first is not None
    assert first.status == 401
    assert not first.closes
    assert second is None


@pytest.mark.live
def test_fixture_early_401_is_drained(fixture_server: int) -> None:
    first, second = early_then_healthz(fixture_server, "PUT", "/me/password", b'{"a": 1}')
    assert_not_lost(first, second, 401, kept_alive=True)


@pytest.mark.live
def test_fixture_405_is_drained(fixture_server: int) -> None:
    first, second = early_then_healthz(fixture_server, "POST", "/healthz", b'{"a": 1}')
    assert_not_lost(first, second, 405, kept_alive=True)


@pytest.mark.live
def test_fixture_404_is_drained(fixture_server: int) -> None:
    first, second = early_then_healthz(fixture_server, "POST", "/nowhere", b'{"a": 1}')
    assert_not_lost(first, second, 404, kept_alive=True)


@pytest.mark.live
def test_fixture_413_says_connection_close(fixture_server: int) -> None:
    first, _ = early_then_healthz(fixture_server, "POST", "/echo", b"x" * (FIXTURE_MAX + 1))
    assert_not_lost(first, None, 413, kept_alive=False)


def _httpx_pairs(
    port: int,
    pairs: int,
    rejected: Callable[[httpx.Client], httpx.Response],
    status: int,
) -> tuple[int, int]:
    """(lost requests, connections used) over ``pairs`` rejected-then-normal pairs."""
    lost = 0
    streams: list[object] = []  # kept alive, so that identities stay unique
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for _ in range(pairs):
            for call, expected in ((rejected, status), (lambda c: c.get("/healthz"), 200)):
                try:
                    response = call(client)
                except httpx.TransportError:
                    lost += 1
                    continue
                assert response.status_code == expected, response.text
                stream = response.extensions["network_stream"]
                if not any(stream is seen for seen in streams):
                    streams.append(stream)
    return lost, len(streams)


def _slow_body(body: bytes) -> Iterator[bytes]:
    """Head first, then the body a moment later, as across a real network."""
    yield body[:1]
    time.sleep(0.002)
    yield body[1:]


@pytest.mark.live
def test_fixture_httpx_rejected_then_normal_pairs(fixture_server: int) -> None:
    body = b'{"old_password": "x", "new_password": "y"}'
    lost, connections = _httpx_pairs(
        fixture_server, 300, lambda c: c.put("/me/password", content=body), 401
    )
    assert (lost, connections) == (0, 1)
    slow_lost, slow_connections = _httpx_pairs(
        fixture_server,
        50,
        lambda c: c.put(
            "/me/password",
            content=_slow_body(body),
            headers={"Content-Length": str(len(body))},
        ),
        401,
    )
    assert (slow_lost, slow_connections) == (0, 1)


# --------------------------------------------------------------------------------------
# The real app (quart_app.asgi:app) under Hypercorn
# --------------------------------------------------------------------------------------

REAL_APP = "quart_app.asgi:app"
REAL_MAX = 4096  # MAX_CONTENT_LENGTH for these servers
PASSWORD = "correct horse battery"
JSON = {"Content-Type": "application/json"}


def real_env(instance: Path, **extra: str) -> dict[str, str]:
    return {
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": f"sqlite+aiosqlite:///{instance / 'app.db'}",
        "JWT_SECRET_KEY": "k" * 64,
        "MAX_CONTENT_LENGTH": str(REAL_MAX),
        "RATELIMIT_AUTH_LIMIT": "100000",
        **extra,
    }


@dataclass
class RealServer:
    port: int
    fresh: str  # access token straight from /login
    stale: str  # non-fresh access token from /token/refresh


@pytest.fixture(scope="module")
def real_server(
    tmp_path_factory: pytest.TempPathFactory, http1_parser_module: str
) -> Iterator[RealServer]:
    instance = tmp_path_factory.mktemp("early-answer")
    with hypercorn(REAL_APP, real_env(instance, HTTP1_PARSER=http1_parser_module)) as port:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            user = {"username": "early_bird", "password": PASSWORD}
            assert client.post("/register", json=user).status_code == 201
            login = client.post("/login", json=user)
            assert login.status_code == 200, login.text
            refreshed = client.post(
                "/token/refresh",
                headers={"Authorization": f"Bearer {login.json()['refresh_token']}"},
            )
            assert refreshed.status_code == 200, refreshed.text
        yield RealServer(port, login.json()["access_token"], refreshed.json()["access_token"])


BODY = b'{"old_password": "correct horse battery", "new_password": "another good one"}'

# id: (method, path, body, headers(server), expected status)
REAL_CASES: dict[str, tuple[str, str, bytes, Callable[[RealServer], dict[str, str]], int]] = {
    "401-missing-header": ("PUT", "/me/password", BODY, lambda s: JSON, 401),
    "422-bad-token": (
        "PUT",
        "/me/password",
        BODY,
        lambda s: {**JSON, "Authorization": "Bearer not-a-jwt"},
        422,
    ),
    "401-fresh-required": (
        "PUT",
        "/me/password",
        BODY,
        lambda s: {**JSON, "Authorization": f"Bearer {s.stale}"},
        401,
    ),
    "400-bad-json": ("POST", "/register", b'{"username": "x", ', lambda s: JSON, 400),
    "415-not-json": (
        "POST",
        "/register",
        b"username=x",
        lambda s: {"Content-Type": "application/x-www-form-urlencoded"},
        415,
    ),
    "405-wrong-method": ("POST", "/healthz", BODY, lambda s: JSON, 405),
    "404-no-route": ("POST", "/no/such/route", BODY, lambda s: JSON, 404),
}


@pytest.mark.live
@pytest.mark.parametrize("case", list(REAL_CASES))
def test_early_answer_keeps_the_connection(real_server: RealServer, case: str) -> None:
    method, path, body, headers, status = REAL_CASES[case]
    first, second = early_then_healthz(real_server.port, method, path, body, headers(real_server))
    assert_not_lost(first, second, status, kept_alive=True)


@pytest.mark.live
def test_early_answer_413_says_connection_close(real_server: RealServer) -> None:
    body = b'{"username": "' + b"x" * REAL_MAX + b'"}'
    first, second = early_then_healthz(real_server.port, "POST", "/register", body, JSON)
    assert_not_lost(first, second, 413, kept_alive=False)


@pytest.mark.live
def test_early_answer_429_keeps_the_connection(tmp_path: Path, http1_parser: str) -> None:
    env = real_env(
        tmp_path, RATELIMIT_AUTH_LIMIT="1", RATELIMIT_AUTH_PERIOD="3600", HTTP1_PARSER=http1_parser
    )
    with hypercorn(REAL_APP, env) as port:
        body = b'{"username": "nobody", "password": "wrong password"}'
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            client.post("/login", content=body, headers=JSON)  # uses up the limit
        first, second = early_then_healthz(port, "POST", "/login", body, JSON)
    assert first is not None
    assert "retry-after" in first.headers
    assert_not_lost(first, second, 429, kept_alive=True)


@pytest.mark.live
def test_httpx_rejected_then_normal_pairs_lose_nothing(real_server: RealServer) -> None:
    """300 rejected-then-normal pairs (and 60 with the body sent late): none lost, 1 connection."""
    kinds = [
        (
            {**REAL_CASES[name][3](real_server), "Content-Length": str(len(BODY))},
            REAL_CASES[name][4],
        )
        for name in ("401-missing-header", "422-bad-token", "401-fresh-required")
    ]

    def rejecter(headers: dict[str, str], slow: bool) -> Callable[[httpx.Client], httpx.Response]:
        def rejected(client: httpx.Client) -> httpx.Response:
            content = _slow_body(BODY) if slow else BODY
            return client.put("/me/password", content=content, headers=headers)

        return rejected

    for slow, pairs in ((False, 300), (True, 60)):
        for headers, status in kinds:
            rejected = rejecter(headers, slow)
            lost, connections = _httpx_pairs(
                real_server.port, pairs // len(kinds), rejected, status
            )
            assert (lost, connections) == (0, 1), (slow, status)
