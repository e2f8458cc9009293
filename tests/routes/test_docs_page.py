"""``/docs`` renders the API's operations in a real browser with no network but loopback.

Headless Chromium (Debian's, installed when missing) loads the page from a live server;
the page may only load what the server itself serves (its CSP says so, and the machine's
network is closed anyway), so the operations it lists prove the viewer came from the
server's own files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers.debian import ensure_tool
from tests.helpers.live import Server

pytestmark = pytest.mark.live

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str:
    return ensure_tool(lambda: shutil.which("chromium"), "chromium")


def rendered_dom(browser: str, url: str, profile: Path) -> str:
    """The page's DOM once its scripts ran (virtual time lets them finish, no sleeping)."""
    result = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_docs_page_is_local_and_locked_down(tmp_path: Path) -> None:
    with Server(tmp_path / "instance") as server:
        page = httpx.get(f"{server.url}/docs", timeout=60)
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        for asset in assets:
            assert asset.startswith("/docs/static/"), asset
            assert httpx.get(f"{server.url}{asset}", timeout=60).status_code == 200, asset
        assert httpx.get(f"{server.url}/docs/static/app.py", timeout=60).status_code == 404
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "<script>" not in page.text  # every script is a file the CSP allows
    assert len(assets) >= 3


def test_docs_renders_every_operation_in_chromium(tmp_path: Path) -> None:
    browser = chromium()
    with Server(tmp_path / "instance") as server:
        paths = set(httpx.get(f"{server.url}/openapi.json", timeout=60).json()["paths"])
        dom = rendered_dom(browser, f"{server.url}/docs", tmp_path / "profile")
    shown = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert {"/login", "/register", "/protected", "/token/refresh"} <= shown
    assert shown == paths
