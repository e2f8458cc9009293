"""Where password reset meets the other account features: the second factor and the end
of every session. Each is one function, so the reset flow reads the same whichever
implementation stands behind it.
"""

from __future__ import annotations

import time

from ..jwt.revocation import Revocation
from ..services import services


async def check_second_factor(user_id: int, username: str, code: str | None) -> None:
    """Raise 401 ``MFA required`` / ``Invalid code`` when the user has a second factor and
    ``code`` is missing or wrong.

    HOOK: the second-factor feature plugs in here; on this branch no account has one yet,
    so there is nothing to check.
    """
    del user_id, username, code


async def end_all_sessions(user_id: int) -> None:
    """End every session of the user (every token issued before now, on every worker)."""
    svc = services()
    now = time.time()
    horizon = max(svc.config["JWT_REFRESH_TOKEN_EXPIRES"], svc.config["JWT_ACCESS_TOKEN_EXPIRES"])
    await svc.revocations.revoke(
        [Revocation("user", str(user_id), expires_at=now + horizon, not_before=now)]
    )
