"""HTTP/1.1 for Hypercorn on httptools (llhttp, the C parser of Node.js), behind a small seam.

Hypercorn (0.17/0.18) serves HTTP/1.1 with h11, a pure-Python parser, and spends most of a
keep-alive request's CPU around the app: parsing, three writes per response (head, body,
end) through its send lock, and a fresh idle-timeout task (plus the task ``wait_for`` makes)
per request. This module swaps two pieces, nothing else:

* :class:`HttpToolsProtocol` takes the place of ``hypercorn.protocol.h11.H11Protocol``
  where Hypercorn picks its protocol (``ProtocolWrapper.__init__``, for every connection
  not negotiated as ``h2`` by ALPN). It feeds the bytes to httptools, hands Hypercorn's own
  ``HTTPStream``/``WSStream`` the same ``Request``/``Body``/``EndBody``/``Data`` events
  h11 would, and writes each response head with its body in one write. Hypercorn's
  streams, the app, the access log, the drain and HTTP/2 are untouched.
* :class:`IdleTimer` replaces the idle task of ``hypercorn.asyncio.tcp_server.TCPServer``:
  one timer handle per connection, moved on each request, and one task per worker that
  closes the idle connections when the worker stops (as the per-request task did).

What the parser refuses gets the status h11 would give (400; 431 for a head over
``h11_max_incomplete_size``; 501 for a transfer coding other than ``chunked``) and the
connection is closed. llhttp is stricter than h11 in a few places, each refused with 400:
a repeated ``Content-Length`` (h11 merges equal copies), a method llhttp does not know
(h11 passes any token to the app), a request target with characters llhttp rejects.

``HTTP1_PARSER=h11`` keeps Hypercorn's own protocol. :data:`PINNED` lists the Hypercorn
versions whose internals this was written against; :func:`check_hypercorn` (run by
:func:`install` and by the tests) refuses any other, naming what to re-read.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from time import time
from typing import Any, Final
from wsgiref.handlers import format_date_time

import httptools
import hypercorn
from hypercorn.asyncio import tcp_server
from hypercorn.asyncio.worker_context import AsyncioSingleTask
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.events import (
    Body,
    Data,
    EndBody,
    EndData,
    InformationalResponse,
    Request,
    Response,
    StreamClosed,
)
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H2CProtocolRequiredError, H2ProtocolAssumedError
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.protocol.ws_stream import WSStream
from hypercorn.typing import AppWrapper, ConnectionState, TaskGroup, WorkerContext

from . import guards

__all__ = [
    "PARSERS",
    "PINNED",
    "HttpToolsProtocol",
    "IdleTimer",
    "check_hypercorn",
    "install",
    "installed",
    "uninstall",
]

log = logging.getLogger(__name__)

#: HTTP1_PARSER values.
PARSERS: Final = ("httptools", "h11")
#: Hypercorn versions whose ``protocol/__init__.py``, ``protocol/h11.py`` and
#: ``asyncio/tcp_server.py`` this module was written against (and tested on).
PINNED: Final = ("0.17.3", "0.18.0")
STREAM_ID: Final = 1
_CLOSE_HEADER: Final = (b"Connection", b"close")

_original_wrapper_init = ProtocolWrapper.__init__
_original_server_init = tcp_server.TCPServer.__init__
_installed: str | None = None


class UnpinnedHypercornError(RuntimeError):
    """The installed Hypercorn is not one this seam was written for."""


def check_hypercorn(version: str | None = None) -> None:
    """Refuse a Hypercorn version the seam was not written against (or whose shape moved)."""
    found = version or getattr(hypercorn, "__version__", None) or _dist_version()
    if found not in PINNED:
        raise UnpinnedHypercornError(
            f"HTTP1_PARSER=httptools: Hypercorn {found} is not one of {', '.join(PINNED)}; re-read"
            " hypercorn/protocol/__init__.py, protocol/h11.py and asyncio/tcp_server.py against"
            " quart_app/serving/http1.py (docs/serving-http1.md), or set HTTP1_PARSER=h11"
        )
    wrapper_args = ProtocolWrapper.__init__.__code__.co_varnames[:11]
    expected = (
        "self",
        "app",
        "config",
        "context",
        "task_group",
        "state",
        "ssl",
        "client",
        "server",
        "send",
        "alpn_protocol",
    )
    if _original_wrapper_init.__code__.co_varnames[:11] != expected and wrapper_args != expected:
        raise UnpinnedHypercornError("hypercorn ProtocolWrapper.__init__ changed its arguments")
    for name in ("_idle_timeout", "_initiate_server_close", "protocol_send"):
        if not hasattr(tcp_server.TCPServer, name):
            raise UnpinnedHypercornError(f"hypercorn TCPServer.{name} is gone")


def _dist_version() -> str:
    from importlib.metadata import version

    return version("hypercorn")


# --- the seam ----------------------------------------------------------------------------


def _wrapper_init(self: ProtocolWrapper, *args: Any, **kwargs: Any) -> None:
    _original_wrapper_init(self, *args, **kwargs)
    alpn = kwargs.get("alpn_protocol", args[9] if len(args) > 9 else None)
    if alpn != "h2":
        self.protocol = HttpToolsProtocol(  # type: ignore[assignment]
            self.app,
            self.config,
            self.context,
            self.task_group,
            self.state,
            self.ssl,
            self.client,
            self.server,
            self.send,
        )


def _server_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_server_init(self, *args, **kwargs)
    self.idle_task = IdleTimer(self)


def install(parser: str = "httptools") -> bool:
    """Serve HTTP/1.1 with ``parser`` in this process; True if that changed anything."""
    global _installed
    if parser not in PARSERS:
        raise ValueError(f"HTTP1_PARSER must be one of {', '.join(PARSERS)}, not {parser!r}")
    if parser == _installed or (parser == "h11" and _installed is None):
        return False
    if parser == "h11":
        uninstall()
        return True
    check_hypercorn()
    ProtocolWrapper.__init__ = _wrapper_init  # type: ignore[method-assign]
    tcp_server.TCPServer.__init__ = _server_init  # type: ignore[method-assign]
    _installed = parser
    return True


def uninstall() -> None:
    global _installed
    ProtocolWrapper.__init__ = _original_wrapper_init  # type: ignore[method-assign]
    tcp_server.TCPServer.__init__ = _original_server_init  # type: ignore[method-assign]
    _installed = None


def installed() -> str:
    """The HTTP/1.1 parser new connections get in this process."""
    return _installed or "h11"


# --- one idle timer per connection --------------------------------------------------------


class IdleTimer:
    """``TCPServer.idle_task`` as one timer per connection: no task, no handle per request.

    Hypercorn restarts its idle task on every request (``Updated(idle=True)``) and stops it
    when one begins; each restart cancels a task and creates two (``wait_for``). Here a
    restart only moves a deadline: one ``loop.call_later`` handle per connection fires at
    the earliest deadline and re-arms itself for a later one, or closes the connection if
    it is still idle past it. When the worker stops (``context.terminated``) every idle
    connection closes at once, as before.

    HTTP/2 connections (over TLS, or after an h2c upgrade) keep Hypercorn's own idle task:
    their streams report idle and busy many times per read, and a rapid-reset burst under
    this timer left the connection unanswered instead of ending it with GOAWAY.
    """

    __slots__ = ("__weakref__", "deadline", "h2_task", "handle", "idle", "server")

    _all: weakref.WeakSet[IdleTimer] = weakref.WeakSet()
    _watching: weakref.WeakSet[Any] = weakref.WeakSet()  # contexts with a watcher task

    def __init__(self, server: Any) -> None:
        self.server = server
        self.handle: asyncio.TimerHandle | None = None
        self.idle = False
        self.deadline = 0.0
        self.h2_task: AsyncioSingleTask | None = None
        IdleTimer._all.add(self)

    def _http2(self) -> bool:
        wrapper = getattr(self.server, "protocol", None)
        return isinstance(getattr(wrapper, "protocol", None), H2Protocol)

    async def restart(self, task_group: Any, action: Callable[[], Awaitable[None]]) -> None:
        if self.h2_task is not None or self._http2():
            self.idle = False  # this timer is done with; Hypercorn's task takes over
            if self.h2_task is None:
                self.h2_task = AsyncioSingleTask()
            await self.h2_task.restart(task_group, action)
            return
        server = self.server
        context = server.context
        if context.terminated.is_set():
            self.idle = False
            self.expire()
            return
        if context not in IdleTimer._watching:
            # A task of the worker, not of this connection's task group: the connection
            # would otherwise stay open (and a drain wait for it) until the worker stops.
            IdleTimer._watching.add(context)
            watcher = server.loop.create_task(_close_idle_on_stop(context))
            _watchers.add(watcher)
            watcher.add_done_callback(_watchers.discard)
        timeout = server.config.keep_alive_timeout
        self.idle = True
        self.deadline = server.loop.time() + timeout
        if self.handle is None:
            self.handle = server.loop.call_later(timeout, self.fire)

    async def stop(self) -> None:
        self.idle = False
        if self.h2_task is not None:
            await self.h2_task.stop()

    def fire(self) -> None:
        self.handle = None
        if not self.idle:
            return  # busy: the next restart arms it again
        left = self.deadline - self.server.loop.time()
        if left > 0:
            self.handle = self.server.loop.call_later(left, self.fire)
        else:
            self.expire()

    def expire(self) -> None:
        self.idle = False
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        server = self.server
        server.loop.create_task(_close(server))


_watchers: set[asyncio.Task[None]] = set()  # strong references to the running watchers


async def _close(server: Any) -> None:
    await asyncio.shield(server._initiate_server_close())


async def _close_idle_on_stop(context: Any) -> None:
    await context.terminated.wait()
    for timer in list(IdleTimer._all):
        if timer.idle and timer.server.context is context:
            timer.expire()


# --- the protocol -------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _H2CRequest:
    """What ``H2CProtocolRequiredError`` reads of an h11 request."""

    __slots__ = ("headers", "method", "target")

    def __init__(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.method = method
        self.target = target
        self.headers = headers


_BUSY: Final = Updated(idle=False)
_IDLE: Final = Updated(idle=True)
_CLOSED: Final = Closed()
_REQUEST: Final = 0
_BODY: Final = 1
_END: Final = 2

_date_cache: list[Any] = [0, b""]


def _date() -> bytes:
    """Hypercorn's Date header value, formatted once a second instead of per response."""
    now = int(time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = format_date_time(now).encode("ascii")
    value: bytes = _date_cache[1]
    return value


class HttpToolsProtocol:
    """``H11Protocol``'s interface and behaviour, parsing with httptools."""

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        task_group: TaskGroup,
        connection_state: ConnectionState,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        send: Callable[[Event], Awaitable[None]],
    ) -> None:
        self.app = app
        self.config = config
        self.context = context
        self.task_group = task_group
        self.connection_state = connection_state
        self.ssl = ssl
        self.client = client
        self.server = server
        self.send = send
        self.can_read = context.event_class()
        self.keep_alive_requests = 0
        self.stream: HTTPStream | WSStream | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.limit = config.h11_max_incomplete_size
        self.events: deque[tuple[int, Any]] = deque()
        self.closed = False
        self.refused = False
        self.websocket = False
        self.rest = b""  # bytes after an upgrade request, for the protocol after it
        self.refusal = 0  # the status a parse error is answered with
        self.headers_done = False  # (parse time) the request being parsed has its head
        self.message_done = False  # (parse time) ... and its whole body
        # The request being parsed.
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        # The request being answered.
        self.method = b"GET"
        self.version = "1.1"
        self.keep_alive = True
        self.client_done = False
        self.response_done = False
        self.response_started = False
        self.chunked = False
        self.head: bytes | None = None  # a response head not written yet
        # config.response_headers("h11") but the Date (fixed for the connection).
        self.common = [h for h in config.response_headers("h11") if h[0] != b"date"]
        self.date = config.include_date_header

    def _response_headers(self) -> list[tuple[bytes, bytes]]:
        if self.date:
            return [(b"date", _date()), *self.common]
        return list(self.common)

    # httptools callbacks (synchronous, during feed_data) ---------------------------------

    def on_message_begin(self) -> None:
        self.headers_done = False
        self.message_done = False
        self.url = b""
        self.headers = []
        self.head_size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if self.head_size > self.limit:
            raise _Refused(431)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.limit:
            raise _Refused(431)
        if self.headers_done:
            return  # a chunked body's trailer fields: dropped, as Hypercorn's h11 path does
        self.headers.append((name, value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        parser = self.parser
        version = parser.get_http_version()
        method = parser.get_method()
        hosts = 0
        te = 0
        headers = self.headers
        for index, (name, value) in enumerate(headers):
            lowered = name.lower()
            if lowered == b"host":
                hosts += 1
            elif lowered == b"transfer-encoding":
                te += 1
                if te > 1 or value.lower() != b"chunked":
                    raise _Refused(501)
                headers[index] = (name, b"chunked")  # as h11 hands it on: lower case
        if hosts > 1 or (hosts == 0 and version == "1.1"):
            raise _Refused(400)
        self.headers_done = True
        self.events.append((_REQUEST, (method, self.url, self.headers, version)))

    def on_body(self, body: bytes) -> None:
        self.events.append((_BODY, body))

    def on_message_complete(self) -> None:
        self.message_done = True
        self.events.append((_END, None))

    # Hypercorn's protocol interface ------------------------------------------------------

    async def initiate(self) -> None:
        pass

    async def handle(self, event: Event) -> None:
        if isinstance(event, RawData):
            if self.websocket:
                if self.stream is not None:
                    await self.stream.handle(Data(stream_id=STREAM_ID, data=event.data))
                return
            await self._feed(event.data)
        elif isinstance(event, Closed):
            self.closed = True
            await self.can_read.set()
            if self.stream is not None:
                await self._close_stream()

    def _parse(self, data: bytes) -> int:
        """Feed ``data`` to the parser (queueing events); the status to refuse with, or 0."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self.rest = data[offset:]
        except httptools.HttpParserError as error:
            cause = error.__context__
            if isinstance(cause, _Refused):
                return cause.status
            if self._is_preface(data):
                self.events.append((_REQUEST, (b"PRI", b"*", [], "2.0")))
                self.events.append((_END, None))
                self.rest = data[data.index(b"\r\n\r\n") + 4 :]
                return 0
            return 400
        except _Refused as refused:
            return refused.status
        return 0

    async def _feed(self, data: bytes) -> None:
        self.refusal = self._parse(data)
        # A refused body is answered now; anything refused after a complete request (a
        # head, bytes between requests) waits for the answer in flight first: h11 reads
        # no further until then.
        in_head = not self.headers_done or self.message_done
        await self._process()
        status, self.refusal = self.refusal, 0
        if not status or self.closed:
            return
        if in_head:
            while self.stream is not None and not self.closed:
                await self.can_read.clear()
                await self.can_read.wait()
            if self.closed:
                return
        await self._refuse(status)

    def _is_preface(self, data: bytes) -> bool:
        return data.startswith(b"PRI * HTTP/2.0\r\n\r\n") and self.parser.get_method() == b"PRI"

    async def _process(self) -> None:
        events = self.events
        while events and not self.closed:
            kind, value = events.popleft()
            if kind == _REQUEST:
                while self.stream is not None and not self.closed:
                    await self.can_read.clear()
                    await self.can_read.wait()
                if self.closed:
                    return
                await self._start(*value)
            elif kind == _BODY:
                if self.stream is not None:
                    await self.stream.handle(Body(stream_id=STREAM_ID, data=value))
            else:
                self.client_done = True
                if self.stream is not None and not self.websocket:
                    await self.stream.handle(EndBody(stream_id=STREAM_ID))
                if self.rest and not self.websocket:
                    # An upgrade nobody takes (not WebSocket, h2c off): back to HTTP/1.1,
                    # the bytes after it read by a new parser.
                    rest, self.rest = self.rest, b""
                    self.parser = httptools.HttpRequestParser(self)
                    self.refusal = self.refusal or self._parse(rest)

    async def _start(
        self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], version: str
    ) -> None:
        self.method = method
        self.version = version
        self.client_done = False
        self.response_done = False
        self.response_started = False
        self.head = None
        keep_alive = version >= "1.1"  # h11: HTTP/1.0 and older close
        upgrade = b""
        connection = b""
        has_body = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"connection":
                connection = value.lower()
                if b"close" in (token.strip() for token in connection.split(b",")):
                    keep_alive = False
            elif lowered == b"upgrade":
                upgrade = value.strip().lower()
            elif lowered in (b"content-length", b"transfer-encoding"):
                has_body = True
        self.keep_alive = keep_alive
        await self.send(_BUSY)
        if method == b"PRI" and url == b"*" and version == "2.0" and guards._h2c:
            raise H2ProtocolAssumedError(b"PRI * HTTP/2.0\r\n\r\n" + self.rest)
        if upgrade == b"h2c" and not has_body and guards._h2c:
            await self._write_informational(
                101, [(b"connection", b"upgrade"), (b"upgrade", b"h2c")], common_first=True
            )
            raise H2CProtocolRequiredError(self.rest, _H2CRequest(method, url, headers))  # type: ignore[arg-type]
        names = headers if self.config.h11_pass_raw_headers else _lowered(headers)
        if (
            upgrade == b"websocket"
            and method == b"GET"
            and any(token.strip() == b"upgrade" for token in connection.split(b","))
        ):
            self.websocket = True
            self.stream = WSStream(
                self.app,
                self.config,
                self.context,
                self.task_group,
                self.ssl,
                self.client,
                self.server,
                self.stream_send,
                STREAM_ID,
            )
        else:
            self.stream = HTTPStream(
                self.app,
                self.config,
                self.context,
                self.task_group,
                self.ssl,
                self.client,
                self.server,
                self.stream_send,
                STREAM_ID,
            )
        if version >= "1.1" and _expects_continue(headers):
            await self._write_informational(100, [])
        await self.stream.handle(
            Request(
                stream_id=STREAM_ID,
                headers=names,
                http_version=version,
                method=method.decode("ascii").upper(),
                raw_path=url,
                state=self.connection_state,
            )
        )
        self.keep_alive_requests += 1
        await self.context.mark_request()
        if self.websocket:
            self.client_done = True
        if self.websocket and self.rest:
            rest, self.rest = self.rest, b""
            await self.stream.handle(Data(stream_id=STREAM_ID, data=rest))

    async def stream_send(self, event: StreamEvent) -> None:
        if isinstance(event, Response):
            if event.status_code >= 200:
                self._start_response(event.status_code, event.headers)
            else:
                await self._write_informational(event.status_code, event.headers)
        elif isinstance(event, InformationalResponse):
            pass  # Ignored for HTTP/1, as Hypercorn does
        elif isinstance(event, Body):
            data = event.data
            if self.chunked and data:
                data = b"%x\r\n%b\r\n" % (len(data), data)
            await self._write(data)
        elif isinstance(event, EndBody):
            self.response_done = True
            await self._write(b"0\r\n\r\n" if self.chunked else b"")
        elif isinstance(event, Data):
            await self.send(RawData(data=event.data))
        elif isinstance(event, EndData):
            pass
        elif isinstance(event, StreamClosed):
            await self._maybe_recycle()

    # Writing -------------------------------------------------------------------------------

    def _start_response(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """The head, as h11 writes it; kept to go out with the first body bytes."""
        self.response_started = True
        headers = [*headers, *self._response_headers()]
        if self.keep_alive_requests >= self.config.keep_alive_max_requests:
            headers.append((b"connection", b"close"))
        content_length = False
        transfer_chunked = False
        connection_close = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-length":
                content_length = True
            elif lowered == b"transfer-encoding":
                transfer_chunked = True
            elif lowered == b"connection" and b"close" in value.lower():
                connection_close = True
        # h11 rewrites the Connection header only for its own reasons (the request's
        # keep-alive, read-until-close framing); the response's own "close" stays as is.
        rewrite = not self.keep_alive
        if connection_close:
            self.keep_alive = False
        bodyless = status in (204, 304) or self.method == b"HEAD"
        self.chunked = False
        if not bodyless and not transfer_chunked and not content_length:
            # h11's framing: chunked for an HTTP/1.1 client, read-until-close otherwise.
            if self.version >= "1.1":
                headers = [h for h in headers if h[0].lower() != b"transfer-encoding"]
                headers.append((b"Transfer-Encoding", b"chunked"))
                self.chunked = True
            else:
                self.keep_alive = False
                rewrite = True
        elif transfer_chunked and not bodyless:
            self.chunked = True
        if rewrite:
            tokens: set[bytes] = set()
            kept = []
            for name, value in headers:
                if name.lower() == b"connection":
                    tokens.update(t.strip() for t in value.lower().split(b",") if t.strip())
                else:
                    kept.append((name, value))
            tokens.discard(b"keep-alive")
            tokens.add(b"close")
            headers = [*kept, *((b"Connection", token) for token in sorted(tokens))]
        lines = [b"HTTP/1.1 %d \r\n" % status]
        lines.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
        lines.append(b"\r\n")
        self.head = b"".join(lines)

    async def _write(self, data: bytes) -> None:
        if self.refused:
            return  # h11 sends nothing more after its error response either
        if self.head is not None:
            data, self.head = self.head + data, None
        if data:
            await self.send(RawData(data=data))

    async def _write_informational(
        self, status: int, headers: list[tuple[bytes, bytes]], *, common_first: bool = False
    ) -> None:
        common = self._response_headers()
        ordered = [*common, *headers] if common_first else [*headers, *common]
        lines = [b"HTTP/1.1 %d \r\n" % status]
        lines.extend(b"%s: %s\r\n" % (name, value) for name, value in ordered)
        lines.append(b"\r\n")
        await self.send(RawData(data=b"".join(lines)))

    async def _refuse(self, status: int) -> None:
        if not self.response_started:
            headers = [(b"content-length", b"0"), (b"connection", b"close")]
            headers += self._response_headers()
            lines = [b"HTTP/1.1 %d \r\n" % status]
            lines.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
            lines.append(b"\r\n")
            self.response_started = True
            await self.send(RawData(data=b"".join(lines)))
        self.refused = True
        await self.send(_CLOSED)

    # The end of a request -----------------------------------------------------------------

    async def _maybe_recycle(self) -> None:
        await self._close_stream()
        if (
            not self.context.terminated.is_set()
            and not self.websocket
            and self.keep_alive
            and self.client_done
            and self.response_done
            and not self.closed
        ):
            self.head = None
            self.response_started = False
            await self.can_read.set()
            await self.send(_IDLE)
        else:
            if self.head is not None:
                await self._write(b"")
            await self.can_read.set()
            await self.send(_CLOSED)

    async def _close_stream(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await stream.handle(StreamClosed(stream_id=STREAM_ID))


def _lowered(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower(), value) for name, value in headers]


def _expects_continue(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"expect":
            tokens = (token.strip() for token in value.lower().split(b","))
            if b"100-continue" in tokens:
                return True
    return False
