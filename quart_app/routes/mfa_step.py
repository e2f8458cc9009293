"""The login's hook into second factors, and the per-app second-factor services.

Kept apart from routes/mfa.py so that /login (routes/auth.py) can call the hook while
/login/mfa issues tokens through routes/auth.py, without an import cycle.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from pydantic import BaseModel, Field
from quart import Quart, Response, current_app, jsonify

from ..accounts.mfa import SecondFactors
from ..accounts.mfa_crypto import cipher_from_settings
from ..accounts.passkeys import Passkeys, RelyingParty
from ..errors import AppError
from ..security.lockout import Attempt
from ..services import services
from ..store import UserRecord
from ..store.mfa import MfaStore
from ..store.passkeys import PasskeyStore

events = logging.getLogger("quart_app.security_events")

EXTENSION_KEY = "quart_app.mfa"
MFA_REQUIRED = "MFA required"


class SecondFactorServices:
    def __init__(self, totp: SecondFactors, passkeys: Passkeys) -> None:
        self.totp = totp
        self.passkeys = passkeys


def init_mfa(app: Quart) -> None:
    """Build the second-factor services of ``app`` (the encryption key is read now)."""
    db = services(app).db
    tickets = MfaStore(db)
    cipher = cipher_from_settings(app.config)
    app.extensions[EXTENSION_KEY] = SecondFactorServices(
        SecondFactors.from_settings(tickets, cipher, app.config),
        Passkeys(PasskeyStore(db), tickets, RelyingParty.from_settings(app.config)),
    )

    @app.errorhandler(MfaRequired)
    async def mfa_required(error: MfaRequired) -> Response:
        response = jsonify({"msg": error.msg, "mfa_token": error.token, "methods": error.methods})
        response.status_code = 401
        response.headers["Cache-Control"] = "no-store"
        return response


def second_factors() -> SecondFactorServices:
    return cast(SecondFactorServices, current_app.extensions[EXTENSION_KEY])


def record_event(kind: str, user_id: int, **details: Any) -> None:
    """A security event of the account (kind, user, details) on its own log channel."""
    events.info("%s user=%s %s", kind, user_id, " ".join(f"{k}={v}" for k, v in details.items()))


class MfaRequired(AppError):
    """The password was right; the second factor is awaited (answered by init_mfa)."""

    def __init__(self, token: str, methods: list[str]) -> None:
        super().__init__(401, MFA_REQUIRED)
        self.token = token
        self.methods = methods


class MfaChallenge(BaseModel):
    """Not authenticated: bad username or password; or, with TOTP on, "MFA required"
    and the ``mfa_token`` that finishes the login with ``POST /login/mfa``."""

    msg: str = Field(examples=[MFA_REQUIRED])
    mfa_token: str | None = Field(
        default=None, description="With MFA required: good for 5 minutes and one successful use."
    )
    methods: list[str] | None = Field(default=None, examples=[["totp", "recovery_code"]])


async def second_factor_step(user: UserRecord, attempt: Attempt) -> None:
    """The login hook: raise :class:`MfaRequired` for an account with TOTP on.

    The attempt is left as it is (counted as a failed check) until the second factor
    succeeds; accounts without a second factor pass through unchanged.
    """
    mfa = second_factors()
    if not await mfa.totp.enabled(user.id):
        return
    record_event("mfa.password_ok", user.id)
    raise MfaRequired(await mfa.totp.issue_ticket(user.id), ["totp", "recovery_code"])
