"""The login's hook into second factors, and the per-app second-factor services.

Kept apart from routes/mfa.py so that /login (routes/auth.py) can call the hook while
/login/mfa issues tokens through routes/auth.py, without an import cycle.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel, Field
from quart import Quart, Response, current_app, jsonify

from ..accounts.mfa import MFA_REQUIRED as MFA_REQUIRED_EVENT
from ..accounts.mfa import Actor, SecondFactors
from ..accounts.mfa_crypto import cipher_from_settings
from ..accounts.passkeys import Passkeys, RelyingParty
from ..errors import AppError
from ..jwt import get_jwt
from ..security.client_address import request_client
from ..security.login_limits import Attempt
from ..services import services
from ..store import UserRecord
from ..store.mfa import MfaStore
from ..store.passkeys import PasskeyStore

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


def actor() -> Actor:
    """The request's client, and its session when a token came with it."""
    try:
        session_id = get_jwt().get("fam")
    except RuntimeError:  # no token verified in this request
        session_id = None
    return Actor(request_client(), session_id if isinstance(session_id, str) else None)


async def record_event(kind: str, user_id: int, /, **detail: Any) -> None:
    """A security event that changes nothing else (its own transaction)."""
    await services().events.record(actor().event(kind, user_id, **detail))


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
    await record_event(MFA_REQUIRED_EVENT, user.id)
    token = await mfa.totp.issue_ticket(user.id, user.credential_epoch)
    raise MfaRequired(token, ["totp", "recovery_code"])
