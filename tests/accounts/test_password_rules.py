"""Password rules on register and password change: the shipped blocklist (and its
provenance), case-insensitive matching, the username rule, PASSWORD_MIN_LENGTH; existing
passwords keep working."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from quart import Quart

from quart_app.accounts.passwords import (
    CONTAINS_USERNAME,
    TOO_COMMON,
    PasswordRejected,
    check_new_password,
    common_passwords,
)
from quart_app.services import services
from tests.helpers.support import bearer, login, register

DATA = Path(__file__).parents[2] / "quart_app" / "accounts" / "data" / "common-passwords.txt"


def test_the_blocklist_is_zxcvbns_10000_most_common_passwords() -> None:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    shipped = DATA.read_text("utf-8").splitlines()
    assert shipped == FREQUENCY_LISTS["passwords"][:10000]
    assert len(common_passwords()) == 10000


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("password", TOO_COMMON),
        ("PassWord1", TOO_COMMON),  # without regard to case
        ("QWERTYUIOP", TOO_COMMON),
        ("alice-rocks-42", CONTAINS_USERNAME),
        ("xxALICExx-9", CONTAINS_USERNAME),
        ("short", "password: String should have at least 8 characters"),
    ],
)
def test_rules(password: str, message: str) -> None:
    with pytest.raises(PasswordRejected) as raised:
        check_new_password(password, username="Alice", min_length=8)
    assert str(raised.value) == message


def test_a_good_password_passes() -> None:
    check_new_password("correct horse battery staple", username="alice", min_length=8)


async def test_register_and_change_apply_the_rules(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(PASSWORD_MIN_LENGTH=12)
    async with app.test_app():
        client = app.test_client()
        common = await client.post(
            "/register", json={"username": "bob", "password": "1QAZ2WSX3EDC"}
        )
        assert common.status_code == 400
        assert await common.get_json() == {"msg": TOO_COMMON}
        named = await client.post(
            "/register", json={"username": "bob", "password": "my-name-is-BOB-ok"}
        )
        assert await named.get_json() == {"msg": CONTAINS_USERNAME}
        short = await client.post("/register", json={"username": "bob", "password": "abcdefghk9"})
        assert await short.get_json() == {
            "msg": "password: String should have at least 12 characters"
        }
        await register(client, "bob", "correct-horse-9")
        pair = await login(client, "bob", "correct-horse-9")
        change = await client.put(
            "/me/password",
            json={"old_password": "correct-horse-9", "new_password": "Q1W2E3R4T5Y6"},
            headers=bearer(pair["access_token"]),
        )
        assert change.status_code == 400
        assert await change.get_json() == {"msg": TOO_COMMON}


async def test_existing_passwords_keep_working(app_factory: Callable[..., Quart]) -> None:
    app = app_factory()
    async with app.test_app():
        svc = services(app)
        # A user whose password predates the rules (set before they existed).
        await svc.users.create("carol", "carol", await svc.passwords.hash("password"))
        client = app.test_client()
        await login(client, "carol", "password")
