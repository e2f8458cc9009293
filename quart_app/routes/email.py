"""The user's email address: shown, changed (password re-entered), verified by its link."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field
from quart import Blueprint
from quart_schema import document_response, validate_request

from ..accounts.recovery import EmailTaken, recovery_store
from ..errors import AppError
from ..jwt import jwt_required
from ..schemas import EmailAddress, Message, Strict, username_key
from ..security.client_address import client_address, limit_key, request_client
from ..services import services
from .openapi import TOKEN_ERRORS, UNAVAILABLE, errors, public
from .recovery import INVALID_TOKEN, Token
from .users import _current_user

bp = Blueprint("email", __name__)


class EmailOut(BaseModel):
    email: str | None = Field(description="The address, or null when the account has none")
    verified: bool


class EmailChange(Strict):
    email: EmailAddress
    password: str = Field(min_length=1, max_length=1024, description="The current password")


class VerifyRequest(Strict):
    token: str = Token


@bp.get("/me/email")
@errors(*TOKEN_ERRORS, UNAVAILABLE)
@jwt_required()
@document_response(EmailOut)
async def get_email() -> dict[str, Any]:
    """The account's email address and whether it is verified (mail goes only there)."""
    user = await _current_user()
    state = await recovery_store().email_of(user.id)
    if state is None:
        return {"email": None, "verified": False}
    return {"email": state.email, "verified": state.verified}


@bp.put("/me/email")
@errors(400, *TOKEN_ERRORS, 413, 429, UNAVAILABLE)
@jwt_required()
@validate_request(EmailChange)
@document_response(Message)
async def change_email(data: EmailChange) -> dict[str, str]:
    """Set a new address (the current password re-entered); it is mailed a verification
    link and stays unverified until the link is followed.

    A wrong password is a failed login of the account (the same limits and lock). A
    verified address being replaced is told so.
    """
    svc = services()
    user = await _current_user()
    network = limit_key(client_address())
    attempt = await svc.logins.admit(username_key(user.username), network, time.time())
    if not await svc.passwords.verify(user.password_hash, data.password):
        await attempt.failed()
        raise AppError(401, "Password is incorrect")
    await attempt.succeeded()
    store = recovery_store()
    await store.change_email(user.id, user.username, data.email, request_client())
    store.mail_queued()
    return {"msg": "Verification email sent"}


@bp.post("/email/verify")
@public
@errors(400, 409, 413, 429, UNAVAILABLE)
@validate_request(VerifyRequest)
@document_response(Message)
async def verify_email(data: VerifyRequest) -> dict[str, str]:
    """Verify an address with the token of its mailed link (once, within EMAIL_VERIFY_TTL)."""
    try:
        verified = await recovery_store().verify_email(data.token, request_client())
    except EmailTaken:
        raise AppError(409, "Email address already in use") from None
    if not verified:
        raise AppError(400, INVALID_TOKEN)
    return {"msg": "Email verified"}
