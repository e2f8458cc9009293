"""HTTP/1.1 on a live server, on both parsers (HTTP1_PARSER=httptools, the default, and h11).

Framing attacks are refused with 400 and the connection closed, heads past the limit get
431, pipelining, ``Expect: 100-continue``, HEAD and h2c upgrades work, a slow client is
cut off by the keep-alive timeout, and the access log and the metrics are the same on both.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.live import Server
from tests.helpers.rawhttp import Reader

pytestmark = pytest.mark.live

ENV = {"HTTP2_CLEARTEXT": "true", "METRICS_ENABLED": "true", "METRICS_PUBLIC": "true"}
#: hypercorn.toml's keep_alive_timeout, and how much later a slow client may still be open.
KEEP_ALIVE = 5.0
SLACK = 5.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, http1_parser_module: str) -> Iterator[Server]:
    instance = tmp_path_factory.mktemp(f"http1-{http1_parser_module}") / "instance"
    env = {**ENV, "HTTP1_PARSER": http1_parser_module}
    with Server(instance, workers=1, env=env) as server:
        yield server


def exchange(port: int, data: bytes, wait: float = 3.0) -> tuple[bytes, bool]:
    """Send ``data``; everything the server wrote, and whether it closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        out = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return out, True
                out += chunk
        except TimeoutError:
            return out, False
        except ConnectionResetError:
            return out, True


