"""``/ws`` on real Hypercorn: sockets close when their token dies on another worker or host.

Hypercorn processes (2 workers, one SQLite file) for the cross-process bounds; one
Hypercorn served inside the test's own event loop for counting the tasks a socket leaves
behind (none). The tests that need two workers and nothing else share one such server
per HTTP/1.1 parser, each with users of its own (uuid-suffixed); the serial one, which
times a close, has one of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from quart_app import create_app
from quart_app.jwt import get_registry
from quart_app.serving.worker_hooks import install_worker_hooks
from tests.helpers.live import ROOT, Server, free_port, running_together
from tests.helpers.support import bearer, make_config, unique_name
from tests.helpers.ws_client import (
    CREDENTIALS,
    WAIT,
    ended_within,
    ending,
    open_socket,
    session,
    ws_url,
)

pytestmark = pytest.mark.live

#: The contract's bound with the SQL poll: REVOCATION_SYNC_INTERVAL + 0.5 s.
SYNC_INTERVAL = 1.0
SQL_BOUND = SYNC_INTERVAL + 0.5
ORIGIN = "https://app.example.com"


def two_worker_server(instance: Path, http1_parser: str) -> Server:
    env = {"REVOCATION_SYNC_INTERVAL": str(SYNC_INTERVAL), "HTTP1_PARSER": http1_parser}
    return Server(instance, workers=2, env=env)


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, http1_parser_module: str
) -> Iterator[Server]:
    """One server per parser for the module: every test logs in users of its own."""
    instance = tmp_path_factory.mktemp("ws") / "instance"
    with two_worker_server(instance, http1_parser_module) as server:
        yield server


@pytest.fixture
def own_two_workers(tmp_path: Path, http1_parser: str) -> Iterator[Server]:
    """The same, for one test alone."""
    with two_worker_server(tmp_path / "instance", http1_parser) as server:
        yield server


async def test_a_bad_handshake_is_refused_with_the_http_answer(two_workers: Server) -> None:
    for headers, status, msg in [
        ({}, None, None),  # no token: the first-message path, not a refusal
        ({"Authorization": "Bearer x.y"}, 422, "Not enough segments"),
        ({"Authorization": "Token abc"}, 401, "Missing 'Bearer' type in 'Authorization' header."),
    ]:
        if status is None:
            async with connect(ws_url(two_workers.url), open_timeout=WAIT) as ws:
                await ws.send(json.dumps({"type": "auth", "token": "x.y"}))
                assert await ending(ws) == ({}, 4401, "Not enough segments")
            continue
        with pytest.raises(InvalidStatus) as caught:
            await connect(ws_url(two_workers.url), additional_headers=headers, open_timeout=WAIT)
        assert caught.value.response.status_code == status
        assert json.loads(caught.value.response.body)["msg"].startswith(str(msg))


async def test_a_message_over_the_limit_closes_1009(two_workers: Server) -> None:
    pair = await session(two_workers.url, unique_name())
    ws, _ = await open_socket(two_workers.url, pair["access_token"])
    await ws.send(json.dumps({"type": "echo", "data": "x" * 60_000}))
    assert len(await asyncio.wait_for(ws.recv(), WAIT)) > 60_000
    await ws.send(json.dumps({"type": "echo", "data": "x" * 70_000}))
    assert (await ending(ws))[1] == 1009


@pytest.mark.serial  # a closing deadline
async def test_logout_closes_the_sockets_on_every_worker_in_time(own_two_workers: Server) -> None:
    pair = await session(own_two_workers.url)
    # Sixteen connections: the kernel spreads them over both workers (all on one: 2**-15).
    sockets = [(await open_socket(own_two_workers.url, pair["access_token"]))[0] for _ in range(16)]
    other = await session(own_two_workers.url, "bob")
    bystander, _ = await open_socket(own_two_workers.url, other["access_token"])
    async with httpx.AsyncClient(base_url=own_two_workers.url, timeout=60) as client:
        response = await client.post("/logout", headers=bearer(pair["access_token"]))
        assert response.status_code == 200
    done = time.perf_counter()
    delays = await asyncio.gather(*(ended_within(ws, done, "revoked") for ws in sockets))
    print(f"logout -> close, 16 sockets on 2 workers: max {max(delays):.3f} s")
    assert max(delays) <= SQL_BOUND, delays
    await bystander.send(json.dumps({"type": "echo", "data": "still here"}))
    assert json.loads(await bystander.recv()) == {"type": "echo", "data": "still here"}
    await bystander.close()


@pytest.mark.serial  # a closing deadline
async def test_a_revocation_on_another_host_closes_the_socket_in_time(tmp_path: Path) -> None:
    """Two Hypercorn masters on one database are two hosts: the socket is on one, the
    password change on the other."""
    instance = tmp_path / "instance"
    env = {"REVOCATION_SYNC_INTERVAL": str(SYNC_INTERVAL)}
    with running_together(Server(instance, env=env), Server(instance, env=env)) as (host_a, host_b):
        pair = await session(host_a.url)
        ws, _ = await open_socket(host_a.url, pair["access_token"])
        async with httpx.AsyncClient(base_url=host_b.url, timeout=60) as client:
            response = await client.put(
                "/me/password",
                headers=bearer(pair["access_token"]),
                json={"old_password": CREDENTIALS["password"], "new_password": "battery-staple"},
            )
            assert response.status_code == 200, response.text
        delay = await ended_within(ws, time.perf_counter(), "revoked")
        print(f"password change on host B -> close on host A: {delay:.3f} s")
        assert delay <= SQL_BOUND


async def test_expiry_closes_and_reauth_extends(tmp_path: Path) -> None:
    env = {"JWT_ACCESS_TOKEN_EXPIRES": "3"}
    with Server(tmp_path / "instance", workers=2, env=env) as server:
        pair = await session(server.url)
        keeps, first = await open_socket(server.url, pair["access_token"])
        lapses, _ = await open_socket(server.url, pair["access_token"])
        await asyncio.sleep(1.1)  # so that the refreshed token's whole-second exp is later
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            refreshed = await client.post("/token/refresh", headers=bearer(pair["refresh_token"]))
        newer = refreshed.json()["access_token"]
        await keeps.send(json.dumps({"type": "auth", "token": newer}))
        again = json.loads(await asyncio.wait_for(keeps.recv(), WAIT))
        assert again["type"] == "ready"
        assert again["exp"] > first["exp"]
        # The socket that did not re-authenticate ends at its token's exp...
        assert await ended_within(lapses, time.perf_counter(), "expired") < WAIT
        # ...while the other outlives it, until the newer token's exp.
        await keeps.send(json.dumps({"type": "echo", "data": "alive"}))
        assert json.loads(await keeps.recv()) == {"type": "echo", "data": "alive"}
        assert time.time() >= first["exp"]
        await ended_within(keeps, time.perf_counter(), "expired")
        assert time.time() >= again["exp"]


async def test_cookies_only_from_an_allowed_origin(tmp_path: Path) -> None:
    env = {"JWT_TOKEN_LOCATION": "headers,cookies", "CORS_ALLOWED_ORIGINS": ORIGIN}
    with Server(tmp_path / "instance", env=env) as server:
        pair = await session(server.url)
        cookie = {"Cookie": f"access_token_cookie={pair['access_token']}"}
        async with connect(
            ws_url(server.url),
            additional_headers=cookie,
            origin=Origin(ORIGIN),
            open_timeout=WAIT,
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
        for origin in ("https://evil.example", None):
            with pytest.raises(InvalidStatus) as caught:
                await connect(
                    ws_url(server.url),
                    additional_headers=cookie,
                    origin=origin,  # type: ignore[arg-type]
                    open_timeout=WAIT,
                )
            assert caught.value.response.status_code == 401
            assert "Origin" in json.loads(caught.value.response.body)["msg"]


def readme_snippet() -> str:
    """The documented Python client for /ws (docs/websockets.md)."""
    readme = (ROOT / "docs" / "websockets.md").read_text(encoding="utf-8")
    section = readme.split("# A WebSocket that lives as long as its token", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_readme_python_client_runs_as_written(two_workers: Server) -> None:
    pair = await session(two_workers.url, unique_name())
    script = readme_snippet()
    assert 'connect("ws://localhost:8000/ws"' in script and "main(sys.argv[1])" in script
    script = script.replace("ws://localhost:8000/ws", ws_url(two_workers.url))
    # Run as the page says: the token is the script's one argument.
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, pair["access_token"], stdout=asyncio.subprocess.PIPE
    )
    assert client.stdout is not None
    try:
        ready = await asyncio.wait_for(client.stdout.readline(), WAIT)
        echo = await asyncio.wait_for(client.stdout.readline(), WAIT)
        async with httpx.AsyncClient(base_url=two_workers.url, timeout=60) as http:
            response = await http.post("/logout", headers=bearer(pair["access_token"]))
            assert response.status_code == 200
        rest, _ = await asyncio.wait_for(client.communicate(), WAIT)
    finally:
        if client.returncode is None:
            client.kill()
            await client.wait()
    assert client.returncode == 0
    assert "'type': 'ready'" in ready.decode()
    assert echo.decode().strip() == "{'type': 'echo', 'data': 'hello'}"
    assert rest.decode().splitlines() == [
        '{"type":"revoked","msg":"Token has been revoked"}',
        "4401 Token has been revoked",
    ]


# -- no task outlives its socket (Hypercorn in this process) ------------------------------


@pytest.fixture
async def in_process(tmp_path: Path) -> AsyncIterator[tuple[str, Any]]:
    app = install_worker_hooks(create_app(make_config(tmp_path, JWT_ACCESS_TOKEN_EXPIRES=5)))
    config = Config()
    port = free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.graceful_timeout = 1
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
    try:
        yield base, app
    finally:
        stop.set()
        await asyncio.wait_for(server, WAIT)


async def quiet() -> int:
    """The number of tasks in this loop once it has stayed the same for a moment."""
    last, steady = len(asyncio.all_tasks()), 0
    async with asyncio.timeout(WAIT):
        while steady < 10:
            await asyncio.sleep(0.02)
            now = len(asyncio.all_tasks())
            steady, last = (steady + 1 if now == last else 0), now
    return last


@pytest.mark.serial  # its tokens live 5 s, across the whole test
async def test_no_task_outlives_its_socket(in_process: tuple[str, Any]) -> None:
    base, app = in_process
    pair = await session(base)
    ws, _ = await open_socket(base, pair["access_token"])  # warm-up: first of everything
    await ws.close()
    await quiet()
    before = asyncio.all_tasks()

    # The client goes away, cleanly and not.
    token = (await session(base))["access_token"]
    clean = [(await open_socket(base, token))[0] for _ in range(5)]
    await asyncio.gather(*(ws.close() for ws in clean))
    abrupt = [(await open_socket(base, token))[0] for _ in range(5)]
    for ws in abrupt:
        ws.transport.abort()
    # A bad or missing first message.
    for first in ({"type": "auth", "token": "nope"}, {"type": "echo"}):
        async with connect(ws_url(base)) as ws:
            await ws.send(json.dumps(first))
            assert (await ending(ws))[1] == 4401
    # Revoked.
    pair = await session(base)
    revoked = [(await open_socket(base, pair["access_token"]))[0] for _ in range(5)]
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        response = await client.post("/logout", headers=bearer(pair["access_token"]))
        assert response.status_code == 200
    for ws in revoked:
        assert (await ending(ws))[1:] == (4401, "Token has been revoked")
    # Expired.
    token = (await session(base))["access_token"]
    expiring = [(await open_socket(base, token))[0] for _ in range(5)]
    for ws in expiring:
        assert (await ending(ws))[1:] == (4401, "Token has expired")

    # Every task the sockets started (Hypercorn's, Quart's, the views') finishes.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT):
            while asyncio.all_tasks() - before:
                await asyncio.sleep(0.02)
    left = [task.get_coro() for task in asyncio.all_tasks() - before]
    assert left == []
    assert len(get_registry(app)) == 0
