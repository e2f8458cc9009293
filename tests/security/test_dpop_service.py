"""DPoP and the token endpoint in the service (in-process): binding at /login,
/token/refresh and /oauth/token, bound tokens on /protected (both paths), /auth/verify
with a gateway's forwarded URL, introspection's cnf, client_credentials with CLI-made
clients, RFC 6749 errors, and the metadata."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import jwt
import pytest
from click.testing import CliRunner
from quart import Quart

from quart_app.cli import main
from tests.helpers.dpop_proofs import ProofKey
from tests.helpers.support import Client, register

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BASE = "http://localhost"


@pytest.fixture(scope="module")
def key() -> ProofKey:
    return ProofKey("ES256")


def dpop(key: ProofKey, method: str, path: str, token: str | None = None) -> dict[str, str]:
    headers = {"DPoP": key.proof(method, BASE + path, token)}
    if token is not None:
        headers["Authorization"] = f"DPoP {token}"
    return headers


async def bound_login(client: Client, key: ProofKey) -> dict[str, Any]:
    await register(client)
    response = await client.post(
        "/login",
        json={"username": "alice", "password": "correct-horse"},
        headers=dpop(key, "POST", "/login"),
    )
    assert response.status_code == 200, await response.get_data()
    return dict(await response.get_json())


async def test_login_with_a_proof_binds_both_tokens(
    client: Client, key: ProofKey, backend: str
) -> None:
    pair = await bound_login(client, key)
    assert pair["token_type"] == "DPoP"
    for name in ("access_token", "refresh_token"):
        claims = jwt.decode(pair[name], options={"verify_signature": False})
        assert claims["cnf"] == {"jkt": key.jkt}
    access = pair["access_token"]
    # Twice: the first is Quart's (it fills the cache), the second the fast path's.
    for _ in range(2):
        ok = await client.get("/protected", headers=dpop(key, "GET", "/protected", access))
        assert ok.status_code == 200, await ok.get_data()
    stolen = await client.get("/protected", headers={"Authorization": f"Bearer {access}"})
    assert stolen.status_code == 401
    assert stolen.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')
    replayed = dpop(key, "GET", "/protected", access)
    assert (await client.get("/protected", headers=replayed)).status_code == 200
    again = await client.get("/protected", headers=replayed)
    assert again.status_code == 401
    assert (await again.get_json())["msg"] == "DPoP proof has been used before"


async def test_bound_refresh_needs_a_proof_of_the_same_key(client: Client, key: ProofKey) -> None:
    pair = await bound_login(client, key)
    refresh = pair["refresh_token"]
    thief = ProofKey("EdDSA")
    stolen = await client.post(
        "/token/refresh",
        headers={"Authorization": f"Bearer {refresh}", **dpop(thief, "POST", "/token/refresh")},
    )
    assert stolen.status_code == 401
    bare = await client.post("/token/refresh", headers={"Authorization": f"Bearer {refresh}"})
    assert bare.status_code == 401
    assert (await bare.get_json())["msg"] == "Missing DPoP proof"
    ok = await client.post(
        "/token/refresh",
        headers={"Authorization": f"Bearer {refresh}", **dpop(key, "POST", "/token/refresh")},
    )
    assert ok.status_code == 200, await ok.get_data()
    body = await ok.get_json()
    assert body["token_type"] == "DPoP"
    claims = jwt.decode(body["refresh_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": key.jkt}


async def test_a_bad_proof_at_login_is_400(client: Client, key: ProofKey) -> None:
    await register(client)
    response = await client.post(
        "/login",
        json={"username": "alice", "password": "correct-horse"},
        headers={"DPoP": key.proof("POST", BASE + "/elsewhere")},
    )
    assert response.status_code == 400
    assert "htu does not match" in (await response.get_json())["msg"]


async def test_forward_auth_uses_the_gateway_url(client: Client, key: ProofKey) -> None:
    pair = await bound_login(client, key)
    access = pair["access_token"]
    url = "https://api.example.com/orders/7"
    forwarded = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "api.example.com",
        "X-Original-URI": "/orders/7?page=2",
        "X-Forwarded-Method": "DELETE",
    }
    for _ in range(2):  # Quart, then the fast path
        proof = key.proof("DELETE", url, access)
        headers = {"Authorization": f"DPoP {access}", "DPoP": proof, **forwarded}
        ok = await client.get("/auth/verify", headers=headers)
        assert ok.status_code == 200, await ok.get_data()
    wrong = key.proof("DELETE", "https://api.example.com/orders/8", access)
    refused = await client.get(
        "/auth/verify", headers={"Authorization": f"DPoP {access}", "DPoP": wrong, **forwarded}
    )
    assert refused.status_code == 401
    assert 'error="invalid_dpop_proof"' in refused.headers["WWW-Authenticate"]
    as_bearer = await client.get(
        "/auth/verify", headers={"Authorization": f"Bearer {access}", **forwarded}
    )
    assert as_bearer.status_code == 401
    assert as_bearer.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def run_cli(app: Quart, *args: str) -> Any:
    env = {
        name: str(app.config[name])
        for name in ("DATABASE_URL", "INSTANCE_PATH", "JWT_SECRET_KEY", "ARGON2_MEMORY_COST")
    }
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env)


async def _create_client(app: Quart, name: str) -> str:
    result = await run_cli(app, "create-client", name)
    assert result.exit_code == 0, result.output
    lines: dict[str, str] = dict(
        line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line
    )
    assert lines["client_id"] == name
    return lines["client_secret"]


async def test_client_commands(app: Quart, client: Client) -> None:
    first = await _create_client(app, "reports")
    taken = await run_cli(app, "create-client", "reports")
    assert taken.exit_code == 1 and "already exists" in taken.output
    bad = await run_cli(app, "create-client", "no spaces")
    assert bad.exit_code == 1
    listed = await run_cli(app, "list-clients")
    assert listed.stdout.startswith("reports\tcreated ") and first not in listed.stdout
    rotated = await run_cli(app, "rotate-client-secret", "reports")
    assert rotated.exit_code == 0
    second = rotated.stdout.split("client_secret: ")[1].strip()
    body = "grant_type=client_credentials"
    old = await client.post("/oauth/token", data=body, headers={**FORM, **_basic("reports", first)})
    assert old.status_code == 401
    new = await client.post(
        "/oauth/token", data=body, headers={**FORM, **_basic("reports", second)}
    )
    assert new.status_code == 200
    assert (await run_cli(app, "delete-client", "reports")).exit_code == 0
    gone = await client.post(
        "/oauth/token", data=body, headers={**FORM, **_basic("reports", second)}
    )
    assert gone.status_code == 401
    assert (await run_cli(app, "delete-client", "reports")).exit_code == 1


async def test_client_credentials_grant(
    app: Quart, client: Client, key: ProofKey, backend: str
) -> None:
    secret = await _create_client(app, "billing")
    assert len(secret) >= 32
    body = "grant_type=client_credentials"
    response = await client.post(
        "/oauth/token", data=body, headers={**FORM, **_basic("billing", secret)}
    )
    assert response.status_code == 200, await response.get_data()
    answer = await response.get_json()
    assert answer["token_type"] == "Bearer" and "refresh_token" not in answer
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "billing" and claims["client_id"] == "billing"
    assert response.headers["Cache-Control"] == "no-store"
    # In the form, and DPoP-bound.
    posted = await client.post(
        "/oauth/token",
        data=f"{body}&client_id=billing&client_secret={secret}",
        headers={**FORM, **dpop(key, "POST", "/oauth/token")},
    )
    assert posted.status_code == 200, await posted.get_data()
    bound = await posted.get_json()
    assert bound["token_type"] == "DPoP"
    assert jwt.decode(bound["access_token"], options={"verify_signature": False})["cnf"] == {
        "jkt": key.jkt
    }
    wrong = await client.post(
        "/oauth/token", data=body, headers={**FORM, **_basic("billing", secret[:-1] + "x")}
    )
    assert wrong.status_code == 401
    assert (await wrong.get_json())["error"] == "invalid_client"
    unknown = await client.post(
        "/oauth/token", data=body, headers={**FORM, **_basic("nobody", secret)}
    )
    assert unknown.status_code == 401


async def test_refresh_token_grant_rotates(client: Client, key: ProofKey) -> None:
    pair = await bound_login(client, key)
    body = f"grant_type=refresh_token&refresh_token={pair['refresh_token']}"
    without = await client.post("/oauth/token", data=body, headers=FORM)
    assert without.status_code == 400
    assert (await without.get_json())["error"] == "invalid_dpop_proof"
    ok = await client.post(
        "/oauth/token", data=body, headers={**FORM, **dpop(key, "POST", "/oauth/token")}
    )
    assert ok.status_code == 200, await ok.get_data()
    answer = await ok.get_json()
    assert answer["token_type"] == "DPoP" and answer["refresh_token"]
    reused = await client.post(
        "/oauth/token", data=body, headers={**FORM, **dpop(key, "POST", "/oauth/token")}
    )
    assert reused.status_code == 400
    assert (await reused.get_json())["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("", "invalid_request"),
        ("grant_type=password&username=a&password=b", "unsupported_grant_type"),
        ("grant_type=refresh_token", "invalid_request"),
        ("grant_type=refresh_token&refresh_token=abc", "invalid_grant"),
        ("grant_type=client_credentials", "invalid_client"),
        ("grant_type=a&grant_type=b", "invalid_request"),
    ],
)
async def test_token_endpoint_errors(client: Client, body: str, error: str) -> None:
    response = await client.post("/oauth/token", data=body, headers=FORM)
    assert response.status_code in (400, 401)
    answer = await response.get_json()
    assert answer["error"] == error and answer["error_description"]


async def test_the_address_limit_on_the_token_endpoint_answers_as_rfc_6749(
    app_factory: Any,
) -> None:
    """Over RATELIMIT_AUTH_LIMIT, /oauth/token's 429 is its documented TokenError."""
    app = app_factory(RATELIMIT_AUTH_LIMIT=2)
    async with app.test_app():
        client = app.test_client()
        statuses = []
        for _ in range(3):
            response = await client.post("/oauth/token", data="", headers=FORM)
            statuses.append(response.status_code)
        assert statuses == [400, 400, 429]
        assert await response.get_json() == {
            "error": "invalid_request",
            "error_description": "Too many requests",
        }
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["Cache-Control"] == "no-store"
        # The other limited routes keep the service's own answer.
        for _ in range(3):
            response = await client.post("/login", json={"username": "a", "password": "b"})
        assert response.status_code == 429
        assert await response.get_json() == {"msg": "Too many requests"}