def statuses(raw: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


SMUGGLING = {
    "CL+TE": b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
    "conflicting CL": b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
    b"Content-Length: 5\r\n\r\nabcde",
    "TE gzip": b"POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    "no Host": b"GET /healthz HTTP/1.1\r\n\r\n",
}
# Refused by llhttp only; h11 reads them without ambiguity (it unfolds, takes bare LF and
# the last of equal lengths), so nothing is smuggled there either.
STRICT = {
    "duplicate CL": b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
    b"Content-Length: 2\r\n\r\n{}",
    "obs-fold": b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n"
    b" Transfer-Encoding: chunked\r\n\r\n",
    "bare LF": b"GET /healthz HTTP/1.1\nHost: a\n\n",
    "chunk-size overflow": b"POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"10000000000000003\r\nabc\r\n0\r\n\r\n",
    "invalid chunk extension": b"POST /login HTTP/1.1\r\nHost: a\r\n"
    b'Transfer-Encoding: chunked\r\n\r\n3;x="\x01"\r\nabc\r\n0\r\n\r\n',
}


@pytest.mark.parametrize("case", sorted(SMUGGLING))
def test_framing_attacks_are_400_and_close(server: Server, case: str) -> None:
    raw, closed = exchange(server.port, SMUGGLING[case])
    assert statuses(raw) in ([400], [501]), (case, raw)
    assert closed and re.search(rb"(?i)\r\nconnection: close\r\n", raw), (case, raw)


@pytest.mark.parametrize("case", sorted(STRICT))
def test_what_llhttp_refuses_is_400_and_close_there(
    server: Server, http1_parser_module: str, case: str
) -> None:
    raw, closed = exchange(server.port, STRICT[case])
    if http1_parser_module == "httptools":
        assert statuses(raw) == [400] and closed, (case, raw)
    else:  # h11: one request, one answer, never two
        assert len(statuses(raw)) <= 1, (case, raw)


def test_a_head_over_the_limit_is_431_and_close(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 9000)
        time.sleep(0.2)
        sock.sendall(b"a" * 9000)
        time.sleep(0.2)
        with contextlib.suppress(OSError):  # already closed
            sock.sendall(b"\r\n\r\n")
        response = Reader(sock).response()
    assert response is not None and response.status == 431 and response.closes


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    data = b"".join(
        b"GET /%s HTTP/1.1\r\nHost: a\r\n\r\n" % path
        for path in (b"healthz", b"nowhere", b"healthz")
    )
    raw, closed = exchange(server.port, data, wait=2)
    assert statuses(raw) == [200, 404, 200] and not closed


def test_expect_100_continue(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /login HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n"
        )
        reader = Reader(sock)
        interim = reader.response()
        assert interim is not None and interim.status == 100
        sock.sendall(b"{}")
        final = reader.response()
    assert final is not None and final.status == 400
    assert b"username" in final.body


def test_head_has_the_length_and_no_body_and_keeps_the_connection(server: Server) -> None:
    data = b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
    raw, closed = exchange(server.port, data, wait=2)
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert statuses(head) == [200] and b"content-length: 16" in head.lower()
    assert rest.startswith(b"HTTP/1.1 200 ") and rest.endswith(b'{"status":"ok"}\n')
    assert not closed


def test_h2c_upgrade_switches_to_http2_when_allowed(server: Server) -> None:
    upgrade = (
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(upgrade)
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += sock.recv(65536)
        head, _, after = raw.partition(b"\r\n\r\n")
        assert statuses(head) == [101] and b"upgrade: h2c" in head.lower()
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        while len(after) < 9:
            after += sock.recv(65536)
    assert after[3] == 0x04  # the server's SETTINGS frame: HTTP/2 from here on


def test_a_slow_client_is_cut_off_by_the_keep_alive_timeout(server: Server) -> None:
    """Slowloris: a head dribbled a byte at a time never becomes a request."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        started = time.monotonic()
        closed_after = None
        for byte in b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
                time.sleep(0.25)
                sock.setblocking(False)
                try:
                    if sock.recv(1) == b"":
                        closed_after = time.monotonic() - started
                        break
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
            except OSError:
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None, "still open after 25 s of dribbling"
    assert KEEP_ALIVE - 0.5 <= closed_after <= KEEP_ALIVE + SLACK, closed_after


# --- the same log and metrics on both -------------------------------------------------------

REQUESTS = [
    ("GET", "/healthz", None),
    ("HEAD", "/healthz", None),
    ("GET", "/protected", None),
    ("POST", "/login", b"{}"),
    ("GET", "/nowhere", None),
    ("POST", "/login", b"x" * 70_000),
]


#: hypercorn.toml's access log format, less what differs from run to run (time, duration).
ACCESS_FORMAT = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"'
#: What changes between two runs in a log line: time, pid, client port, request id, duration.
VARYING = re.compile(
    r"^.*?\[[A-Z]+\] |^[0-9-]+ [0-9:,]+ |:\d+ |\[[0-9a-f]{32}\] |[0-9.]+ms|client=\S+"
)


def normalised(lines: list[str]) -> list[str]:
    """The lines without what varies (and without the /metrics scrape, whose size does)."""
    return [VARYING.sub("", ln) for ln in lines if ln.strip() and "/metrics" not in ln]


def _served(tmp_path: Path, parser: str) -> tuple[list[str], list[str], list[str]]:
    log = tmp_path / f"access-{parser}.log"
    env = {**ENV, "HTTP1_PARSER": parser, "ACCESS_LOG": "true"}
    server = Server(tmp_path / f"instance-{parser}", workers=1, env=env, access_log=log)
    server.args[server.args.index("--access-logformat") + 1] = ACCESS_FORMAT
    with server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for method, path, body in REQUESTS:
                client.request(method, path, content=body)
            metrics = client.get("/metrics").text
        time.sleep(0.5)
        app_log = server.log_path.read_text()
    hypercorn_lines = normalised(log.read_text().splitlines())
    app_lines = normalised([ln for ln in app_log.splitlines() if "quart_app.access" in ln])
    counted = [
        ln
        for ln in metrics.splitlines()
        if ln.startswith("quart_app_") and ("_total{" in ln or "_count{" in ln)
    ]
    return hypercorn_lines, app_lines, counted


def test_access_log_and_metrics_are_the_same_on_both_parsers(tmp_path: Path) -> None:
    theirs = _served(tmp_path, "h11")
    ours = _served(tmp_path, "httptools")
    assert ours[0] == theirs[0] and len(theirs[0]) >= len(REQUESTS), (ours[0], theirs[0])
    assert ours[1] == theirs[1] and len(theirs[1]) >= len(REQUESTS), (ours[1], theirs[1])
    assert ours[2] == theirs[2] and theirs[2], (ours[2], theirs[2])
