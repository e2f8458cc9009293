"""Second factors over HTTP: TOTP enrolment, recovery codes, the login's second step.

The password step of /login hands accounts with TOTP on to :func:`second_factor_step`,
which answers 401 "MFA required" with an ``mfa_token``; ``POST /login/mfa`` finishes
the login. Wrong codes are failed logins of the account (the same atomic limits as a
wrong password, quart_app/security/login_limits.py), and the password step of such an
account stays counted until the second factor succeeds, so alternating a known password
with guessed codes never resets the count.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field, model_validator
from quart import Blueprint, Response
from quart_schema import document_response, validate_request

from ..accounts import mfa as events
from ..errors import AppError
from ..jwt import get_jwt, jwt_required
from ..schemas import Message, Strict, TokenPair, username_key
from ..security.binding import dpop_binding
from ..security.client_address import client_address, limit_key
from ..security.login_limits import Attempt
from ..services import services
from ..store import UserRecord
from .auth import issue_login
from .mfa_step import actor, record_event, second_factors
from .openapi import TOKEN_ERRORS, UNAVAILABLE, errors, public

bp = Blueprint("mfa", __name__)

INVALID_CODE = "Invalid code"
INVALID_TICKET = "Invalid or expired MFA token"


def _user_id() -> int:
    return int(str(get_jwt()["sub"]))


class Code(Strict):
    code: str = Field(min_length=1, max_length=64, examples=["123456"])


class TotpEnrolment(BaseModel):
    secret: str = Field(description="Base32 (RFC 4648) TOTP secret: SHA-1, 6 digits, 30 s.")
    otpauth_uri: str = Field(
        examples=["otpauth://totp/quart_app:alice?secret=...&issuer=quart_app"]
    )


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="Ten single-use codes, shown this once.")


class MfaStatus(BaseModel):
    totp: bool
    recovery_codes_left: int
    passkeys: int


class MfaLogin(Strict):
    mfa_token: str = Field(min_length=1, max_length=256)
    code: str | None = Field(default=None, min_length=1, max_length=64)
    recovery_code: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_code(self) -> MfaLogin:
        if (self.code is None) == (self.recovery_code is None):
            raise ValueError("give either code or recovery_code")
        return self


@bp.get("/me/mfa")
@errors(*TOKEN_ERRORS, UNAVAILABLE)
@jwt_required()
@document_response(MfaStatus)
async def status() -> dict[str, Any]:
    """Second factors of the token's user: TOTP on, recovery codes left, passkeys."""
    mfa = second_factors()
    user_id = _user_id()
    state = await mfa.totp.state(user_id)
    return {
        "totp": state.totp,
        "recovery_codes_left": state.recovery_codes_left,
        "passkeys": await mfa.passkeys.store.count(user_id),
    }


@bp.post("/me/mfa/totp")
@errors(*TOKEN_ERRORS, 409, UNAVAILABLE)
@jwt_required(fresh=True)
@document_response(TotpEnrolment)
async def enrol() -> dict[str, str]:
    """Start TOTP enrolment (fresh token): a new secret, pending until a code confirms it.

    Calling it again before confirming replaces the pending secret.
    """
    user_id = _user_id()
    username = str(get_jwt().get("username") or user_id)
    enrolment = await second_factors().totp.enrol(user_id, username)
    if enrolment is None:
        raise AppError(409, "MFA already enabled")
    await record_event(events.MFA_ENROLMENT_STARTED, user_id)
    return {"secret": enrolment.secret, "otpauth_uri": enrolment.otpauth_uri}


@bp.post("/me/mfa/totp/confirm")
@errors(400, *TOKEN_ERRORS, 413, UNAVAILABLE)
@jwt_required()
@validate_request(Code)
@document_response(RecoveryCodes)
async def confirm(data: Code) -> dict[str, Any]:
    """Confirm the pending TOTP secret with a code from it: TOTP is on, and the ten
    recovery codes are shown this once."""
    user_id = _user_id()
    codes = await second_factors().totp.confirm(user_id, data.code, actor())
    if codes is None:
        raise AppError(400, INVALID_CODE)
    return {"recovery_codes": codes}


async def _admit_code_check(user_id: int) -> tuple[UserRecord, Attempt]:
    svc = services()
    user = await svc.users.by_id(user_id)
    if user is None:
        raise AppError(401, INVALID_TICKET)
    attempt = await svc.logins.admit(
        username_key(user.username), limit_key(client_address()), time.time()
    )
    return user, attempt


@bp.delete("/me/mfa/totp")
@errors(400, *TOKEN_ERRORS, 413, 429, UNAVAILABLE)
@jwt_required(fresh=True)
@validate_request(Code)
@document_response(Message)
async def disable(data: Code) -> dict[str, str]:
    """Turn TOTP off (fresh token and a TOTP or recovery code); recovery codes go too.

    A wrong code is a failed login of the account (the same limits as /login).
    """
    user_id = _user_id()
    mfa = second_factors()
    _, attempt = await _admit_code_check(user_id)
    if await mfa.totp.check(user_id, actor(), code=data.code, recovery_code=None) is None:
        await attempt.failed()
        await record_event(events.MFA_CODE_REJECTED, user_id)
        raise AppError(400, INVALID_CODE)
    await attempt.succeeded()
    await mfa.totp.disable(user_id, actor())
    return {"msg": "MFA disabled"}


@bp.post("/me/mfa/recovery-codes")
@errors(*TOKEN_ERRORS, 409, UNAVAILABLE)
@jwt_required(fresh=True)
@document_response(RecoveryCodes)
async def regenerate() -> dict[str, Any]:
    """Ten new recovery codes (fresh token); the old ones are void."""
    user_id = _user_id()
    codes = await second_factors().totp.regenerate(user_id, actor())
    if codes is None:
        raise AppError(409, "MFA not enabled")
    return {"recovery_codes": codes}


@bp.post("/login/mfa")
@public
@errors(400, 401, 413, 429, UNAVAILABLE)
@validate_request(MfaLogin)
@document_response(TokenPair)
async def login_mfa(data: MfaLogin) -> Response:
    """Finish a login with TOTP on: the ``mfa_token`` of /login's 401 and a TOTP code (or
    a recovery code): the /login pair, fresh.

    The token is good for 5 minutes and one successful use; a TOTP code is accepted once,
    a recovery code once ever. A wrong code is a failed login of the account: 429 once
    ``LOGIN_LOCKOUT_THRESHOLD`` is reached, however many are in flight.
    """
    mfa = second_factors()
    binding = await dpop_binding()  # a DPoP proof binds the pair to its key
    ticket = await mfa.totp.ticket(data.mfa_token)
    if ticket is None or ticket.user_id is None or ticket.epoch is None:
        raise AppError(401, INVALID_TICKET)
    user_id = ticket.user_id
    user, attempt = await _admit_code_check(user_id)
    method = await mfa.totp.check(
        user_id, actor(), code=data.code, recovery_code=data.recovery_code
    )
    if method is None:
        await attempt.failed()
        await record_event(events.MFA_CODE_REJECTED, user_id)
        raise AppError(401, INVALID_CODE)
    if not await mfa.totp.use_ticket(data.mfa_token):
        await attempt.failed()  # another request finished this login first
        raise AppError(401, INVALID_TICKET)
    await attempt.succeeded()
    # The epoch read at /login: a password change or a disable since then voids this login.
    return await issue_login(user, epoch=ticket.epoch, method=method, binding=binding)
