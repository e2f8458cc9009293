"""deploy/nginx/quart_app.conf as a user pastes it: a real nginx runs the file unchanged
but for its two upstream addresses and its port (free ones on loopback), in front of
live Hypercorn (2 workers) and a stand-in protected service.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from benchmarks.nginx import nginx_binary
from tests.helpers.debian import ensure_tool
from tests.helpers.live import ROOT, Server, free_port
from tests.helpers.support import SECRET

pytestmark = pytest.mark.live
RECIPE = ROOT / "deploy" / "nginx" / "quart_app.conf"


class Echo(http.server.BaseHTTPRequestHandler):
    """The protected service: answers with the X-Auth-* headers nginx handed it."""

    def do_GET(self) -> None:
        body = json.dumps({k: v for k, v in self.headers.items() if k.startswith("X-Auth")})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = ensure_tool(nginx_binary, "nginx")
    base = tmp_path_factory.mktemp("nginx-recipe")
    protected = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=protected.serve_forever, daemon=True).start()
    server = Server(base / "instance", workers=2, env={"JWT_SECRET_KEY": SECRET})
    server.start()
    port = free_port()
    recipe = RECIPE.read_text()
    for old, new in (
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{server.port};"),
        ("server 127.0.0.1:9000;", f"server 127.0.0.1:{protected.server_port};"),
        ("listen 8080;", f"listen 127.0.0.1:{port};"),
    ):
        assert recipe.count(old) == 1, old
        recipe = recipe.replace(old, new)
    (base / "quart_app.conf").write_text(recipe)
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(f"{kind}_temp_path {base / kind};\n" for kind in ("client_body", "proxy"))
    (base / "nginx.conf").write_text(
        f"{user}daemon off;\npid {base / 'nginx.pid'};\nerror_log {base / 'error.log'};\n"
        f"events {{}}\nhttp {{\naccess_log off;\n{temp}include {base / 'quart_app.conf'};\n}}\n"
    )
    nginx = subprocess.Popen([str(binary), "-p", str(base), "-c", str(base / "nginx.conf")])
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or nginx.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        server.stop()
        protected.shutdown()


def test_the_api_passes_through_and_app_needs_a_token(site: str) -> None:
    with httpx.Client(base_url=site, timeout=10) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        body = {"username": "alice", "password": "correct-horse"}
        assert client.post("/register", json=body).status_code == 201
        pair = client.post("/login", json=body).json()
        ok = client.get("/app/orders", headers={"Authorization": f"Bearer {pair['access_token']}"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["X-Auth-Username"] == "alice"
        assert ok.json()["X-Auth-Subject"] == "1"


def test_a_refused_token_gets_the_flask_compatible_json(site: str) -> None:
    with httpx.Client(base_url=site, timeout=10) as client:
        missing = client.get("/app/orders")
        assert missing.status_code == 401
        assert missing.headers["content-type"].startswith("application/json")
        assert missing.json() == {"msg": "Missing Authorization Header"}
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        forged = client.get("/app/orders", headers={"Authorization": "Bearer not-a-jwt"})
        assert forged.status_code in (401, 422)
        assert "msg" in forged.json()
