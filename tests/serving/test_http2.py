"""TLS and HTTP/2 under ``python -m quart_app.serving``, and HTTP/1.1 framing at the edge."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509

from quart_app.cli import main as cli
from tests.helpers.live import ROOT, Server, free_port
from tests.helpers.rawhttp import Reader
from tests.helpers.tlslive import client_context, tls_pair

pytestmark = pytest.mark.live

SERVE = [sys.executable, "-m", "quart_app.serving"]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    cert, key = tls_pair(tmp_path)
    with Server(tmp_path / "instance", workers=1, launcher=SERVE, tls=(cert, key)) as server:
        yield server, cert


async def test_http2_by_alpn_with_hsts_and_no_connection_header(
    tls_server: tuple[Server, Path],
) -> None:
    server, cert = tls_server
    async with httpx.AsyncClient(http2=True, verify=client_context(cert), timeout=60) as client:
        response = await client.get(f"{server.url}/healthz")
    assert response.http_version == "HTTP/2"
    assert response.json() == {"status": "ok"}
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert "connection" not in response.headers and "server" not in response.headers


async def test_a_413_among_http2_streams_leaves_the_others_and_the_connection(
    tls_server: tuple[Server, Path],
) -> None:
    server, cert = tls_server
    big = {"username": "alice", "password": "x" * (200 * 1024)}  # over MAX_CONTENT_LENGTH
    async with httpx.AsyncClient(
        http2=True, verify=client_context(cert), base_url=server.url, timeout=30
    ) as client:
        assert (await client.get("/healthz")).status_code == 200

        async def healthz() -> int:
            await asyncio.sleep(0.05)
            return (await client.get("/healthz")).status_code

        too_big, others = await asyncio.gather(
            client.post("/register", json=big), asyncio.gather(*(healthz() for _ in range(20)))
        )
        assert too_big.status_code == 413
        assert others == [200] * 20
        again = await client.get("/healthz")  # the same connection still serves
        assert again.status_code == 200 and again.http_version == "HTTP/2"
    assert "Traceback" not in server.log_path.read_text()


def test_a_rapid_reset_burst_ends_that_connection_with_goaway_not_a_traceback(
    tls_server: tuple[Server, Path],
) -> None:
    server, cert = tls_server
    context = client_context(cert)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        headers = [(":method", "GET"), (":path", "/healthz"), (":scheme", "https")]
        headers.append((":authority", "localhost"))
        for _ in range(1500):  # opened and cancelled at once, many times over
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, headers, end_stream=True)
            conn.reset_stream(stream)
        sock.sendall(conn.data_to_send())
        seen: Counter[str] = Counter()
        codes = []
        while data := sock.recv(65536):
            for event in conn.receive_data(data):
                seen[type(event).__name__] += 1
                if isinstance(event, h2.events.ConnectionTerminated):
                    codes.append(event.error_code)
    assert codes == [h2.errors.ErrorCodes.ENHANCE_YOUR_CALM], seen
    log = server.log_path.read_text()
    assert "opened too many streams at once; closing" in log
    assert "TooManyStreamsError" not in log and "Traceback" not in log
    after = httpx.get(f"{server.url}/healthz", verify=client_context(cert), timeout=60)
    assert after.status_code == 200  # other connections are served as before


def raw_exchange(port: int, request: bytes) -> tuple[bytes, bool]:
    """Send ``request``; (what came back, whether the server then closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        reader = Reader(sock)
        answer = reader.response()
        assert answer is not None
        sock.settimeout(5)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
        status = f"{answer.status}".encode()
        return status + b" " + answer.headers.get("connection", "").encode(), closed


@pytest.mark.usefixtures("http1_parser")
def test_h2c_is_off_and_framing_is_strict_over_cleartext(tmp_path: Path) -> None:
    with Server(tmp_path / "instance", workers=1, launcher=SERVE) as server:
        # Prior knowledge: refused in HTTP/1.1 with 505, and closed.
        answer, closed = raw_exchange(server.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert answer == b"505 close" and closed
        # Upgrade: h2c is ignored; the request is served in HTTP/1.1 (no 101).
        upgrade = (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        )
        answer, _closed = raw_exchange(server.port, upgrade)
        assert answer == b"200 "
        # Content-Length and Transfer-Encoding together: 400, and the connection closed.
        smuggle = (
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        answer, closed = raw_exchange(server.port, smuggle)
        assert answer == b"400 close" and closed
        plain = httpx.get(f"{server.url}/healthz", timeout=60)
        assert "strict-transport-security" not in plain.headers  # not over cleartext
        assert "server" not in plain.headers


def test_dev_cert_writes_a_pair_for_localhost_with_a_private_key(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    result = CliRunner().invoke(cli, ["dev-cert", "--cert", str(cert), "--key", str(key)])
    assert result.exit_code == 0, result.output
    assert f"make run CERTFILE={cert} KEYFILE={key}" in result.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    again = CliRunner().invoke(cli, ["dev-cert", "--cert", str(cert), "--key", str(key)])
    assert again.exit_code == 1 and "exists (--force replaces it)" in again.output
    ssl.create_default_context().load_cert_chain(cert, key)  # a usable pair


def test_half_a_tls_configuration_stops_start_up_in_one_line(tmp_path: Path) -> None:
    cert, _key = tls_pair(tmp_path)
    env = {**os.environ, "INSTANCE_PATH": str(tmp_path / "i")}
    result = subprocess.run(
        [
            *SERVE,
            *("--config", "hypercorn.toml", "--bind", f"127.0.0.1:{free_port()}"),
            *("--certfile", str(cert), "quart_app.asgi:app"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "Error: --certfile and --keyfile (CERTFILE, KEYFILE) must be given together"
    ]
