"""Password rules for new passwords (register, password change, reset): a minimum length
(``PASSWORD_MIN_LENGTH``), not one of the 10,000 most common passwords, and not containing
the username, both compared without regard to case.

Existing passwords are never re-checked: a user whose password predates a rule logs in
as before. The blocklist ships as package data (``data/common-passwords.txt``; its
source and licence are in ``data/README.md``) and is read once per process.
"""

from __future__ import annotations

import functools
import unicodedata
from importlib import resources

TOO_COMMON = "Password is too common"
CONTAINS_USERNAME = "Password must not contain the username"
MAX_LENGTH = 1024


class PasswordRejected(ValueError):
    """A new password breaks a rule; the message is the answer's ``msg``."""


@functools.cache
def common_passwords() -> frozenset[str]:
    """The blocklist, case-folded."""
    text = resources.files(__package__).joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(_fold(line) for line in text.splitlines() if line)


def _fold(value: str) -> str:
    return unicodedata.normalize("NFKC", value).casefold()


def check_new_password(
    password: str, *, username: str, min_length: int, field: str = "password"
) -> None:
    """Raise :class:`PasswordRejected` when ``password`` may not be set for ``username``
    (``field`` names it in the length message, like the other validation messages)."""
    if len(password) < min_length:
        raise PasswordRejected(f"{field}: String should have at least {min_length} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(f"{field}: String should have at most {MAX_LENGTH} characters")
    folded = _fold(password)
    if folded in common_passwords():
        raise PasswordRejected(TOO_COMMON)
    name = _fold(username)
    if name and name in folded:
        raise PasswordRejected(CONTAINS_USERNAME)
