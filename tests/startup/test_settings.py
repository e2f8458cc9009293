"""Settings: environment parsing and the generated, shared, persisted secret."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from quart_app import create_app
from quart_app.startup.settings import SettingsError, load_settings, resolve_secret


def test_environment_values_take_the_type_of_their_default(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "INSTANCE_PATH": str(tmp_path),
            "JWT_ACCESS_TOKEN_EXPIRES": "60",
            "REVOCATION_SYNC_INTERVAL": "0.5",
            "RATELIMIT_ENABLED": "false",
            "JWT_REQUIRED_CLAIMS": "exp, sub,,jti",
        }
    )
    assert settings["JWT_ACCESS_TOKEN_EXPIRES"] == 60
    assert settings["JWT_REQUIRED_CLAIMS"] == ("exp", "sub", "jti")
    assert settings["REVOCATION_SYNC_INTERVAL"] == 0.5
    assert settings["RATELIMIT_ENABLED"] is False
    assert settings["DATABASE_URL"] == f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    assert settings["MAX_CONTENT_LENGTH"] == 64 * 1024


def test_overrides_beat_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        {"JWT_ACCESS_TOKEN_EXPIRES": 5},
        environ={"INSTANCE_PATH": str(tmp_path), "JWT_ACCESS_TOKEN_EXPIRES": "60"},
    )
    assert settings["JWT_ACCESS_TOKEN_EXPIRES"] == 5


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="JWT_ACCESS_TOKEN_EXPIRES"):
        load_settings(environ={"JWT_ACCESS_TOKEN_EXPIRES": "soon"})


def test_generated_secret_is_private_and_stable(tmp_path: Path) -> None:
    settings = load_settings({"INSTANCE_PATH": str(tmp_path)}, environ={})
    first = resolve_secret(settings)
    second = resolve_secret(settings)
    assert first == second
    assert len(first) >= 64
    path = tmp_path / "jwt-secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_concurrent_workers_agree_on_one_generated_secret(tmp_path: Path) -> None:
    settings = load_settings({"INSTANCE_PATH": str(tmp_path)}, environ={})
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: resolve_secret(settings), range(32)))
    assert len(secrets) == 1
    leftovers = [name for name in os.listdir(tmp_path) if name.startswith(".")]
    assert leftovers == []


def test_short_configured_secret_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="at least 32"):
        create_app({"INSTANCE_PATH": str(tmp_path), "JWT_SECRET_KEY": "too-short"})


def test_configured_secret_is_used_and_not_written(tmp_path: Path) -> None:
    secret = "s" * 40
    app = create_app({"INSTANCE_PATH": str(tmp_path), "JWT_SECRET_KEY": secret})
    assert app.config["JWT_SECRET_KEY"] == secret
    assert not (tmp_path / "jwt-secret.key").exists()


async def test_responses_are_compact_sorted_json_from_orjson(tmp_path: Path) -> None:
    import orjson

    app = create_app({"INSTANCE_PATH": str(tmp_path), "JWT_SECRET_KEY": "s" * 40})
    async with app.app_context():
        from quart import jsonify

        body = await jsonify({"b": 1, "a": [1, 2]}).get_data()
    assert body == b'{"a":[1,2],"b":1}\n'
    assert orjson.loads(body) == {"a": [1, 2], "b": 1}


@pytest.mark.parametrize(
    ("setting", "value", "line"),
    [
        (
            "JWT_TOKEN_LOCATION",
            ["headers", "body"],
            'JWT_TOKEN_LOCATION can only contain "headers", "cookies", "query_string", or "json"',
        ),
        ("JWT_HEADER_NAME", "", "JWT_ACCESS_HEADER_NAME cannot be empty"),
        (
            "JWT_REFRESH_TOKEN_EXPIRES",
            "a month",
            "must be able to add JWT_REFRESH_TOKEN_EXPIRES to datetime.datetime",
        ),
    ],
)
def test_a_bad_jwt_setting_stops_start_up(
    tmp_path: Path, setting: str, value: object, line: str
) -> None:
    """The extension raises these only when the setting is used (as FJE); the service
    checks them before it starts."""
    config = {"INSTANCE_PATH": str(tmp_path), "JWT_SECRET_KEY": "s" * 40, setting: value}
    with pytest.raises(SettingsError) as raised:
        create_app(config)
    assert raised.value.problems == [line]


def test_verified_token_cache_size_is_a_setting(tmp_path: Path) -> None:
    from quart_app.jwt import get_manager
    from quart_app.startup.preflight import preflight

    environ = {"INSTANCE_PATH": str(tmp_path), "JWT_VERIFIED_CACHE_SIZE": "250"}
    assert load_settings(environ=environ)["JWT_VERIFIED_CACHE_SIZE"] == 250
    app = create_app({"INSTANCE_PATH": str(tmp_path), "JWT_VERIFIED_CACHE_SIZE": 250})
    assert get_manager(app).config.verified_cache_size == 250
    with pytest.raises(SettingsError, match="JWT_VERIFIED_CACHE_SIZE must be at least 0"):
        preflight(environ={**environ, "JWT_VERIFIED_CACHE_SIZE": "-1"})
