"""TOTP and recovery codes through the app: enrolment, the login's second step, single
use, lockout counting, freshness; on both storage profiles (``backend``)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import jwt
import pyotp
import pytest
from cryptography.fernet import Fernet
from quart import Quart
from sqlalchemy import select

from quart_app.accounts.mfa_crypto import KEY_FILE, SecretCipher, cipher_from_settings
from quart_app.services import services
from quart_app.startup.settings import SettingsError
from quart_app.store.models import RecoveryCode, TotpFactor
from tests.helpers.support import Client, bearer, login, register

PASSWORD = {"username": "alice", "password": "correct-horse"}


def code_at(secret: str, offset_steps: int = 0) -> str:
    """The code of the step ``offset_steps`` from now. Enrolment confirms with the current
    step and logins use the next one: steps that stay within the tolerance even when a
    step boundary passes during the test."""
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


async def enrol(client: Client, access: str) -> tuple[str, list[str]]:
    """Turn TOTP on for the token's user: its secret and recovery codes."""
    response = await client.post("/me/mfa/totp", headers=bearer(access))
    assert response.status_code == 200, await response.get_data(as_text=True)
    body = await response.get_json()
    secret = body["secret"]
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert pyotp.parse_uri(body["otpauth_uri"]).secret == secret
    response = await client.post(
        "/me/mfa/totp/confirm", json={"code": code_at(secret, 0)}, headers=bearer(access)
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    codes = (await response.get_json())["recovery_codes"]
    return secret, codes


async def mfa_token(client: Client) -> str:
    response = await client.post("/login", json=PASSWORD)
    assert response.status_code == 401
    body = await response.get_json()
    assert body["msg"] == "MFA required"
    assert body["methods"] == ["totp", "recovery_code"]
    return str(body["mfa_token"])


@pytest.fixture
async def mfa_user(client: Client, backend: str) -> dict[str, Any]:
    await register(client)
    tokens = await login(client)
    secret, codes = await enrol(client, tokens["access_token"])
    return {"secret": secret, "codes": codes, "tokens": tokens}


async def test_enrolment_confirm_and_status(client: Client, mfa_user: dict[str, Any]) -> None:
    codes = mfa_user["codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    access = mfa_user["tokens"]["access_token"]
    status = await (await client.get("/me/mfa", headers=bearer(access))).get_json()
    assert status == {"totp": True, "recovery_codes_left": 10, "passkeys": 0}
    again = await client.post("/me/mfa/totp", headers=bearer(access))
    assert again.status_code == 409
    assert await again.get_json() == {"msg": "MFA already enabled"}


async def test_confirm_refuses_a_wrong_code(client: Client, backend: str) -> None:
    await register(client)
    access = (await login(client))["access_token"]
    secret = (await (await client.post("/me/mfa/totp", headers=bearer(access))).get_json())[
        "secret"
    ]
    wrong = f"{(int(code_at(secret)) + 1) % 1_000_000:06d}"
    response = await client.post(
        "/me/mfa/totp/confirm", json={"code": wrong}, headers=bearer(access)
    )
    assert response.status_code == 400
    assert await response.get_json() == {"msg": "Invalid code"}
    status = await (await client.get("/me/mfa", headers=bearer(access))).get_json()
    assert status["totp"] is False
    # Still pending: the password alone logs in.
    assert (await client.post("/login", json=PASSWORD)).status_code == 200


async def test_enrolment_needs_a_fresh_token(client: Client, backend: str) -> None:
    await register(client)
    refresh = (await login(client))["refresh_token"]
    pair = await (await client.post("/token/refresh", headers=bearer(refresh))).get_json()
    response = await client.post("/me/mfa/totp", headers=bearer(pair["access_token"]))
    assert response.status_code == 401
    assert await response.get_json() == {"msg": "Fresh token required"}


async def test_login_with_totp_gives_a_fresh_pair_and_a_code_works_once(
    client: Client, mfa_user: dict[str, Any]
) -> None:
    secret = mfa_user["secret"]
    code = code_at(secret, 1)
    token = await mfa_token(client)
    response = await client.post("/login/mfa", json={"mfa_token": token, "code": code})
    assert response.status_code == 200, await response.get_data(as_text=True)
    pair = await response.get_json()
    assert jwt.decode(pair["access_token"], options={"verify_signature": False})["fresh"] is True
    assert (await client.get("/protected", headers=bearer(pair["access_token"]))).status_code == 200
    # The mfa_token is used up.
    again = await client.post("/login/mfa", json={"mfa_token": token, "code": code_at(secret, 1)})
    assert again.status_code == 401
    assert await again.get_json() == {"msg": "Invalid or expired MFA token"}
    # The same code on a new login: a replay.
    replay = await client.post(
        "/login/mfa", json={"mfa_token": await mfa_token(client), "code": code}
    )
    assert replay.status_code == 401
    assert await replay.get_json() == {"msg": "Invalid code"}
    # So is an earlier step's code.
    older = await client.post(
        "/login/mfa", json={"mfa_token": await mfa_token(client), "code": code_at(secret, 0)}
    )
    assert older.status_code == 401


async def test_recovery_codes_are_single_use_and_regenerable(
    client: Client, mfa_user: dict[str, Any]
) -> None:
    first, second = mfa_user["codes"][:2]
    token = await mfa_token(client)
    response = await client.post("/login/mfa", json={"mfa_token": token, "recovery_code": first})
    assert response.status_code == 200
    access = (await response.get_json())["access_token"]
    again = await client.post(
        "/login/mfa", json={"mfa_token": await mfa_token(client), "recovery_code": first}
    )
    assert again.status_code == 401
    assert await again.get_json() == {"msg": "Invalid code"}
    status = await (await client.get("/me/mfa", headers=bearer(access))).get_json()
    assert status["recovery_codes_left"] == 9
    # A recovery code in the "code" field works too (not six digits).
    response = await client.post(
        "/login/mfa", json={"mfa_token": await mfa_token(client), "code": second.upper()}
    )
    assert response.status_code == 200
    fresh = await client.post("/me/mfa/recovery-codes", headers=bearer(access))
    assert fresh.status_code == 200
    new_codes = (await fresh.get_json())["recovery_codes"]
    assert len(new_codes) == 10 and not set(new_codes) & set(mfa_user["codes"])
    old = await client.post(
        "/login/mfa",
        json={"mfa_token": await mfa_token(client), "recovery_code": mfa_user["codes"][5]},
    )
    assert old.status_code == 401
    new = await client.post(
        "/login/mfa", json={"mfa_token": await mfa_token(client), "recovery_code": new_codes[0]}
    )
    assert new.status_code == 200


async def test_wrong_codes_lock_the_account(app_factory: Any, backend: str) -> None:
    app: Quart = app_factory(LOGIN_LOCKOUT_THRESHOLD=3, LOGIN_LOCKOUT_BASE_SECONDS=60)
    async with app.test_app():
        client = app.test_client()
        await register(client)
        secret, _ = await enrol(client, (await login(client))["access_token"])
        token = await mfa_token(client)  # the password step counts until the code succeeds
        wrong = f"{(int(code_at(secret)) + 500_000) % 1_000_000:06d}"
        statuses = []
        for _ in range(4):
            response = await client.post("/login/mfa", json={"mfa_token": token, "code": wrong})
            statuses.append(response.status_code)
        assert statuses == [401, 401, 429, 429]
        locked = await client.post(
            "/login/mfa", json={"mfa_token": token, "code": code_at(secret, 1)}
        )
        assert locked.status_code == 429
        assert (await client.post("/login", json=PASSWORD)).status_code == 429


async def test_concurrent_wrong_codes_are_counted_atomically(
    app_factory: Any, backend: str
) -> None:
    threshold = 5
    app: Quart = app_factory(LOGIN_LOCKOUT_THRESHOLD=threshold, LOGIN_LOCKOUT_BASE_SECONDS=60)
    async with app.test_app():
        client = app.test_client()
        await register(client)
        secret, _ = await enrol(client, (await login(client))["access_token"])
        token = await mfa_token(client)
        wrong = f"{(int(code_at(secret)) + 500_000) % 1_000_000:06d}"
        responses = await asyncio.gather(
            *(
                client.post("/login/mfa", json={"mfa_token": token, "code": wrong})
                for _ in range(20)
            )
        )
        statuses = sorted(r.status_code for r in responses)
        # The password step took one of the threshold's checks.
        assert statuses.count(401) == threshold - 1, statuses
        assert statuses.count(429) == 20 - (threshold - 1), statuses


async def test_disable_needs_a_fresh_token_and_a_code(
    client: Client, mfa_user: dict[str, Any]
) -> None:
    secret = mfa_user["secret"]
    refresh = mfa_user["tokens"]["refresh_token"]
    stale = (await (await client.post("/token/refresh", headers=bearer(refresh))).get_json())[
        "access_token"
    ]
    response = await client.delete(
        "/me/mfa/totp", json={"code": code_at(secret, 1)}, headers=bearer(stale)
    )
    assert response.status_code == 401
    assert await response.get_json() == {"msg": "Fresh token required"}
    access = mfa_user["tokens"]["access_token"]
    wrong = await client.delete("/me/mfa/totp", json={"code": "000000"}, headers=bearer(access))
    if code_at(secret) != "000000":
        assert wrong.status_code == 400
    ok = await client.delete(
        "/me/mfa/totp", json={"code": code_at(secret, 1)}, headers=bearer(access)
    )
    assert ok.status_code == 200
    assert await ok.get_json() == {"msg": "MFA disabled"}
    assert (await client.post("/login", json=PASSWORD)).status_code == 200
    status = await (await client.get("/me/mfa", headers=bearer(access))).get_json()
    assert status == {"totp": False, "recovery_codes_left": 0, "passkeys": 0}


async def test_login_mfa_refuses_unknown_tokens_and_bad_bodies(
    client: Client, backend: str
) -> None:
    response = await client.post("/login/mfa", json={"mfa_token": "nope", "code": "123456"})
    assert response.status_code == 401
    assert await response.get_json() == {"msg": "Invalid or expired MFA token"}
    both = await client.post(
        "/login/mfa", json={"mfa_token": "x", "code": "123456", "recovery_code": "abc"}
    )
    assert both.status_code == 400
    assert (await client.post("/login/mfa", json={"mfa_token": "x"})).status_code == 400


async def test_secrets_are_encrypted_at_rest_and_keys_rotate(
    app: Quart, client: Client, mfa_user: dict[str, Any]
) -> None:
    secret = mfa_user["secret"]
    db = services(app).db
    async with db.session() as session:
        stored = await session.scalar(select(TotpFactor.secret))
        hashes = list(await session.scalars(select(RecoveryCode.code_hash)))
    assert stored is not None and secret not in stored
    assert not {code.replace("-", "") for code in mfa_user["codes"]} & set(hashes)
    old = cipher_from_settings(app.config)
    assert old.decrypt(stored) == secret
    key_file = Path(app.config["INSTANCE_PATH"]) / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    # Rotation: a new key first, the old one after it; re-encrypted rows need only the new.
    new_key = Fernet.generate_key()
    old_key = key_file.read_bytes().strip()
    both = SecretCipher([new_key, old_key])
    assert both.decrypt(stored) == secret
    rotated = both.rotate(stored)
    assert SecretCipher([new_key]).decrypt(rotated) == secret


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("MFA_ENCRYPTION_KEY", "short", "MFA_ENCRYPTION_KEY: each comma-separated key"),
        ("WEBAUTHN_RP_ID", "https://example.com", "WEBAUTHN_RP_ID must be a domain name"),
        ("WEBAUTHN_ORIGINS", "example.com", "WEBAUTHN_ORIGINS: 'example.com' is not an origin"),
        ("WEBAUTHN_ORIGINS", "https://evil.test", "is not on WEBAUTHN_RP_ID 'localhost'"),
    ],
)
def test_bad_second_factor_settings_stop_start_up(
    app_factory: Any, setting: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        app_factory(**{setting: value})


async def test_second_factor_events_are_recorded(client: Client, mfa_user: dict[str, Any]) -> None:
    token = await mfa_token(client)
    wrong = await client.post("/login/mfa", json={"mfa_token": token, "code": "not-a-code"})
    assert wrong.status_code == 401
    used = await client.post(
        "/login/mfa", json={"mfa_token": token, "recovery_code": mfa_user["codes"][0]}
    )
    assert used.status_code == 200
    access = (await used.get_json())["access_token"]
    regenerated = await client.post("/me/mfa/recovery-codes", headers=bearer(access))
    assert regenerated.status_code == 200
    listed = await (await client.get("/me/events", headers=bearer(access))).get_json()
    names = [event["event"] for event in listed]
    for name in (
        "mfa_enrolment_started",
        "mfa_enabled",
        "mfa_required",
        "mfa_code_rejected",
        "mfa_recovery_code_used",
        "mfa_recovery_codes_regenerated",
    ):
        assert name in names, names
    assert names.index("mfa_recovery_codes_regenerated") < names.index("mfa_recovery_code_used")


async def test_a_password_change_meanwhile_voids_the_mfa_login(
    client: Client, mfa_user: dict[str, Any]
) -> None:
    token = await mfa_token(client)
    changed = await client.put(
        "/me/password",
        json={"old_password": "correct-horse", "new_password": "another-horse-9"},
        headers=bearer(mfa_user["tokens"]["access_token"]),
    )
    assert changed.status_code == 200
    response = await client.post(
        "/login/mfa", json={"mfa_token": token, "code": code_at(mfa_user["secret"], 1)}
    )
    assert response.status_code == 401
    assert await response.get_json() == {"msg": "Bad username or password"}


@pytest.mark.parametrize("path", ["/login/mfa", "/webauthn/login/begin", "/webauthn/login/finish"])
async def test_second_factor_logins_are_throttled_per_address(app_factory: Any, path: str) -> None:
    app: Quart = app_factory(RATELIMIT_AUTH_LIMIT=3, RATELIMIT_AUTH_PERIOD=60)
    async with app.test_app():
        client = app.test_client()
        statuses = [
            (
                await client.post(path, json={"x": 1}, scope_base={"client": ("10.0.0.9", 4000)})
            ).status_code
            for _ in range(4)
        ]
        assert 429 not in statuses[:3] and statuses[3] == 429
        other = await client.post(path, json={"x": 1}, scope_base={"client": ("10.0.0.10", 4000)})
        assert other.status_code != 429
