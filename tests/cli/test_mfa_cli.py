"""``quart-app mfa reset`` and ``mfa rekey``: an admin's recovery path and key rotation."""

from __future__ import annotations

import time
from pathlib import Path

import pyotp
from cryptography.fernet import Fernet
from sqlalchemy import select

from quart_app import create_app
from quart_app.accounts.mfa_crypto import SecretCipher
from quart_app.services import services
from quart_app.store.models import TotpFactor
from tests.helpers.ops_helpers import cli, cli_env
from tests.helpers.support import bearer, login, make_config, register

PASSWORD = {"username": "alice", "password": "correct-horse"}


async def test_mfa_reset_removes_every_second_factor(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    app = create_app(make_config(tmp_path, MFA_ENCRYPTION_KEY=key))
    async with app.test_app():
        client = app.test_client()
        await register(client)
        access = (await login(client))["access_token"]
        secret = (await (await client.post("/me/mfa/totp", headers=bearer(access))).get_json())[
            "secret"
        ]
        code = pyotp.TOTP(secret).at(time.time())
        confirmed = await client.post(
            "/me/mfa/totp/confirm", json={"code": code}, headers=bearer(access)
        )
        assert confirmed.status_code == 200
        assert (await client.post("/login", json=PASSWORD)).status_code == 401

        result = await cli(["mfa", "reset", "ALICE"], cli_env(tmp_path, MFA_ENCRYPTION_KEY=key))
        assert result.exit_code == 0, result.output
        assert result.stdout == (
            "reset the second factors of alice (id 1): TOTP removed, 0 passkey(s) removed\n"
        )
        assert (await client.post("/login", json=PASSWORD)).status_code == 200
        status = await (await client.get("/me/mfa", headers=bearer(access))).get_json()
        assert status == {"totp": False, "recovery_codes_left": 0, "passkeys": 0}

    missing = await cli(["mfa", "reset", "nobody"], cli_env(tmp_path, MFA_ENCRYPTION_KEY=key))
    assert (missing.exit_code, missing.stderr) == (1, "Error: no user 'nobody'\n")


async def test_mfa_rekey_moves_secrets_to_the_new_key(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app = create_app(make_config(tmp_path, MFA_ENCRYPTION_KEY=old))
    async with app.test_app():
        client = app.test_client()
        await register(client)
        access = (await login(client))["access_token"]
        secret = (await (await client.post("/me/mfa/totp", headers=bearer(access))).get_json())[
            "secret"
        ]
    result = await cli(["mfa", "rekey"], cli_env(tmp_path, MFA_ENCRYPTION_KEY=f"{new},{old}"))
    assert (result.exit_code, result.stdout) == (
        0,
        "re-encrypted 1 TOTP secret(s) with the first key\n",
    )
    # Only the new key is needed now: the app runs without the old one.
    app = create_app(make_config(tmp_path, MFA_ENCRYPTION_KEY=new))
    async with app.test_app():
        async with services(app).db.session() as session:
            stored = await session.scalar(select(TotpFactor.secret))
        assert stored is not None
        assert SecretCipher([new.encode()]).decrypt(stored) == secret
        client = app.test_client()
        access = (await login(client))["access_token"]
        code = pyotp.TOTP(secret).at(time.time())
        confirmed = await client.post(
            "/me/mfa/totp/confirm", json={"code": code}, headers=bearer(access)
        )
        assert confirmed.status_code == 200


async def test_a_bad_encryption_key_names_the_setting(tmp_path: Path) -> None:
    result = await cli(["mfa", "rekey"], cli_env(tmp_path, MFA_ENCRYPTION_KEY="not-a-key"))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: MFA_ENCRYPTION_KEY: ")


async def test_a_lost_key_refuses_codes_and_recovery_codes_still_work(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, MFA_ENCRYPTION_KEY=Fernet.generate_key().decode()))
    async with app.test_app():
        client = app.test_client()
        await register(client)
        access = (await login(client))["access_token"]
        secret = (await (await client.post("/me/mfa/totp", headers=bearer(access))).get_json())[
            "secret"
        ]
        code = pyotp.TOTP(secret).at(time.time())
        confirmed = await client.post(
            "/me/mfa/totp/confirm", json={"code": code}, headers=bearer(access)
        )
        codes = (await confirmed.get_json())["recovery_codes"]
    app = create_app(make_config(tmp_path, MFA_ENCRYPTION_KEY=Fernet.generate_key().decode()))
    async with app.test_app():
        client = app.test_client()
        token = (await (await client.post("/login", json=PASSWORD)).get_json())["mfa_token"]
        later = pyotp.TOTP(secret).at(time.time() + 30)
        refused = await client.post("/login/mfa", json={"mfa_token": token, "code": later})
        assert refused.status_code == 401
        assert await refused.get_json() == {"msg": "Invalid code"}
        ok = await client.post("/login/mfa", json={"mfa_token": token, "recovery_code": codes[0]})
        assert ok.status_code == 200
        fresh = (await ok.get_json())["access_token"]
        off = await client.delete("/me/mfa/totp", json={"code": codes[1]}, headers=bearer(fresh))
        assert off.status_code == 200
