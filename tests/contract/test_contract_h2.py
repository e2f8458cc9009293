"""The whole HTTP contract again, over HTTP/2 + TLS (ALPN) against live Hypercorn.

Every test of tests/contract/test_contract.py runs here once more, with ``client`` speaking
HTTP/2 to Hypercorn serving the test's own app (tests/helpers/tlslive.py); each response is
checked to be HTTP/2 and free of the ``Connection`` header, which HTTP/2 forbids.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from quart import Quart

from tests.contract.test_contract import *  # noqa: F403
from tests.helpers.tlslive import H2Client, client_context, serving, tls_pair


@pytest.fixture
async def client(app: Quart, tmp_path: Path) -> AsyncIterator[H2Client]:
    cert, key = tls_pair(tmp_path)
    async with (
        serving(app, cert, key) as url,
        httpx.AsyncClient(
            http2=True, verify=client_context(cert), base_url=url, timeout=30
        ) as http,
    ):
        yield H2Client(http)
