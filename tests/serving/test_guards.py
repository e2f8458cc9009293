"""quart_app.serving.guards against Hypercorn itself: each guard's bug, with and without it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from quart_app.serving import guards
from tests.helpers.early_app import MAX_CONTENT_LENGTH
from tests.helpers.early_app import app as early_app
from tests.helpers.tlslive import client_context, serving, tls_pair


@pytest.fixture(params=[True, False], ids=["guarded", "unguarded"])
def guarded(request: pytest.FixtureRequest) -> Iterator[bool]:
    if request.param:
        guards.install()
    else:
        guards.uninstall()
    try:
        yield bool(request.param)
    finally:
        guards.install()


async def test_a_413_on_one_http2_stream_costs_no_other_stream(
    tmp_path: Path, guarded: bool
) -> None:
    """Hypercorn 0.18 raises KeyError for DATA on a stream it already answered, and the
    connection dies with every stream on it; with the guard only the 413 stream ends."""
    cert, key = tls_pair(tmp_path)
    body = b"x" * (MAX_CONTENT_LENGTH * 60)  # well past the limit and the first window
    async with (
        serving(early_app, cert, key) as url,
        httpx.AsyncClient(
            http2=True, verify=client_context(cert), base_url=url, timeout=60
        ) as client,
    ):
        assert (await client.get("/healthz")).http_version == "HTTP/2"

        async def healthz() -> int:
            await asyncio.sleep(0.05)  # in flight while the big body is still being sent
            return (await client.get("/healthz")).status_code

        outcomes = await asyncio.gather(
            client.post("/echo", content=body),
            *(healthz() for _ in range(10)),
            return_exceptions=True,
        )
        after = await asyncio.gather(client.get("/healthz"), return_exceptions=True)
    if not guarded:
        # The bug itself: if this stops failing, Hypercorn is fixed and the guard can go.
        assert any(isinstance(o, Exception) for o in [*outcomes, *after]), outcomes
        return
    big, *others = outcomes
    assert isinstance(big, httpx.Response) and big.status_code == 413, big
    assert others == [200] * 10
    assert isinstance(after[0], httpx.Response) and after[0].status_code == 200
