"""A reset of an account with TOTP on asks for its second factor; turning TOTP on and
off, using a recovery code, and adding a passkey's event, mail their notices."""

from __future__ import annotations

import time

import pyotp
from quart import Quart

from tests.helpers.smtp_server import SmtpSink, text_of, token_in
from tests.helpers.support import bearer, login
from tests.mail.test_recovery_routes import NEW_PASSWORD, PASSWORD, forgot, register_with_email


def code_at(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


async def enrol(app: Quart, access: str) -> tuple[str, list[str]]:
    client = app.test_client()
    response = await client.post("/me/mfa/totp", headers=bearer(access))
    assert response.status_code == 200
    secret = (await response.get_json())["secret"]
    response = await client.post(
        "/me/mfa/totp/confirm", json={"code": code_at(secret)}, headers=bearer(access)
    )
    assert response.status_code == 200
    return secret, (await response.get_json())["recovery_codes"]


async def test_reset_asks_for_the_second_factor(mail_app: Quart, smtp: SmtpSink) -> None:
    await register_with_email(mail_app, smtp)
    client = mail_app.test_client()
    secret, codes = await enrol(mail_app, (await login(client))["access_token"])
    enabled = (await smtp.wait_for(2))[-1]
    assert "Two-factor authentication was turned on" in text_of(enabled)

    await forgot(mail_app, username="alice")
    token = token_in((await smtp.wait_for(3))[-1])
    body = {"token": token, "new_password": NEW_PASSWORD}
    response = await client.post("/password/reset", json=body)
    assert (response.status_code, await response.get_json()) == (401, {"msg": "MFA required"})
    response = await client.post("/password/reset", json={**body, "code": "000000"})
    if code_at(secret) != "000000":
        assert (response.status_code, await response.get_json()) == (401, {"msg": "Invalid code"})
    response = await client.post("/password/reset", json={**body, "code": "not-a-recovery"})
    assert (response.status_code, await response.get_json()) == (401, {"msg": "Invalid code"})
    # Nothing changed so far: the old password works, the token is still good.
    response = await client.post("/login", json={"username": "alice", "password": PASSWORD})
    assert (await response.get_json())["msg"] == "MFA required"

    response = await client.post("/password/reset", json={**body, "code": codes[0]})
    assert (response.status_code, await response.get_json()) == (
        200,
        {"msg": "Password has been reset"},
    )
    response = await client.post("/login", json={"username": "alice", "password": NEW_PASSWORD})
    assert (await response.get_json())["msg"] == "MFA required"  # TOTP stays on
    mails = await smtp.wait_for(5)
    assert "recovery codes was used" in text_of(mails[3])
    assert "Your password was reset" in text_of(mails[4])
    # The recovery code was used once and for all.
    await forgot(mail_app, username="alice")
    token = token_in((await smtp.wait_for(6))[-1])
    body = {"token": token, "new_password": "third-password-3", "code": codes[0]}
    response = await client.post("/password/reset", json=body)
    assert response.status_code == 401


async def test_turning_totp_off_is_noticed(mail_app: Quart, smtp: SmtpSink) -> None:
    await register_with_email(mail_app, smtp)
    client = mail_app.test_client()
    access = (await login(client))["access_token"]
    _secret, codes = await enrol(mail_app, access)
    response = await client.delete("/me/mfa/totp", json={"code": codes[1]}, headers=bearer(access))
    assert response.status_code == 200
    mails = await smtp.wait_for(4)
    assert "turned on" in text_of(mails[1])
    assert "recovery codes was used" in text_of(mails[2])
    assert "turned off" in text_of(mails[3])