async def test_introspection_returns_cnf(app_factory: Any, key: ProofKey) -> None:
    secret = "g" * 40
    app = app_factory(INTROSPECTION_CLIENTS=f"gateway:{secret}")
    async with app.test_app():
        client = app.test_client()
        pair = await bound_login(client, key)
        response = await client.post(
            "/oauth/introspect",
            data=f"token={pair['access_token']}",
            headers={**FORM, **_basic("gateway", secret)},
        )
        assert (await response.get_json())["cnf"] == {"jkt": key.jkt}


async def test_metadata_never_takes_host_when_configured(app_factory: Any) -> None:
    app = app_factory(PUBLIC_URL="https://auth.example.com")
    async with app.test_app():
        response = await app.test_client().get(
            "/.well-known/oauth-authorization-server", headers={"Host": "evil.example"}
        )
        text = (await response.get_data()).decode()
        assert "evil.example" not in text
        document = await response.get_json()
        assert document["issuer"] == "https://auth.example.com"
        assert document["token_endpoint"] == "https://auth.example.com/oauth/token"
        assert document["grant_types_supported"] == ["refresh_token", "client_credentials"]
        assert "ES256" in document["dpop_signing_alg_values_supported"]


async def test_metadata_from_host_is_not_cached(client: Client) -> None:
    response = await client.get(
        "/.well-known/oauth-authorization-server", headers={"Host": "evil.example"}
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Vary"] == "Host"


async def test_websocket_handshake_with_a_bound_token(client: Client, key: ProofKey) -> None:
    import asyncio
    import json

    from quart.testing.connections import WebsocketResponseError

    pair = await bound_login(client, key)
    access = pair["access_token"]
    async with client.websocket("/ws", headers=dpop(key, "GET", "/ws", access)) as ws:
        ready = json.loads(await asyncio.wait_for(ws.receive(), 10))
        assert ready["type"] == "ready"
    for headers in (
        {"Authorization": f"Bearer {access}"},
        {"Authorization": f"DPoP {access}"},
        dpop(key, "GET", "/elsewhere", access),
    ):
        with pytest.raises(WebsocketResponseError) as caught:
            async with client.websocket("/ws", headers=headers) as ws:
                await ws.receive()
        assert caught.value.response.status_code == 401
        assert caught.value.response.headers["WWW-Authenticate"].startswith("DPoP error=")


async def test_a_bound_token_cannot_authenticate_inside_a_socket(
    client: Client, key: ProofKey
) -> None:
    """An auth message carries no proof: a stolen bound token is useless there too."""
    import asyncio
    import json

    from quart.testing.connections import WebsocketDisconnectError

    from quart_app.jwt import CLOSE_UNAUTHORIZED

    pair = await bound_login(client, key)
    async with client.websocket("/ws") as ws:
        await ws.send(json.dumps({"type": "auth", "token": pair["access_token"]}))
        with pytest.raises(WebsocketDisconnectError) as caught:
            while True:
                await asyncio.wait_for(ws.receive(), 10)
    assert caught.value.args[0] == CLOSE_UNAUTHORIZED


async def test_forward_auth_envoy_style_path(client: Client, key: ProofKey) -> None:
    """Envoy's ext_authz appends the client's path below /auth/verify and keeps its
    method and Host: the proof names that request."""
    pair = await bound_login(client, key)
    access = pair["access_token"]
    for _ in range(2):  # Quart, then the fast path
        proof = key.proof("PUT", "https://shop.example/api/cart", access)
        ok = await client.put(
            "/auth/verify/api/cart",
            headers={
                "Authorization": f"DPoP {access}",
                "DPoP": proof,
                "Host": "shop.example",
                "X-Forwarded-Proto": "https",
            },
        )
        assert ok.status_code == 200, await ok.get_data()
