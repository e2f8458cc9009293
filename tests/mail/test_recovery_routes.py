"""Email, verification and password reset through the routes, with a real SMTP server:
every link is taken from the mail the server received."""

from __future__ import annotations

import asyncio

from quart import Quart
from smtp_server import SmtpSink, html_of, text_of, token_in
from support import bearer, login

PASSWORD = "correct-horse"
NEW_PASSWORD = "battery-staple-2"


async def register_with_email(
    app: Quart, smtp: SmtpSink, username: str = "alice", email: str = "alice@example.com"
) -> str:
    """Register and verify ``email`` by the mailed link; returns nothing to remember."""
    client = app.test_client()
    before = smtp.count()
    response = await client.post(
        "/register", json={"username": username, "password": PASSWORD, "email": email}
    )
    assert response.status_code == 201, await response.get_data(as_text=True)
    mail = (await smtp.wait_for(before + 1))[-1]
    assert mail["To"] == email
    response = await client.post("/email/verify", json={"token": token_in(mail)})
    assert response.status_code == 200
    assert await response.get_json() == {"msg": "Email verified"}
    return email


async def test_registration_mails_a_link_that_verifies_the_address(
    mail_app: Quart, smtp: SmtpSink
) -> None:
    client = mail_app.test_client()
    response = await client.post(
        "/register",
        json={"username": "alice", "password": PASSWORD, "email": "Alice@Example.com"},
    )
    assert response.status_code == 201
    assert set(await response.get_json()) == {"id", "username"}
    [mail] = await smtp.wait_for(1)
    assert mail["Subject"] == "Confirm your email address"
    assert mail["From"] == "Accounts <accounts@app.example>"
    assert mail["Message-ID"].endswith("@app.example>")
    token = token_in(mail)
    assert f"https://app.example/verify?token={token}" in html_of(mail)
    tokens = await login(client)
    response = await client.get("/me/email", headers=bearer(tokens["access_token"]))
    assert await response.get_json() == {"email": "Alice@Example.com", "verified": False}

    response = await client.post("/email/verify", json={"token": token})
    assert (response.status_code, await response.get_json()) == (200, {"msg": "Email verified"})
    response = await client.get("/me/email", headers=bearer(tokens["access_token"]))
    assert await response.get_json() == {"email": "Alice@Example.com", "verified": True}
    # Single use.
    response = await client.post("/email/verify", json={"token": token})
    assert response.status_code == 400
    assert await response.get_json() == {"msg": "Invalid or expired token"}


async def test_reset_by_the_mailed_link_ends_every_session(mail_app: Quart, smtp: SmtpSink) -> None:
    client = mail_app.test_client()
    await register_with_email(mail_app, smtp)
    old = await login(client)
    response = await client.post("/password/forgot", json={"username": "alice"})
    assert response.status_code == 202
    assert await response.get_json() == {"msg": "If the account exists, a reset link has been sent"}
    mail = (await smtp.wait_for(2))[-1]
    assert mail["Subject"] == "Reset your password"
    token = token_in(mail)
    assert "30 minutes" in text_of(mail)

    response = await client.post(
        "/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert (response.status_code, await response.get_json()) == (
        200,
        {"msg": "Password has been reset"},
    )
    # The old password and every token from before are dead; the new password works.
    response = await client.post("/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 401
    await asyncio.sleep(0)
    response = await client.get("/me", headers=bearer(old["access_token"]))
    assert response.status_code == 401
    response = await client.post("/token/refresh", headers=bearer(old["refresh_token"]))
    assert response.status_code == 401
    await login(client, password=NEW_PASSWORD)
    # The token was used up; and the user is told of the reset.
    response = await client.post(
        "/password/reset", json={"token": token, "new_password": "another-one-3"}
    )
    assert response.status_code == 400
    notice = (await smtp.wait_for(3))[-1]
    assert notice["Subject"] == "Security notice for your account"
    assert "Your password was reset" in text_of(notice)
