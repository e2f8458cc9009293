"""Hypercorn over TLS inside the test's own event loop, and an HTTP/2 client for it.

:func:`serving` runs the real Hypercorn (``hypercorn.asyncio.serve``) with a
``quart-app dev-cert`` pair on a free loopback port, serving an app the test already
started (its lifespan is acknowledged here, not run twice). :class:`H2Client` speaks
HTTP/2 to it through httpx and answers like Quart's test client, so tests written for
the test client run unchanged over a real TLS + ALPN connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

from quart_app.serving.devcert import write_dev_cert


def tls_pair(folder: Path) -> tuple[Path, Path]:
    """A fresh self-signed certificate and key for 127.0.0.1/localhost in ``folder``."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    write_dev_cert(cert, key)
    return cert, key


def client_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


class AlreadyStarted:
    """Forward HTTP to ``app``; acknowledge lifespan events without running them again."""

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return


@contextlib.asynccontextmanager
async def serving(app: Any, cert: Path, key: Path, **settings: Any) -> AsyncIterator[str]:
    """Serve ``app`` over TLS (HTTP/2 by ALPN) until the block ends; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns (and closes) it from here
    config.certfile, config.keyfile = str(cert), str(key)
    config.include_server_header = False
    config.accesslog = None
    for name, value in settings.items():
        setattr(config, name, value)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(AlreadyStarted(app), config, shutdown_trigger=stop.wait))
    try:
        for _ in range(500):
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"https://127.0.0.1:{port}"
    finally:
        stop.set()
        await task


class H2Response:
    """The parts of Quart's test response that tests read."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.http_version = response.http_version

    async def get_json(self) -> Any:
        return json.loads(self.response.content)

    async def get_data(self, as_text: bool = False) -> bytes | str:
        return self.response.text if as_text else self.response.content


class H2Client:
    """Quart's test-client calls (get/post/put/options/open) over live HTTP/2."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def open(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        json: Any = None,
        data: str | bytes | None = None,
        query_string: dict[str, Any] | None = None,
    ) -> H2Response:
        response = await self.http.request(
            method,
            path,
            headers=headers,
            json=json,
            content=data.encode() if isinstance(data, str) else data,
            params=query_string,
        )
        assert response.http_version == "HTTP/2", response.http_version
        assert "connection" not in response.headers  # forbidden in HTTP/2
        return H2Response(response)

    async def get(self, path: str, **kwargs: Any) -> H2Response:
        return await self.open(path, method="GET", **kwargs)

    async def post(self, path: str, **kwargs: Any) -> H2Response:
        return await self.open(path, method="POST", **kwargs)

    async def put(self, path: str, **kwargs: Any) -> H2Response:
        return await self.open(path, method="PUT", **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> H2Response:
        return await self.open(path, method="DELETE", **kwargs)

    async def options(self, path: str, **kwargs: Any) -> H2Response:
        return await self.open(path, method="OPTIONS", **kwargs)
