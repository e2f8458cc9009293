"""Password reset by mail: /password/forgot asks for a link, /password/reset uses it."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field, model_validator
from quart import Blueprint, current_app
from quart_schema import document_response, validate_request

from ..accounts.events import Client, SecurityEvent
from ..accounts.recovery import RecoveryStore, TokenInvalid, recovery_store
from ..accounts.recovery_hooks import check_second_factor
from ..accounts.sessions import UserNotFound, end_all_sessions
from ..errors import AppError
from ..schemas import EmailAddress, Message, Password, Strict, normalise_username, username_key
from ..security.client_address import request_client
from ..services import services
from ..store.errors import unavailable_reason
from .auth import new_password_allowed
from .openapi import UNAVAILABLE, errors, public

log = logging.getLogger(__name__)

bp = Blueprint("recovery", __name__)

FORGOT_ANSWER = "If the account exists, a reset link has been sent"
INVALID_TOKEN = "Invalid or expired token"
#: The security event (and the reason its sessions ended) of a reset.
PASSWORD_RESET = "password_reset"

Token = Field(min_length=16, max_length=128, description="The token from the mailed link")


class ForgotRequest(Strict):
    username: str | None = Field(default=None, min_length=1, max_length=256)
    email: EmailAddress | None = None

    @model_validator(mode="after")
    def _one(self) -> ForgotRequest:
        if (self.username is None) == (self.email is None):
            raise ValueError("give either username or email")
        if self.username is not None:
            self.username = normalise_username(self.username)
        return self


class ResetRequest(Strict):
    token: str = Token
    new_password: Password
    code: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A TOTP or recovery code: required when the account has a second factor",
    )


@bp.post("/password/forgot")
@public
@errors(400, 413, 429)
@validate_request(ForgotRequest)
@document_response(Message, 202)
async def forgot(data: ForgotRequest) -> tuple[dict[str, str], int]:
    """Ask for a password-reset link, mailed to the account's verified address.

    The answer is the same, and as fast, whether or not the account exists: the look-up,
    the per-account limit (three mails an hour) and the mail happen after it, in the
    background.
    """
    key = username_key(data.username) if data.username is not None else None
    current_app.add_background_task(
        _request_reset, recovery_store(), key, data.email, request_client()
    )
    return {"msg": FORGOT_ANSWER}, 202


async def _request_reset(
    store: RecoveryStore, key: str | None, email: str | None, client: Client
) -> None:
    try:
        if await store.request_reset(username_key=key, address=email, client=client):
            store.mail_queued()
    except Exception as error:
        if unavailable_reason(error) is None:
            log.exception("password reset request failed")
        else:
            log.warning("password reset request dropped: database unavailable (%s)", error)


@bp.post("/password/reset")
@public
@errors(400, 401, 413, 429, UNAVAILABLE)
@validate_request(ResetRequest)
@document_response(Message)
async def reset(data: ResetRequest) -> dict[str, Any]:
    """Set a new password with the token of a reset link; every session of the user ends.

    The token works once, for PASSWORD_RESET_TTL seconds, and dies when a newer one is
    mailed or the password changes. An account with a second factor also needs a TOTP
    or recovery code (``code``).
    """
    svc = services()
    store = recovery_store()
    target = await store.reset_target(data.token)
    if target is None:
        raise AppError(400, INVALID_TOKEN)
    new_password_allowed(data.new_password, username=target.username, field="new_password")
    await check_second_factor(target.user_id, target.username, data.code)
    new_hash = await svc.passwords.hash(data.new_password)
    try:
        await end_all_sessions(
            target.user_id,
            reason=PASSWORD_RESET,
            event=SecurityEvent(PASSWORD_RESET, user_id=target.user_id, client=request_client()),
            password_hash=new_hash,
            within=store.spend_reset_token(data.token, target.user_id),
        )
    except (TokenInvalid, UserNotFound):
        raise AppError(400, INVALID_TOKEN) from None
    store.mail_queued()
    return {"msg": "Password has been reset"}
