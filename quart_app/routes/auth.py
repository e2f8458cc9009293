"""Registration, login (JSON or HTTP Basic), refresh with rotation, logout."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import ValidationError
from quart import Blueprint, Response, current_app, jsonify, request
from quart_schema import document_request, document_response, validate_request

from ..accounts.recovery import recovery_store
from ..errors import AppError, describe_validation_error
from ..jwt import (
    RevokedTokenError,
    create_access_token,
    create_refresh_token,
    get_jwt,
    get_jwt_header,
    get_manager,
    jwt_required,
)
from ..jwt.revocation import FAMILY_CLAIM, SESSION_CLAIM, Revocation, session_start
from ..observability import note_user
from ..schemas import Credentials, Message, Registration, TokenPair, UserOut, username_key
from ..security.throttle import client_address, limit_key
from ..services import services
from ..store import UsernameTaken
from .docs import TOKEN_ERRORS, UNAVAILABLE, basic_or_body, errors, public

bp = Blueprint("auth", __name__)

BAD_CREDENTIALS = "Bad username or password"


@bp.post("/register")
@public
@errors(400, 409, 413, 429, UNAVAILABLE)
@validate_request(Registration)
@document_response(UserOut, 201)
async def register(data: Registration) -> tuple[dict[str, Any], int]:
    """Create an account. Usernames are unique without regard to case.

    An ``email`` is optional: it is mailed a verification link (in the same transaction
    as the account), and used only once that link is followed.
    """
    svc = services()
    password_hash = await svc.passwords.hash(data.password)
    then = recovery_store().on_registration(data.email) if data.email else None
    try:
        user = await svc.users.create(
            data.username, username_key(data.username), password_hash, then=then
        )
    except UsernameTaken:
        raise AppError(409, "Username already exists") from None
    if then is not None:
        recovery_store().mail_queued()
    note_user(user.id)
    return {"id": user.id, "username": user.username}, 201


async def _credentials() -> Credentials:
    """Credentials from the JSON body, or from an HTTP Basic header when there is no body."""
    body = await request.get_data(as_text=False)
    auth = request.authorization
    if not body.strip() and auth is not None and auth.type == "basic":
        raw: Any = {"username": auth.username or "", "password": auth.password or ""}
    else:
        if not body.strip():
            raise AppError(400, "Missing JSON body or HTTP Basic credentials")
        raw = await request.get_json(force=True)
    try:
        return Credentials.model_validate(raw)
    except ValidationError as error:
        raise AppError(400, describe_validation_error(error)) from None


async def _issue(
    user_id: str, username: str, *, fresh: bool, family: str, started: float
) -> Response:
    svc = services()
    note_user(user_id)  # the request log names who logged in
    claims = {"username": username, FAMILY_CLAIM: family, SESSION_CLAIM: started}
    access = await create_access_token(user_id, fresh=fresh, additional_claims=claims)
    refresh = await create_refresh_token(user_id, additional_claims=claims)
    response = jsonify(
        {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": int(svc.config["JWT_ACCESS_TOKEN_EXPIRES"]),
        }
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.post("/login")
@basic_or_body
@errors(400, 401, 413, 429, UNAVAILABLE)
@document_request(Credentials)
@document_response(TokenPair)
async def login() -> Response:
    """Exchange a username and password (JSON body or HTTP Basic) for a token pair.

    The check is reserved in the shared store before the password is looked at, so a
    locked account answers 429 whatever the password (the lock cannot be used to test
    passwords), and guesses in flight at once cannot outrun the lock. Unknown usernames
    take the same path. Which limits apply to whom: the README's Security section.
    """
    svc = services()
    creds = await _credentials()
    key = username_key(creds.username)
    now = time.time()
    attempt = await svc.logins.admit(key, limit_key(client_address()), now)
    user = await svc.users.by_key(key)
    if not await svc.passwords.verify(user.password_hash if user else None, creds.password):
        await attempt.failed()
        raise AppError(401, BAD_CREDENTIALS)
    assert user is not None  # verify() is never True without a stored hash
    await attempt.succeeded()
    if svc.passwords.needs_rehash(user.password_hash):
        await svc.users.set_password_hash(user.id, await svc.passwords.hash(creds.password))
    return await _issue(
        str(user.id), user.username, fresh=True, family=uuid.uuid4().hex, started=time.time()
    )


@bp.post("/token/refresh")
@errors(*TOKEN_ERRORS, 413, 429, UNAVAILABLE)
@jwt_required(refresh=True, skip_revocation_check=True)
@document_response(TokenPair)
async def refresh() -> Response:
    """Swap a refresh token for a new pair (rotation).

    The refresh token is used up first, whatever the answer: presenting it again means
    it was stolen or replayed, so its whole family (every token from that login) is
    revoked. Using it up is one atomic insert in the shared store, so two workers racing
    with the same token cannot both succeed. Then the shared store, not this worker's
    mirror, decides whether the session still lives: a logout (its family) or a password
    change / ``revoke-user`` after the login (its user) recorded on any worker ends it
    here at once. A pair handed out while such a revocation is being recorded carries
    the login's ``auth_time``, so that revocation kills it too.
    """
    svc = services()
    header, claims = get_jwt_header(), get_jwt()
    jti = str(claims["jti"])
    claimed_family = claims.get(FAMILY_CLAIM)
    family = claimed_family if isinstance(claimed_family, str) and claimed_family else None
    try:
        await get_manager(current_app).check_revoked(header, claims)
    except RevokedTokenError:
        if family and svc.revocations.mirror.has_jti(jti):  # used before: replay
            await svc.revocations.revoke([_family_revocation(family)])
        raise
    expires_at = float(claims.get("exp") or time.time() + svc.config["JWT_REFRESH_TOKEN_EXPIRES"])
    if not await svc.revocations.claim(Revocation("jti", jti, expires_at)):
        if family:
            await svc.revocations.revoke([_family_revocation(family)])
        raise RevokedTokenError(header, claims)
    sub, started = str(claims["sub"]), session_start(claims)
    if await svc.revocations.store.ends_session(sub, family, started):
        raise RevokedTokenError(header, claims)
    username = str(claims.get("username", ""))
    return await _issue(
        sub,
        username,
        fresh=False,
        family=family or uuid.uuid4().hex,
        started=time.time() if started is None else started,
    )


def _family_revocation(family: str) -> Revocation:
    svc = services()
    horizon = max(svc.config["JWT_REFRESH_TOKEN_EXPIRES"], svc.config["JWT_ACCESS_TOKEN_EXPIRES"])
    return Revocation("family", family, time.time() + horizon)


@bp.post("/logout")
@errors(*TOKEN_ERRORS, 413, UNAVAILABLE)
@jwt_required()
@document_response(Message)
async def logout() -> dict[str, str]:
    """Revoke this access token and every token of its login (its refresh family)."""
    svc = services()
    claims = get_jwt()
    expires_at = float(claims.get("exp") or time.time() + svc.config["JWT_ACCESS_TOKEN_EXPIRES"])
    entries = [Revocation("jti", str(claims["jti"]), expires_at)]
    family = claims.get(FAMILY_CLAIM)
    if isinstance(family, str) and family:
        entries.append(_family_revocation(family))
    await svc.revocations.revoke(entries)
    return {"msg": "Successfully logged out"}
