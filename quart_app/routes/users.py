"""The protected routes: /protected (claims only, no I/O), /users, /me, /me/password."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from quart import Blueprint
from quart_schema import document_response, validate_querystring, validate_request

from ..accounts.events import PASSWORD_CHANGED, SecurityEvent
from ..accounts.recovery import recovery_store
from ..accounts.sessions import end_all_sessions
from ..errors import AppError
from ..jwt import UserLookupError, get_jwt, get_jwt_header, jwt_required
from ..jwt.claims_routes import claims_route
from ..jwt.revocation import FAMILY_CLAIM
from ..schemas import (
    LoggedInAs,
    MeOut,
    Message,
    PasswordChange,
    UserList,
    UsersQuery,
    username_key,
)
from ..security.client_address import client_address, limit_key, request_client
from ..services import services
from ..store import UserRecord
from .auth import new_password_allowed
from .openapi import TOKEN_ERRORS, UNAVAILABLE, errors

bp = Blueprint("users", __name__)


@claims_route(bp, "/protected", endpoint="protected")
@errors(*TOKEN_ERRORS)
@document_response(LoggedInAs)
def logged_in_as(claims: Mapping[str, Any]) -> dict[str, Any]:
    """Who the token belongs to, from its claims alone: no database on this path."""
    return {"logged_in_as": claims.get("username", claims["sub"])}


@bp.get("/users")
@errors(400, *TOKEN_ERRORS, UNAVAILABLE)
@jwt_required()
@validate_querystring(UsersQuery)
@document_response(UserList)
async def list_users(query_args: UsersQuery) -> list[dict[str, Any]]:
    """Users ordered by id; pass the last id seen as ``after_id`` for the next page."""
    users = await services().users.page(query_args.limit, query_args.after_id)
    return [{"id": user.id, "username": user.username} for user in users]


def _user_id(sub: object) -> int | None:
    """The user id a ``sub`` claim names: the canonical ASCII decimal of a 63-bit integer.

    ``str.isdigit`` alone would let through "\u00b2" (int() fails) and Arabic-Indic
    digits (int() maps them to another user's id); huge values overflow the database.
    """
    if not isinstance(sub, str) or not (sub.isascii() and sub.isdigit()) or len(sub) > 19:
        return None
    user_id = int(sub)
    return user_id if str(user_id) == sub and user_id < 2**63 else None


async def _current_user() -> UserRecord:
    """The token's user, or FJE's user-lookup error when it no longer exists."""
    claims = get_jwt()
    sub = claims["sub"]
    user_id = _user_id(sub)
    user = await services().users.by_id(user_id) if user_id is not None else None
    if user is None:
        raise UserLookupError(f"Error loading the user {sub}", get_jwt_header(), claims)
    return user


@bp.get("/me")
@errors(*TOKEN_ERRORS, UNAVAILABLE)
@jwt_required()
@document_response(MeOut)
async def me() -> dict[str, Any]:
    """The token's user: id, username and when the account was created."""
    user = await _current_user()
    return {"id": user.id, "username": user.username, "created_at": user.created_at.isoformat()}


@bp.put("/me/password")
@errors(400, *TOKEN_ERRORS, 413, 429, UNAVAILABLE)
@jwt_required(fresh=True)
@validate_request(PasswordChange)
@document_response(Message)
async def change_password(data: PasswordChange) -> dict[str, str]:
    """Change the password (needs a fresh token, i.e. one straight from /login).

    Every session of the user ends (this one too), on every worker, and so does any
    login still checking the old password when the change commits (no clock is
    compared: see ``SessionStore.end_all``). A
    wrong ``old_password`` is a failed login of the account: the same limits, reserved
    before the check, and the same 429 while the account is locked.
    """
    svc = services()
    user = await _current_user()
    new_password_allowed(data.new_password, username=user.username, field="new_password")
    network = limit_key(client_address())
    attempt = await svc.logins.admit(username_key(user.username), network, time.time())
    if not await svc.passwords.verify(user.password_hash, data.old_password):
        await attempt.failed()
        raise AppError(401, "Old password is incorrect")
    await attempt.succeeded()
    password_hash = await svc.passwords.hash(data.new_password)
    claims = get_jwt()
    family = claims.get(FAMILY_CLAIM)
    await end_all_sessions(
        user.id,
        reason="password_changed",
        event=SecurityEvent(
            PASSWORD_CHANGED,
            user_id=user.id,
            session_id=family if isinstance(family, str) else None,
            client=request_client(),
        ),
        password_hash=password_hash,
    )
    recovery_store().mail_queued()
    return {"msg": "Password changed"}
