"""Where password reset meets the second factor: an account with TOTP on proves it with a
TOTP or recovery code, checked by the second-factor feature (single use in the shared
store, its events recorded)."""

from __future__ import annotations

import time

from ..accounts.mfa import MFA_CODE_REJECTED
from ..errors import AppError
from ..routes.mfa_step import MFA_REQUIRED, actor, record_event, second_factors
from ..schemas import username_key
from ..security.client_address import client_address, limit_key
from ..services import services

INVALID_CODE = "Invalid code"


async def check_second_factor(user_id: int, username: str, code: str | None) -> None:
    """Raise 401 ``MFA required`` when the account has TOTP on and ``code`` is missing,
    401 ``Invalid code`` when it is wrong. A wrong code is a failed login of the account
    (the same limits and lock as /login and /login/mfa)."""
    mfa = second_factors()
    if not await mfa.totp.enabled(user_id):
        return
    if code is None:
        raise AppError(401, MFA_REQUIRED)
    attempt = await services().logins.admit(
        username_key(username), limit_key(client_address()), time.time()
    )
    if await mfa.totp.check(user_id, actor(), code=code, recovery_code=None) is None:
        await attempt.failed()
        await record_event(MFA_CODE_REJECTED, user_id)
        raise AppError(401, INVALID_CODE)
    await attempt.succeeded()
