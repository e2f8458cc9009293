"""The HTTP/1.1 seam in-process: httptools against Hypercorn's own h11 protocol, byte for byte.

Every request goes to both protocols in the same pieces (tests/helpers/http1_harness.py);
the app must see the same requests (method, target, version, headers, body) and the client
the same statuses, or the httptools side refuses (400, 431) where llhttp is stricter than
h11 -- and only for the reasons named in :func:`stricter`. httptools never accepts what h11
refuses.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quart_app.serving import http1
from tests.helpers.http1_harness import Outcome, exchange

PARSERS = ["httptools", "h11"]

SMUGGLING = {
    "CL+TE": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
    b"\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n",
    "duplicate CL": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\n"
    b"abcde",
    "duplicate equal CL": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
    b"Content-Length: 3\r\n\r\nabc",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: a\n\n",
    "chunk-size overflow": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"10000000000000003\r\nabc\r\n0\r\n\r\n",
    "invalid chunk extension": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'3;x="\x01"\r\nabc\r\n0\r\n\r\n',
    "TE gzip": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    "no Host": b"GET / HTTP/1.1\r\n\r\n",
    "two Hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
}


def view(outcome: Outcome) -> list[dict[str, object]]:
    return [asdict(seen) for seen in outcome.requests]


@pytest.mark.parametrize("case", sorted(SMUGGLING))
async def test_smuggling_shapes_are_refused_with_400_and_close_on_httptools(case: str) -> None:
    outcome = await exchange("httptools", [SMUGGLING[case]])
    assert outcome.requests == [], case
    assert outcome.statuses in ([400], [501]), (case, outcome.written)
    assert outcome.closed
    assert b"connection: close" in outcome.written


async def test_h11_still_refuses_what_it_refused() -> None:
    """The h11 path is Hypercorn's own: conflicting lengths, no Host, TE gzip are refused."""
    for case in ("duplicate CL", "no Host", "two Hosts", "TE gzip"):
        outcome = await exchange("h11", [SMUGGLING[case]])
        assert outcome.requests == [] and outcome.closed, case
        assert outcome.statuses in ([400], [501]), case


@pytest.mark.parametrize("parser", PARSERS)
async def test_a_head_over_the_limit_is_431_and_close(parser: str) -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20_000
    outcome = await exchange(parser, [head[:9000], head[9000:], b"\r\n\r\n"])
    assert outcome.statuses == [431] and outcome.closed and outcome.requests == []


@pytest.mark.parametrize("parser", PARSERS)
async def test_pipelined_requests_are_answered_in_order(parser: str) -> None:
    data = b"".join(
        b"POST /%d HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n%d" % (i, i) for i in range(5)
    )
    outcome = await exchange(parser, [data])
    assert [seen.raw_path for seen in outcome.requests] == [b"/%d" % i for i in range(5)]
    assert [seen.body for seen in outcome.requests] == [b"%d" % i for i in range(5)]
    assert outcome.statuses == [200] * 5 and not outcome.closed


@pytest.mark.parametrize("parser", PARSERS)
async def test_expect_100_continue_gets_100_then_the_answer(parser: str) -> None:
    head = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    outcome = await exchange(parser, [head, b"abc"])
    assert outcome.statuses == [100, 200]
    assert outcome.requests[0].body == b"abc"


@pytest.mark.parametrize("parser", PARSERS)
async def test_http10_is_answered_and_closed(parser: str) -> None:
    outcome = await exchange(parser, [b"GET / HTTP/1.0\r\n\r\n"])
    assert outcome.statuses == [200] and outcome.closed
    assert b"Connection: close\r\n" in outcome.written


@pytest.mark.parametrize("parser", PARSERS)
async def test_chunked_body_and_trailers(parser: str) -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    outcome = await exchange(parser, [data[:50], data[50:]])
    assert outcome.requests[0].body == b"abcde"
    assert (b"transfer-encoding", b"chunked") in outcome.requests[0].headers  # h11 lowers it
    assert (b"x-trailer", b"1") not in outcome.requests[0].headers


