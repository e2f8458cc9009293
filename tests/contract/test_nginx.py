"""A real nginx in front: auth_request to /auth/verify guards an upstream (live processes).

nginx runs with the recipe files of docs/gateways.md (``deploy/nginx/``), its own prefix and config
in a temp directory, on loopback; quart_app runs under Hypercorn with two workers. The
Traefik and Envoy recipes, which have no Debian package to run them, are parsed and
checked for the keys that make them work.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers.debian import ensure_tool
from tests.helpers.dpop_proofs import ProofKey
from tests.helpers.live import Server
from tests.helpers.support import SECRET

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.nginx import Nginx, nginx_binary  # noqa: E402

pytestmark = pytest.mark.live
X_AUTH = ["X-Auth-Subject", "X-Auth-Username", "X-Auth-Token-Id", "X-Auth-Expires"]


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    ensure_tool(nginx_binary, "nginx")
    base = tmp_path_factory.mktemp("nginx-front")
    server = Server(base / "instance", workers=2, env={"JWT_SECRET_KEY": SECRET})
    server.start()
    try:
        with Nginx(base / "nginx", f"127.0.0.1:{server.port}") as nginx:
            yield nginx
    finally:
        server.stop()


async def session(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    body = {"username": name, "password": "correct-horse"}
    registered = await client.post("/register", json=body)
    assert registered.status_code == 201, registered.text
    logged_in = await client.post("/login", json=body)
    assert logged_in.status_code == 200, logged_in.text
    return logged_in.json()  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_upstream_is_reached_only_with_a_valid_token(front: Nginx) -> None:
    async with httpx.AsyncClient(base_url=front.base_url, timeout=10) as client:
        pair = await session(client, "alice")
        ok = await client.get("/api/orders", headers=bearer(pair["access_token"]))
        assert ok.status_code == 200, ok.text
        fields = dict(item.split("=", 1) for item in ok.text.split())
        assert fields["subject"] == "1" and fields["username"] == "alice"
        assert len(fields["token_id"]) == 36 and int(fields["expires"]) > time.time()

        missing = await client.get("/api/orders")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        assert "subject=" not in missing.text

        for headers, error in (
            ({"Authorization": "Bearer"}, "invalid_request"),
            (bearer("not-a-jwt"), "invalid_token"),
            (bearer(pair["refresh_token"]), "invalid_token"),
        ):
            denied = await client.post("/api/orders", headers=headers, content=b"{}")
            assert denied.status_code == 401, denied.text
            assert denied.headers["WWW-Authenticate"].startswith(f'Bearer error="{error}"')
            assert "subject=" not in denied.text


async def test_client_supplied_auth_headers_never_reach_the_upstream(front: Nginx) -> None:
    async with httpx.AsyncClient(base_url=front.base_url, timeout=10) as client:
        pair = await session(client, "mallory")
        forged = {name: "forged" for name in X_AUTH}
        ok = await client.get("/api/x", headers={**forged, **bearer(pair["access_token"])})
        assert ok.status_code == 200
        assert "forged" not in ok.text and "username=mallory" in ok.text
        assert (await client.get("/api/x", headers=forged)).status_code == 401


async def test_concurrent_requests_and_revocation_on_every_worker(front: Nginx) -> None:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=front.base_url, timeout=30, limits=limits) as client:
        pair = await session(client, "bob")
        other = await session(client, "carol")
        headers = bearer(pair["access_token"])

        async def burst(sent: dict[str, str], count: int = 200) -> list[int]:
            answers = await asyncio.gather(
                *(client.get("/api/r", headers=sent) for _ in range(count))
            )
            return [a.status_code for a in answers]

        async def refused_everywhere(sent: dict[str, str]) -> None:
            # Revocation reaches the other worker within its sync interval: poll with
            # bursts spread over both workers until every answer is a refusal.
            deadline = time.monotonic() + 15
            while set(await burst(sent, 20)) != {401}:
                assert time.monotonic() < deadline, "a revoked token kept passing"
                await asyncio.sleep(0.1)
            assert set(await burst(sent)) == {401}

        assert set(await burst(headers)) == {200}
        logout = await client.post("/logout", headers=headers)
        assert logout.status_code == 200
        await refused_everywhere(headers)
        assert set(await burst(bearer(other["access_token"]), 50)) == {200}

        # RFC 7009 revocation of a refresh token takes its access token along.
        revoked = await client.post(
            "/oauth/revoke",
            content=f"token={other['refresh_token']}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert revoked.status_code == 200 and revoked.content == b""
        await refused_everywhere(bearer(other["access_token"]))


def test_traefik_recipe_forwards_the_claims() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "traefik" / "dynamic.yml").read_text())
    auth = config["http"]["middlewares"]["quart-app-auth"]["forwardAuth"]
    assert auth["address"].endswith("/auth/verify")
    assert auth["authResponseHeaders"] == X_AUTH
    router = config["http"]["routers"]["api"]
    assert router["middlewares"] == ["quart-app-auth"]
    assert router["service"] in config["http"]["services"]


def test_envoy_recipe_asks_auth_verify_and_forwards_the_claims() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "envoy" / "envoy.yaml").read_text())
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    filters = manager["http_filters"]
    assert [f["name"] for f in filters] == [
        "envoy.filters.http.ext_authz",
        "envoy.filters.http.router",
    ]
    ext_authz = filters[0]["typed_config"]
    assert ext_authz["failure_mode_allow"] is False
    service = ext_authz["http_service"]
    assert service["path_prefix"] == "/auth/verify"
    clusters = {c["name"] for c in config["static_resources"]["clusters"]}
    assert service["server_uri"]["cluster"] in clusters
    forwarded = service["authorization_response"]["allowed_upstream_headers"]["patterns"]
    assert [p["exact"] for p in forwarded] == [name.lower() for name in X_AUTH]
    sent = service["authorization_request"]["allowed_headers"]["patterns"]
    assert {"authorization", "dpop", "x-forwarded-proto"} <= {p["exact"] for p in sent}
    requested = service["authorization_request"]["allowed_headers"]["patterns"]
    assert {"exact": "authorization"} in requested


async def test_dpop_bound_tokens_through_nginx(front: Nginx) -> None:
    """A bound token passes nginx only with a proof naming the client's request (its
    method and URL at nginx, not the subrequest's), once."""
    key = ProofKey("ES256")
    base = front.base_url
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        body = {"username": "dora", "password": "correct-horse"}
        assert (await client.post("/register", json=body)).status_code == 201
        # Logged in at the service itself (nginx's plain proxy_pass to it rewrites Host;
        # a deployment sets PUBLIC_URL for that), used through nginx's auth_request.
        service = f"http://{front.backend}"
        login = await client.post(
            f"{service}/login", json=body, headers={"DPoP": key.proof("POST", f"{service}/login")}
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        url = f"{base}/api/orders/7"
        for method in ("GET", "DELETE", "GET"):  # the second GET: the fast path
            proof = key.proof(method, url, token)
            headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
            ok = await client.request(method, "/api/orders/7?page=2", headers=headers)
            assert ok.status_code == 200, ok.text
            assert "username=dora" in ok.text
            replayed = await client.request(method, "/api/orders/7?page=2", headers=headers)
            assert replayed.status_code == 401
            assert 'error="invalid_dpop_proof"' in replayed.headers["WWW-Authenticate"]
        elsewhere = key.proof("GET", f"{base}/api/other", token)
        wrong_url = await client.get(
            "/api/orders/7", headers={"Authorization": f"DPoP {token}", "DPoP": elsewhere}
        )
        assert wrong_url.status_code == 401
        wrong_method = await client.post(
            "/api/orders/7",
            headers={"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", url, token)},
            content=b"{}",
        )
        assert wrong_method.status_code == 401
        as_bearer = await client.get("/api/orders/7", headers=bearer(token))
        assert as_bearer.status_code == 401
        assert as_bearer.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')
