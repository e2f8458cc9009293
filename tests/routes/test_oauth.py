"""RFC 7662 introspection, RFC 7009 revocation and RFC 8414 metadata."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from argon2 import PasswordHasher
from quart import Quart

from quart_app import create_app
from quart_app.jwt import get_manager
from quart_app.security.clients import ClientsSettingError, parse_clients
from quart_app.startup.settings import SettingsError
from tests.helpers.clock import FrozenClock
from tests.helpers.support import Client, bearer, login, register

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ARGON2_SECRET = "hashed-secret"
ARGON2_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(ARGON2_SECRET)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
async def oauth_app(app_factory: Callable[..., Quart]) -> AsyncIterator[Quart]:
    app = app_factory(
        INTROSPECTION_CLIENTS=f"gateway:s3cret-of-the-gateway-at-least-32-chars,api:{ARGON2_HASH}"
    )
    async with app.test_app():
        yield app


async def started(app: Quart) -> tuple[Client, dict[str, Any]]:
    client = app.test_client()
    await register(client)
    return client, await login(client)


async def introspect(
    client: Client,
    token: str,
    who: tuple[str, str] = ("gateway", "s3cret-of-the-gateway-at-least-32-chars"),
) -> Any:
    response = await client.post(
        "/oauth/introspect",
        data=f"token={token}",
        headers={**FORM, **basic(*who)},
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    return await response.get_json()


async def test_active_tokens_are_described(oauth_app: Quart) -> None:
    client, pair = await started(oauth_app)
    access = await introspect(client, pair["access_token"])
    assert access.pop("jti")
    assert isinstance(access.pop("exp"), int) and isinstance(access.pop("iat"), int)
    access.pop("nbf")
    assert access == {
        "active": True,
        "sub": "1",
        "username": "alice",
        "token_type": "access_token",
    }
    refresh = await introspect(client, pair["refresh_token"], ("api", ARGON2_SECRET))
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"


async def test_issuer_and_audience_are_reported(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(
        INTROSPECTION_CLIENTS="gateway:s3cret-of-the-gateway-at-least-32-chars",
        JWT_ENCODE_ISSUER="https://auth.example.com",
        JWT_DECODE_ISSUER="https://auth.example.com",
        JWT_ENCODE_AUDIENCE="api",
        JWT_DECODE_AUDIENCE="api",
    )
    async with app.test_app():
        client, pair = await started(app)
        answer = await introspect(client, pair["access_token"])
        assert answer["iss"] == "https://auth.example.com" and answer["aud"] == "api"
        metadata = await (await client.get("/.well-known/oauth-authorization-server")).get_json()
        assert metadata["issuer"] == "https://auth.example.com"
        assert metadata["introspection_endpoint"] == "https://auth.example.com/oauth/introspect"


@pytest.mark.parametrize(
    "token", ["garbage", "a.b.c", "x" * 9000, "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."]
)
async def test_bad_tokens_are_inactive(oauth_app: Quart, token: str) -> None:
    client = oauth_app.test_client()
    assert await introspect(client, token) == {"active": False}


async def test_revoked_and_expired_tokens_are_inactive(
    app_factory: Callable[..., Quart], frozen_clock: FrozenClock
) -> None:
    app = app_factory(
        INTROSPECTION_CLIENTS="gateway:s3cret-of-the-gateway-at-least-32-chars",
        JWT_ACCESS_TOKEN_EXPIRES=5,
    )
    get_manager(app).clock = frozen_clock
    async with app.test_app():
        client, pair = await started(app)
        other = await login(client)
        assert (
            await client.post("/logout", headers=bearer(pair["access_token"]))
        ).status_code == 200
        assert await introspect(client, pair["access_token"]) == {"active": False}
        assert await introspect(client, pair["refresh_token"]) == {"active": False}
        assert (await introspect(client, other["access_token"]))["active"] is True
        frozen_clock.past_expiry(other["access_token"])
        assert await introspect(client, other["access_token"]) == {"active": False}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("gateway", "wrong"),
        basic("nobody", "s3cret-of-the-gateway-at-least-32-chars"),
        basic("api", "wrong"),
        {"Authorization": "Bearer abc"},
    ],
)
async def test_bad_client_credentials_are_401(oauth_app: Quart, headers: dict[str, str]) -> None:
    response = await oauth_app.test_client().post(
        "/oauth/introspect", data="token=abc", headers={**FORM, **headers}
    )
    assert response.status_code == 401
    assert await response.get_json() == {"msg": "Invalid client credentials"}
    assert response.headers["WWW-Authenticate"] == 'Basic realm="introspection"'


async def test_form_encoded_client_credentials(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(INTROSPECTION_CLIENTS="gate way:p%ss-of-the-gateway-at-least-32-chars")
    async with app.test_app():
        response = await app.test_client().post(
            "/oauth/introspect",
            data="token=abc",
            headers={**FORM, **basic("gate+way", "p%25ss-of-the-gateway-at-least-32-chars")},
        )
        assert response.status_code == 200
        assert await response.get_json() == {"active": False}


async def test_introspection_is_off_without_clients(client: Client) -> None:
    response = await client.post("/oauth/introspect", data="token=abc", headers=FORM)
    assert response.status_code == 404
    assert "msg" in await response.get_json()


@pytest.mark.parametrize("path", ["/oauth/introspect", "/oauth/revoke"])
@pytest.mark.parametrize(
    ("body", "headers", "msg"),
    [
        ('{"token": "abc"}', {"Content-Type": "application/json"}, "Request body must be"),
        ("", FORM, "Missing 'token' parameter"),
        ("token=", FORM, "Missing 'token' parameter"),
        ("token_type_hint=access_token", FORM, "Missing 'token' parameter"),
        ("token=a&token=b", FORM, "Parameter 'token' is given more than once"),
        ("token=%ff", FORM, "Request body is not a valid form"),
        ("token=a&&&=", FORM, "Request body is not a valid form"),
    ],
)
async def test_bad_forms_are_400(
    oauth_app: Quart, path: str, body: str, headers: dict[str, str], msg: str
) -> None:
    response = await oauth_app.test_client().post(
        path,
        data=body,
        headers={**headers, **basic("gateway", "s3cret-of-the-gateway-at-least-32-chars")},
    )
    assert response.status_code == 400
    assert (await response.get_json())["msg"].startswith(msg)


async def test_revoking_a_refresh_token_revokes_its_whole_login(oauth_app: Quart) -> None:
    client, pair = await started(oauth_app)
    other = await login(client)
    response = await client.post(
        "/oauth/revoke", data=f"token={pair['refresh_token']}", headers=FORM
    )
    assert response.status_code == 200 and await response.get_data() == b""
    for token in (pair["access_token"], pair["refresh_token"]):
        assert await introspect(client, token) == {"active": False}
    refreshed = await client.post("/token/refresh", headers=bearer(pair["refresh_token"]))
    assert refreshed.status_code == 401
    protected = await client.get("/protected", headers=bearer(pair["access_token"]))
    assert await protected.get_json() == {"msg": "Token has been revoked"}
    # Another login of the same user is untouched.
    assert (
        await client.get("/protected", headers=bearer(other["access_token"]))
    ).status_code == 200


async def test_revoking_an_access_token_revokes_only_it(oauth_app: Quart) -> None:
    client, pair = await started(oauth_app)
    response = await client.post(
        "/oauth/revoke", data=f"token={pair['access_token']}", headers=FORM
    )
    assert response.status_code == 200
    verify = await client.get("/auth/verify", headers=bearer(pair["access_token"]))
    assert verify.status_code == 401
    assert (await introspect(client, pair["refresh_token"]))["active"] is True


@pytest.mark.parametrize("token", ["unknown", "a.b.c", "x" * 9000])
async def test_revoking_an_unknown_token_is_200_and_empty(client: Client, token: str) -> None:
    response = await client.post(
        "/oauth/revoke", data=f"token={token}&token_type_hint=refresh_token", headers=FORM
    )
    assert response.status_code == 200
    assert await response.get_data() == b""


async def test_metadata_names_every_endpoint(client: Client) -> None:
    response = await client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    document = await response.get_json()
    base = "http://localhost"
    assert document["issuer"] == base
    assert document["jwks_uri"] == f"{base}/.well-known/jwks.json"
    assert document["introspection_endpoint"] == f"{base}/oauth/introspect"
    assert document["revocation_endpoint"] == f"{base}/oauth/revoke"


def test_client_setting_parsing() -> None:
    assert parse_clients(None) == parse_clients("  ") == {}
    long = "x" * 32
    assert parse_clients(f"a:{long}, b:{ARGON2_HASH},c:pbkdf2:sha256:1$s$h") == {
        "a": long,
        "b": ARGON2_HASH,
        "c": "pbkdf2:sha256:1$s$h",
    }
    for bad in ("nocolon", f"a:{long},a:{long}", f":{long}", "a:", "a:x", "a:" + "x" * 31):
        with pytest.raises(ClientsSettingError, match="INTROSPECTION_CLIENTS"):
            parse_clients(bad)


def test_a_bad_client_setting_stops_start_up(tmp_path: Any) -> None:
    from tests.helpers.support import make_config

    with pytest.raises(SettingsError, match=r"^INTROSPECTION_CLIENTS: 'gateway' is not"):
        create_app(make_config(tmp_path, INTROSPECTION_CLIENTS="gateway"))


def test_hash_secret_prints_a_hash_the_setting_accepts(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from quart_app.cli import main

    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    secret = "client-secret-" + "s" * 19
    result = CliRunner().invoke(main, ["hash-secret"], input=f"{secret}\n")
    assert result.exit_code == 0, result.output
    hashed = result.output.strip()
    assert hashed.startswith("$argon2id$")
    assert PasswordHasher().verify(hashed, secret)
    assert parse_clients(f"svc:{hashed}") == {"svc": hashed}
    short = CliRunner().invoke(main, ["hash-secret"], input="client-secret\n")
    assert short.exit_code == 1
    assert "use at least 32" in short.output


def test_a_short_client_secret_stops_start_up_with_one_line(tmp_path: Any) -> None:
    from tests.helpers.support import make_config

    with pytest.raises(SettingsError) as caught:
        create_app(make_config(tmp_path, INTROSPECTION_CLIENTS="gateway:x"))
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(
        "INTROSPECTION_CLIENTS: the secret of client 'gateway' has 1 characters"
    )


async def test_introspection_asks_the_shared_store_too(oauth_app: Quart) -> None:
    """A revocation recorded by another worker, not yet in this worker's mirror."""
    from quart_app.jwt.revocation import Revocation
    from quart_app.services import services

    client, pair = await started(oauth_app)
    jti = (await introspect(client, pair["access_token"]))["jti"]
    assert jti
    await services(oauth_app).revocations.store.add([Revocation("jti", jti, 2**40)])
    assert not services(oauth_app).revocations.mirror.is_revoked({"jti": jti})
    assert await introspect(client, pair["access_token"]) == {"active": False}
