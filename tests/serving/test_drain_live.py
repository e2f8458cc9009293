"""A worker's drain under the supervisor (``python -m quart_app.serving``, 2 workers): what a
request still running at the deadline is answered, and what an open WebSocket is told.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.fault_support import PATIENCE, assert_unavailable, credentials, env_for
from tests.helpers.faultproxy import FaultProxy
from tests.helpers.live import Server
from tests.helpers.ws_client import ending, open_socket, session

pytestmark = pytest.mark.live

SERVE = [sys.executable, "-m", "quart_app.serving"]


def test_requests_cut_by_the_drain_deadline_get_503_with_retry_after(
    tmp_path: Path, pg_proxy: tuple[FaultProxy, str]
) -> None:
    """Registrations stuck on a hung database at SIGTERM (graceful timeout 2 s, operation
    timeout 60 s): each is rolled back and answered 503, none gets Hypercorn's 500.
    """
    proxy, url = pg_proxy
    env = env_for(url, DATABASE_CREATE_TABLES="false", DATABASE_OPERATION_TIMEOUT="60")
    with Server(tmp_path / "instance", workers=2, env=env, launcher=SERVE) as server:
        assert server.process is not None
        process = server.process

        async def stuck_then_stopped() -> list[httpx.Response | BaseException]:
            async with httpx.AsyncClient(base_url=server.url, timeout=PATIENCE) as client:
                proxy.hang()
                calls = [
                    asyncio.ensure_future(client.post("/register", json=credentials(f"cut{n}")))
                    for n in range(8)
                ]
                await asyncio.sleep(1.0)  # every one reached a worker and waits on the database
                process.send_signal(signal.SIGTERM)
                return await asyncio.gather(*calls, return_exceptions=True)

        answers = asyncio.run(stuck_then_stopped())
        for answer in answers:
            assert isinstance(answer, httpx.Response), answer
            assert_unavailable(answer)
        assert process.wait(timeout=PATIENCE) == 0
        proxy.restore()
    text = (server.log_path).read_text(errors="replace")
    assert "answered 503" in text


def test_websockets_get_1001_at_the_start_of_a_drain_which_does_not_wait_for_them(
    tmp_path: Path,
) -> None:
    server = Server(tmp_path / "instance", workers=2, launcher=SERVE)
    grace = server.args.index("--graceful-timeout") + 1
    server.args[grace] = "60"  # a drain that waited for the socket would take a minute
    with server:
        assert server.process is not None
        process = server.process

        async def open_then_stop() -> tuple[int | None, str | None, float]:
            pair = await session(server.url)
            ws, _ready = await open_socket(server.url, pair["access_token"])
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            _last, code, reason = await ending(ws)
            return code, reason, time.monotonic() - started

        code, reason, _seconds = asyncio.run(open_then_stop())
        assert (code, reason) == (1001, "going away")
        # The whole stop ends long before the 60 s grace period.
        assert process.wait(timeout=PATIENCE) == 0