@pytest.mark.parametrize("parser", PARSERS)
async def test_a_bad_request_after_a_good_one_is_answered_after_it(parser: str) -> None:
    data = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n"
    outcome = await exchange(parser, [data])
    assert [seen.raw_path for seen in outcome.requests] == [b"/1"]
    assert outcome.statuses == [200, 400] and outcome.closed


async def test_responses_are_the_same_bytes_but_the_date() -> None:
    data = (
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    ours, theirs = await exchange("httptools", [data]), await exchange("h11", [data])
    assert ours.written == theirs.written
    assert ours.closed and theirs.closed


# --- the pin ------------------------------------------------------------------------------


def test_the_installed_hypercorn_is_one_the_seam_was_written_for() -> None:
    """Fails on a Hypercorn whose internals the seam was not written against."""
    from importlib.metadata import version

    assert version("hypercorn") in http1.PINNED
    http1.check_hypercorn()


@pytest.mark.parametrize("version", ["0.16.0", "0.19.0", "1.0.0"])
def test_another_hypercorn_version_is_refused_naming_what_to_reread(version: str) -> None:
    with pytest.raises(http1.UnpinnedHypercornError, match=r"protocol/h11\.py"):
        http1.check_hypercorn(version)


def test_install_and_uninstall_swap_only_the_two_seams() -> None:
    from hypercorn.asyncio.tcp_server import TCPServer
    from hypercorn.protocol import ProtocolWrapper

    previous = http1.installed()  # an app made earlier in this process may have installed it
    http1.uninstall()
    before = (ProtocolWrapper.__init__, TCPServer.__init__)
    try:
        assert http1.install("httptools") is True
        assert http1.installed() == "httptools"
        assert ProtocolWrapper.__init__ is not before[0]
        assert http1.install("h11") is True
        assert (ProtocolWrapper.__init__, TCPServer.__init__) == before
        with pytest.raises(ValueError, match="HTTP1_PARSER"):
            http1.install("picohttp")
    finally:
        http1.uninstall()
        http1.install(previous)


# --- fuzzing the seam ---------------------------------------------------------------------

# Where llhttp is stricter than h11 (httptools refuses, h11 accepts). Anything else must
# come out the same.
_CTL_IN_VALUE = re.compile(rb"\r\n[!-9;-~]+:[^\r\n]*[\x00-\x08\x0a-\x1f\x7f]")


def stricter(data: bytes) -> str | None:
    """The rule llhttp is stricter by in one of the heads of ``data``, or None."""
    for head in data.split(b"\r\n\r\n"):
        reason = _stricter_head(head)
        if reason is not None:
            return reason
    return None


def _stricter_head(head: bytes) -> str | None:
    lowered = head.lower()
    if b"\n " in head or b"\n\t" in head:
        return "obs-fold"
    if re.search(rb"(?<!\r)\n", head):
        return "bare LF"
    if lowered.count(b"\ncontent-length:") > 1 or re.search(
        rb"\ncontent-length:[^\r\n]*,", lowered
    ):
        return "repeated Content-Length"
    if b"\ncontent-length:" in lowered and b"\ntransfer-encoding:" in lowered:
        return "CL+TE (the app's middleware refuses it on h11)"
    if _CTL_IN_VALUE.search(head):
        return "control character in a field value"
    if len(head) > 16 * 1024:
        return "head over h11_max_incomplete_size in one read"
    first_line = head.split(b"\r\n", 1)[0]
    if not first_line.endswith((b" HTTP/1.1", b" HTTP/1.0")):
        return "HTTP version llhttp does not serve (h11 takes any HTTP/d.d)"
    method = head.split(b" ", 1)[0]
    if method not in KNOWN_METHODS:
        return "method llhttp does not know"
    if b"transfer-encoding: chunked" in lowered:
        return "chunked framing (llhttp checks chunk extensions and sizes strictly)"
    return None


def h11_refuses_an_empty_line(data: bytes) -> bool:
    """h11, answering each request, refuses bytes that begin with an empty line."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    conn.receive_data(b"")
    while True:
        # (h11 consumes an empty line before it refuses it)
        pending, idle = conn.trailing_data[0], conn.their_state is h11.IDLE
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return idle and pending.startswith((b"\r\n", b"\n"))
        if event is h11.PAUSED or isinstance(event, h11.EndOfMessage):
            if conn.our_state is not h11.SEND_RESPONSE:
                return False
            conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
            conn.send(h11.EndOfMessage())
            # mypy keeps our_state narrowed to SEND_RESPONSE across the conn.send() calls
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:  # type: ignore[comparison-overlap]
                return False
            conn.start_next_cycle()
        elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
            return False


KNOWN_METHODS = {b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"}

token = st.text("abcdefghijklmnopqrstuvwxyz-ABCXYZ0123456789!#$%&'*+.^_`|~", min_size=1, max_size=8)
value = st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
field = st.one_of(
    st.tuples(token.map(str.encode), value),
    st.tuples(
        st.sampled_from([b"Content-Length", b"content-length"]),
        st.sampled_from(
            [b"0", b"1", b"3", b"+3", b"-1", b"3, 3", b"03", b" 3", b"99999999999999999999", b"x"]
        ),
    ),
    st.tuples(
        st.just(b"Transfer-Encoding"),
        st.sampled_from(
            [b"chunked", b"Chunked", b"gzip", b"chunked, gzip", b"gzip, chunked", b" chunked"]
        ),
    ),
    st.tuples(st.just(b"Host"), st.sampled_from([b"a", b"", b"a:80", b"a b"])),
    st.tuples(st.just(b"Expect"), st.just(b"100-continue")),
    st.tuples(st.just(b"Connection"), st.sampled_from([b"close", b"keep-alive", b"upgrade"])),
)
separator = st.sampled_from([b": ", b":", b" : ", b":\t", b": \t"])
line_end = st.sampled_from([b"\r\n"] * 12 + [b"\n", b"\r\n "])
body = st.sampled_from(
    [
        b"",
        b"abc",
        b"3\r\nabc\r\n0\r\n\r\n",
        b"0\r\n\r\n",
        b"3;a=b\r\nabc\r\n0\r\n\r\n",
        b"3;a\x01\r\nabc\r\n0\r\n\r\n",
        b"Z\r\n\r\n",
        b"3\r\nabcd\r\n0\r\n\r\n",
    ]
)
method = st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"FOO", b"get"])
target = st.sampled_from([b"/", b"/a?b=c", b"/%20", b"*", b"http://a/b", b"/a#f", b"/\x7f", b"//"])
version = st.sampled_from([b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/11"])


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, int]:
    fields = draw(st.lists(st.tuples(field, separator, line_end), max_size=6))
    head = draw(method) + b" " + draw(target) + b" " + draw(version) + b"\r\n"
    if draw(st.booleans()):
        head += b"Host: a\r\n"
    for (name, val), sep, end in fields:
        head += name + sep + val + end
    data = head + b"\r\n" + draw(body)
    if draw(st.booleans()):
        data += b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    split = draw(st.integers(min_value=1, max_value=max(1, len(data))))
    return data, split


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(requests())
async def test_fuzz_same_requests_and_statuses_as_h11_or_refused(
    case: tuple[bytes, int],
) -> None:
    data, split = case
    pieces = [data[:split], data[split:]] if split < len(data) else [data]
    ours = await exchange("httptools", pieces, settle=0.002)
    theirs = await exchange("h11", pieces, settle=0.002)
    if view(ours) == view(theirs) and ours.statuses == theirs.statuses:
        return
    more = len(ours.requests) >= len(theirs.requests)
    if theirs.refused and more and h11_refuses_an_empty_line(data):
        # llhttp skips empty lines before a request line (RFC 9112 section 2.2: a server
        # SHOULD ignore at least one); h11 answers them 400. Same requests up to there.
        assert view(ours)[: len(theirs.requests)] == view(theirs)
        return
    # The app never sees a request h11 would not have given it, nor other bytes.
    assert view(ours) == view(theirs)[: len(ours.requests)], (data, ours, theirs)
    assert ours.closed, (data, ours, theirs)
    if theirs.refused and theirs.closed:
        return  # both refuse (h11 may refuse a pipelined request before answering the first)
    # h11 accepted: httptools refused, for a rule it is stricter by.
    assert ours.refused and ours.statuses[-1] in (400, 431, 501), (data, ours, theirs)
    if theirs.statuses == ours.statuses[:-1] and not theirs.closed:
        return  # h11 still waits for the rest of a line llhttp already knows is bad
    assert stricter(data) is not None, (data, ours, theirs)


# --- one idle timer per connection ---------------------------------------------------------


class _Server:
    """What IdleTimer reads of Hypercorn's TCPServer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        from hypercorn.asyncio.worker_context import WorkerContext
        from hypercorn.config import Config

        self.loop = loop
        self.config = Config()
        self.config.keep_alive_timeout = timeout
        self.context = WorkerContext(None)
        self.closed_at: float | None = None

    async def _initiate_server_close(self) -> None:
        self.closed_at = self.loop.time()


class _Group:
    def __init__(self) -> None:
        self._task_group = asyncio.TaskGroup()


async def test_the_idle_timer_moves_one_handle_per_connection_not_one_per_request() -> None:
    loop = asyncio.get_running_loop()
    server = _Server(loop, 0.3)
    timer = http1.IdleTimer(server)
    scheduled = 0
    original = loop.call_later

    def counting(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        nonlocal scheduled
        scheduled += 1
        return original(delay, callback, *args)

    group = _Group()
    async with group._task_group:
        loop.call_later = counting  # type: ignore[method-assign,assignment]
        try:
            started = loop.time()
            for _ in range(200):  # 200 keep-alive requests in quick succession
                await timer.stop()  # a request begins
                await timer.restart(group, _never)  # its response is done: idle again
            assert scheduled == 1
            await asyncio.sleep(0.6)
        finally:
            loop.call_later = original  # type: ignore[method-assign]
        assert server.closed_at is not None
        assert 0.3 <= server.closed_at - started < 0.6  # idle for the timeout: closed
        # A busy connection is never closed by the timer.
        busy = _Server(loop, 0.1)
        busy_timer = http1.IdleTimer(busy)
        await busy_timer.restart(group, _never)
        await busy_timer.stop()
        await asyncio.sleep(0.3)
        assert busy.closed_at is None
        # When the worker stops, idle connections close at once.
        idle = http1.IdleTimer(busy)
        await idle.restart(group, _never)
        await busy.context.terminated.set()
        await asyncio.sleep(0.05)
        assert busy.closed_at is not None
        await server.context.terminated.set()  # ends the first worker's watcher too


async def _never() -> None:
    raise AssertionError("Hypercorn's idle task is not used")


def test_a_bad_http1_parser_setting_stops_start_up_naming_it(tmp_path: Path) -> None:
    from quart_app.startup.preflight import preflight
    from quart_app.startup.settings import SettingsError

    env = {"INSTANCE_PATH": str(tmp_path), "HTTP1_PARSER": "picohttp"}
    with pytest.raises(
        SettingsError, match="HTTP1_PARSER must be httptools or h11, not 'picohttp'"
    ):
        preflight(environ=env)
    assert preflight(environ={**env, "HTTP1_PARSER": "h11"})["HTTP1_PARSER"] == "h11"
