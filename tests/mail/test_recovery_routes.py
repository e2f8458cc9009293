"""Email, verification and password reset through the routes, with a real SMTP server:
every link is taken from the mail the server received."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from quart import Quart

from quart_app.jwt import get_manager
from tests.helpers.clock import FrozenClock
from tests.helpers.smtp_server import SmtpSink, html_of, text_of, token_in
from tests.helpers.support import bearer, login

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
    fresh = await login(client, password=NEW_PASSWORD)
    response = await client.get("/me/events", headers=bearer(fresh["access_token"]))
    events = [e["event"] for e in await response.get_json()]
    for event in ("password_reset", "password_reset_requested", "email_verified"):
        assert events.count(event) == 1, events
    # The token was used up; and the user is told of the reset.
    response = await client.post(
        "/password/reset", json={"token": token, "new_password": "another-one-3"}
    )
    assert response.status_code == 400
    notice = (await smtp.wait_for(3))[-1]
    assert notice["Subject"] == "Security notice for your account"
    assert "Your password was reset" in text_of(notice)


async def forgot(app: Quart, **body: str) -> None:
    response = await app.test_client().post("/password/forgot", json=body)
    assert response.status_code == 202, await response.get_data(as_text=True)
    assert await response.get_json() == {"msg": "If the account exists, a reset link has been sent"}


async def test_forgot_mails_only_a_verified_address_of_an_existing_account(
    mail_app: Quart, smtp: SmtpSink
) -> None:
    client = mail_app.test_client()
    response = await client.post(
        "/register", json={"username": "carol", "password": PASSWORD, "email": "c@example.com"}
    )
    assert response.status_code == 201
    await smtp.wait_for(1)  # the verification mail; the address is still unverified
    await forgot(mail_app, username="carol")
    await forgot(mail_app, username="nobody")
    await forgot(mail_app, email="nobody@example.com")
    await forgot(mail_app, email="c@example.com")  # unverified: no mail either
    await register_with_email(mail_app, smtp, "dave", "Dave@Example.com")
    await forgot(mail_app, email="dave@EXAMPLE.com")  # verified, compared without case
    mails = await smtp.wait_for(3)
    await asyncio.sleep(1.0)
    assert smtp.count() == 3
    assert mails[2]["To"] == "Dave@Example.com"
    assert mails[2]["Subject"] == "Reset your password"


async def test_at_most_three_reset_mails_per_account_per_hour(
    mail_app: Quart, smtp: SmtpSink
) -> None:
    await register_with_email(mail_app, smtp)
    await asyncio.gather(*(forgot(mail_app, username="alice") for _ in range(8)))
    await smtp.wait_for(4)
    await asyncio.sleep(1.0)
    assert smtp.count() == 1 + 3


async def test_a_newer_token_voids_the_older_one(mail_app: Quart, smtp: SmtpSink) -> None:
    await register_with_email(mail_app, smtp)
    await forgot(mail_app, username="alice")
    first = token_in((await smtp.wait_for(2))[-1])
    await forgot(mail_app, username="alice")
    second = token_in((await smtp.wait_for(3))[-1])
    client = mail_app.test_client()
    response = await client.post(
        "/password/reset", json={"token": first, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 400
    response = await client.post(
        "/password/reset", json={"token": second, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 200


async def test_a_password_change_voids_a_reset_token(mail_app: Quart, smtp: SmtpSink) -> None:
    await register_with_email(mail_app, smtp)
    await forgot(mail_app, username="alice")
    token = token_in((await smtp.wait_for(2))[-1])
    client = mail_app.test_client()
    tokens = await login(client)
    response = await client.put(
        "/me/password",
        json={"old_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 200
    response = await client.post(
        "/password/reset", json={"token": token, "new_password": "yet-another-4"}
    )
    assert (response.status_code, await response.get_json()) == (
        400,
        {"msg": "Invalid or expired token"},
    )
    await login(client, password=NEW_PASSWORD)


async def test_an_expired_token_is_refused(
    app_factory: Callable[..., Quart],
    mail_settings: dict[str, Any],
    smtp: SmtpSink,
    frozen_clock: FrozenClock,
) -> None:
    app = app_factory(**mail_settings, PASSWORD_RESET_TTL=1)
    get_manager(app).clock = frozen_clock
    async with app.test_app():
        await register_with_email(app, smtp)
        await forgot(app, username="alice")
        mail = (await smtp.wait_for(2))[-1]
        assert "1 minutes" in text_of(mail)
        frozen_clock.advance(1.2)
        response = await app.test_client().post(
            "/password/reset", json={"token": token_in(mail), "new_password": NEW_PASSWORD}
        )
        assert response.status_code == 400
        await login(app.test_client())


async def test_two_resets_with_one_token_one_wins(mail_app: Quart, smtp: SmtpSink) -> None:
    await register_with_email(mail_app, smtp)
    await forgot(mail_app, username="alice")
    token = token_in((await smtp.wait_for(2))[-1])
    client = mail_app.test_client()
    answers = await asyncio.gather(
        *(
            client.post("/password/reset", json={"token": token, "new_password": f"{p}-password"})
            for p in ("first", "second", "third")
        )
    )
    assert sorted(r.status_code for r in answers) == [200, 400, 400]
    winner = next(i for i, r in enumerate(answers) if r.status_code == 200)
    await login(client, password=f"{('first', 'second', 'third')[winner]}-password")


async def test_bad_reset_and_verify_input(mail_app: Quart) -> None:
    client = mail_app.test_client()
    for body in (
        {"token": "x" * 43, "new_password": NEW_PASSWORD},
        {"token": "A" * 43, "new_password": NEW_PASSWORD, "code": "123456"},
    ):
        response = await client.post("/password/reset", json=body)
        assert (response.status_code, await response.get_json()) == (
            400,
            {"msg": "Invalid or expired token"},
        )
    for body in (
        {"token": "x" * 43},  # no new_password
        {"token": "x" * 43, "new_password": "short"},
        {"token": "x", "new_password": NEW_PASSWORD},
    ):
        response = await client.post("/password/reset", json=body)
        assert response.status_code == 400
        assert "msg" in await response.get_json()
    for body in ({}, {"username": "alice", "email": "a@example.com"}, {"email": "not-an-address"}):
        response = await client.post("/password/forgot", json=body)
        assert response.status_code == 400
    response = await client.post("/email/verify", json={"token": "y" * 43})
    assert (response.status_code, await response.get_json()) == (
        400,
        {"msg": "Invalid or expired token"},
    )
    response = await client.post(
        "/register", json={"username": "erin", "password": PASSWORD, "email": "erin@"}
    )
    assert response.status_code == 400


async def test_changing_the_address_needs_the_password_and_a_new_verification(
    mail_app: Quart, smtp: SmtpSink
) -> None:
    await register_with_email(mail_app, smtp, "alice", "alice@example.com")
    client = mail_app.test_client()
    headers = bearer((await login(client))["access_token"])
    response = await client.put(
        "/me/email",
        json={"email": "new@example.com", "password": "wrong-password"},
        headers=headers,
    )
    assert response.status_code == 401
    response = await client.put(
        "/me/email", json={"email": "new@example.com", "password": PASSWORD}, headers=headers
    )
    assert (response.status_code, await response.get_json()) == (
        200,
        {"msg": "Verification email sent"},
    )
    mails = await smtp.wait_for(3)
    by_recipient = {m["To"]: m for m in mails[1:]}
    # The old, verified address is told; the new one gets the link.
    assert "address of your account was changed" in text_of(by_recipient["alice@example.com"])
    response = await client.get("/me/email", headers=headers)
    assert await response.get_json() == {"email": "new@example.com", "verified": False}
    response = await client.post(
        "/email/verify", json={"token": token_in(by_recipient["new@example.com"])}
    )
    assert response.status_code == 200
    response = await client.get("/me/email", headers=headers)
    assert await response.get_json() == {"email": "new@example.com", "verified": True}


async def test_a_verified_address_belongs_to_one_account(mail_app: Quart, smtp: SmtpSink) -> None:
    await register_with_email(mail_app, smtp, "alice", "shared@example.com")
    client = mail_app.test_client()
    response = await client.post(
        "/register",
        json={"username": "mallory", "password": PASSWORD, "email": "SHARED@example.com"},
    )
    assert response.status_code == 201  # an address is only claimed by its verification
    mail = (await smtp.wait_for(2))[-1]
    response = await client.post("/email/verify", json={"token": token_in(mail)})
    assert (response.status_code, await response.get_json()) == (
        409,
        {"msg": "Email address already in use"},
    )
    headers = bearer((await login(client, "mallory"))["access_token"])
    response = await client.get("/me/email", headers=headers)
    assert await response.get_json() == {"email": "SHARED@example.com", "verified": False}


async def test_clients_that_never_send_an_email_see_the_flask_contract(mail_app: Quart) -> None:
    client = mail_app.test_client()
    response = await client.post("/register", json={"username": "frank", "password": PASSWORD})
    assert (response.status_code, await response.get_json()) == (
        201,
        {"id": 1, "username": "frank"},
    )
    headers = bearer((await login(client, "frank"))["access_token"])
    response = await client.get("/me/email", headers=headers)
    assert await response.get_json() == {"email": None, "verified": False}


async def test_a_password_change_is_noticed(mail_app: Quart, smtp: SmtpSink) -> None:
    await register_with_email(mail_app, smtp)
    client = mail_app.test_client()
    tokens = await login(client)
    response = await client.put(
        "/me/password",
        json={"old_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 200
    notice = (await smtp.wait_for(2))[-1]
    assert "Your password was changed." in text_of(notice)


async def test_a_sign_in_from_a_new_client_is_noticed_when_enabled(
    app_factory: Callable[..., Quart], mail_settings: dict[str, Any], smtp: SmtpSink
) -> None:
    app = app_factory(**mail_settings, NOTIFY_NEW_SIGNIN=True)
    async with app.test_app():
        await register_with_email(app, smtp)
        client = app.test_client()
        body = {"username": "alice", "password": PASSWORD}
        firefox = {"User-Agent": "Firefox/140 (Linux)"}
        for agent in (firefox, firefox, {"User-Agent": "curl/8.0"}, firefox):
            response = await client.post("/login", json=body, headers=agent)
            assert response.status_code == 200
            await asyncio.sleep(0.3)  # the check runs after the answer
        notices = (await smtp.wait_for(2))[1:]
        await asyncio.sleep(1.0)
        # The first login ever is no news; the first from curl is; Firefox again is not.
        assert smtp.count() == 2
        assert "curl/8.0" in text_of(notices[0])
        assert "client not seen before" in text_of(notices[0])
        tokens = await login(client)
        response = await client.get("/me/events", headers=bearer(tokens["access_token"]))
        assert [e["event"] for e in await response.get_json()].count("new_signin") == 1


async def test_sign_ins_are_not_noticed_by_default(mail_app: Quart, smtp: SmtpSink) -> None:
    await register_with_email(mail_app, smtp)
    client = mail_app.test_client()
    for agent in ("a/1", "b/2"):
        response = await client.post(
            "/login",
            json={"username": "alice", "password": PASSWORD},
            headers={"User-Agent": agent},
        )
        assert response.status_code == 200
    await asyncio.sleep(1.0)
    assert smtp.count() == 1
