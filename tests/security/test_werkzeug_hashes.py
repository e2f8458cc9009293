"""Werkzeug hashes (imported from the Flask app) verify without Werkzeug, and get re-hashed."""

from __future__ import annotations

import hmac

import pytest
from werkzeug.security import check_password_hash, generate_password_hash

from quart_app.security import werkzeug_hashes
from quart_app.security.passwords import Passwords
from tests.helpers.ops_helpers import legacy_sha256

PASSWORD = "flask-era-password"


def werkzeug_made() -> list[str]:
    return [
        generate_password_hash(PASSWORD),  # scrypt:32768:8:1, Werkzeug 3's default
        generate_password_hash(PASSWORD, "scrypt:1024:8:1"),
        generate_password_hash(PASSWORD, "pbkdf2:sha256:1000"),
        generate_password_hash(PASSWORD, "pbkdf2:sha512:1000"),
        generate_password_hash(PASSWORD, "pbkdf2"),  # default iterations, written out
    ]


async def test_hashes_made_by_werkzeug_verify() -> None:
    for stored in werkzeug_made():
        assert check_password_hash(stored, PASSWORD)  # the reference agrees
        assert werkzeug_hashes.verify(stored, PASSWORD), stored
        assert not werkzeug_hashes.verify(stored, PASSWORD + "x"), stored
        assert not werkzeug_hashes.verify(stored, PASSWORD.upper()), stored


async def test_legacy_plain_sha256_hashes_verify() -> None:
    for stored in (legacy_sha256(PASSWORD), legacy_sha256(PASSWORD, salt="")):
        assert werkzeug_hashes.verify(stored, PASSWORD)
        assert not werkzeug_hashes.verify(stored, "something-else")
    # Werkzeug 2.x's own algorithm, spelled out: HMAC keyed with the salt.
    sha1 = "sha1$abc$" + hmac.new(b"abc", PASSWORD.encode(), "sha1").hexdigest()
    assert werkzeug_hashes.verify(sha1, PASSWORD)


@pytest.mark.parametrize(
    "stored",
    [
        "plain$$flask-era-password",
        "md5$salt$" + "0" * 32,
        "pbkdf2:sha256:99999999$salt$" + "00" * 32,  # past the iteration bound
        "pbkdf2:sha256$salt$" + "00" * 32,  # iterations not written out
        "scrypt:1048576:8:8$salt$" + "00" * 64,  # 8 GiB of memory
        "scrypt:1000:8:1$salt$" + "00" * 64,  # n not a power of two
        "sha256$salt$nothex",
        "sha256$salt$abcd",  # wrong length
        "no-dollars",
        "",
    ],
)
async def test_unsupported_or_hostile_hashes_are_refused(stored: str) -> None:
    assert not werkzeug_hashes.is_werkzeug_hash(stored)
    with pytest.raises(werkzeug_hashes.UnsupportedHash):
        werkzeug_hashes.verify(stored, PASSWORD)


async def test_passwords_verify_werkzeug_hashes_and_ask_for_a_rehash() -> None:
    passwords = Passwords(time_cost=1, memory_cost=1024, parallelism=1, threads=2)
    await passwords.start()
    try:
        for stored in [*werkzeug_made()[1:3], legacy_sha256(PASSWORD)]:
            assert await passwords.verify(stored, PASSWORD)
            assert not await passwords.verify(stored, "wrong-password")
            assert passwords.needs_rehash(stored)
        assert not await passwords.verify("plain$$" + PASSWORD, PASSWORD)
        fresh = await passwords.hash(PASSWORD)
        assert not passwords.needs_rehash(fresh)
        assert await passwords.verify(fresh, PASSWORD)
    finally:
        await passwords.stop()
