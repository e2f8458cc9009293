"""Where password reset meets the second factor: one function, so the reset flow reads
the same whichever implementation stands behind it."""

from __future__ import annotations


async def check_second_factor(user_id: int, username: str, code: str | None) -> None:
    """Raise 401 ``MFA required`` / ``Invalid code`` when the user has a second factor and
    ``code`` is missing or wrong.

    HOOK: the second-factor feature plugs in here; on this branch no account has one yet,
    so there is nothing to check.
    """
    del user_id, username, code
