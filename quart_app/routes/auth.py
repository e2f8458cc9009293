"""Registration, login (JSON or HTTP Basic), refresh with rotation, logout.

Every login ends in :func:`issue_login` (the session row, the ``login`` event and the
token pair, in one place), which a second factor or a passkey login calls the same way.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError
from quart import Blueprint, Response, current_app, jsonify, request
from quart_schema import document_request, document_response, validate_request

from ..accounts.events import LOGIN_BLOCKED, LOGIN_FAILED, LOGOUT, REGISTER, SecurityEvent
from ..accounts.passwords import PasswordRejected, check_new_password
from ..accounts.recovery import recovery_store
from ..accounts.sessions import (
    IssuedPair,
    SessionRefused,
    refresh_session,
    revoke_token,
    start_session,
)
from ..errors import AppError, Throttled, describe_validation_error
from ..jwt import (
    RevokedTokenError,
    get_jwt,
    get_jwt_header,
    jwt_required,
)
from ..observability import note_user
from ..schemas import Credentials, Message, Registration, TokenPair, UserOut, username_key
from ..security.binding import Binding, dpop_binding
from ..security.client_address import limit_key, request_client
from ..services import services
from ..store import UsernameTaken, UserRecord
from .mfa_step import MfaChallenge, second_factor_step
from .openapi import TOKEN_ERRORS, UNAVAILABLE, basic_or_body, errors, public

bp = Blueprint("auth", __name__)

BAD_CREDENTIALS = "Bad username or password"
ACCOUNT_DISABLED = "Account disabled"
SESSION_EXPIRED = "Session has expired"


@bp.post("/register")
@public
@errors(400, 409, 413, 429, UNAVAILABLE)
@validate_request(Registration)
@document_response(UserOut, 201)
async def register(data: Registration) -> tuple[dict[str, Any], int]:
    """Create an account. Usernames are unique without regard to case; the password must
    not be a common one nor contain the username (400).

    An ``email`` is optional: it is mailed a verification link (in the same transaction
    as the account), and used only once that link is followed.
    """
    svc = services()
    new_password_allowed(data.password, username=data.username)
    password_hash = await svc.passwords.hash(data.password)
    then = recovery_store().on_registration(data.email) if data.email else None
    try:
        user = await svc.users.create(
            data.username,
            username_key(data.username),
            password_hash,
            event=SecurityEvent(REGISTER, client=request_client()),
            then=then,
        )
    except UsernameTaken:
        raise AppError(409, "Username already exists") from None
    if then is not None:
        recovery_store().mail_queued()
    note_user(user.id)
    return {"id": user.id, "username": user.username}, 201


def new_password_allowed(password: str, *, username: str, field: str = "password") -> None:
    """400 with the rule's message when ``password`` may not be set (register, change,
    reset); existing passwords are never re-checked."""
    try:
        check_new_password(
            password,
            username=username,
            min_length=int(services().config["PASSWORD_MIN_LENGTH"]),
            field=field,
        )
    except PasswordRejected as rejected:
        raise AppError(400, str(rejected)) from None


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


def pair_response(pair: IssuedPair, binding: Binding | None = None) -> Response:
    """The JSON answer carrying a token pair (never cached); ``"token_type": "DPoP"`` when
    the pair is bound to a proof's key."""
    body = pair.body()
    if binding is not None:
        body["token_type"] = binding.token_type
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


async def issue_login(
    user: UserRecord,
    *,
    epoch: int,
    method: str = "password",
    additional_claims: dict[str, Any] | None = None,
    binding: Binding | None = None,
) -> Response:
    """Start the session of a login whose checks all passed and answer its pair.

    ``binding`` (:func:`dpop_binding`, read before the checks) binds the pair to a DPoP
    proof's key.

    ``epoch`` is ``user.credential_epoch`` as read before the first check of this login
    began: if the password changed or the account was disabled since, no session is
    created (401 bad credentials, or 403 "Account disabled").
    """
    note_user(user.id)  # the request log names who logged in
    try:
        pair = await start_session(
            user,
            request_client(),
            epoch=epoch,
            method=method,
            additional_claims={**(additional_claims or {}), **(binding.claims if binding else {})}
            or None,
        )
    except SessionRefused as refused:
        if refused.reason == "disabled":
            raise AppError(403, ACCOUNT_DISABLED) from None
        raise AppError(401, BAD_CREDENTIALS) from None
    if services().config["NOTIFY_NEW_SIGNIN"]:  # after the answer: it never delays a login
        current_app.add_background_task(
            recovery_store().signed_in, user.id, request_client(), pair.session_id
        )
    return pair_response(pair, binding)


@bp.post("/login")
@basic_or_body
@document_response(MfaChallenge, 401)
@errors(400, 403, 413, 429, UNAVAILABLE)
@document_request(Credentials)
@document_response(TokenPair)
async def login() -> Response:
    """Exchange a username and password (JSON body or HTTP Basic) for a token pair.

    The check is reserved in the shared store before the password is looked at, so a
    locked account answers 429 whatever the password (the lock cannot be used to test
    passwords), and guesses in flight at once cannot outrun the lock. Unknown usernames
    take the same path. A disabled account answers 403 to the right password (401 to a
    wrong one). Each login is a session (GET /sessions). Which limits apply to whom:
    docs/security.md.
    """
    svc = services()
    creds = await _credentials()
    binding = await dpop_binding()
    key = username_key(creds.username)
    client = request_client()
    try:
        attempt = await svc.logins.admit(key, limit_key(client.address), time.time())
    except Throttled:
        await svc.events.record(
            SecurityEvent(LOGIN_BLOCKED, client=client, detail={"username": creds.username})
        )
        raise
    # Read before the password check: the session is created only if no password
    # change or disabling committed in between (see start_session).
    user = await svc.users.by_key(key)
    if not await svc.passwords.verify(user.password_hash if user else None, creds.password):
        await attempt.failed()
        await svc.events.record(
            SecurityEvent(
                LOGIN_FAILED,
                user_id=user.id if user else None,
                client=client,
                detail=None if user else {"username": creds.username},
            )
        )
        raise AppError(401, BAD_CREDENTIALS)
    assert user is not None  # verify() is never True without a stored hash
    if user.disabled:
        await attempt.succeeded()
        await svc.events.record(
            SecurityEvent(
                LOGIN_FAILED, user_id=user.id, client=client, detail={"reason": "disabled"}
            )
        )
        raise AppError(403, ACCOUNT_DISABLED)
    if svc.passwords.needs_rehash(user.password_hash):
        await svc.users.set_password_hash(user.id, await svc.passwords.hash(creds.password))
    # TOTP on: 401 "MFA required", the check counted until the second factor succeeds.
    await second_factor_step(user, attempt)
    await attempt.succeeded()
    return await issue_login(user, epoch=user.credential_epoch, binding=binding)


@bp.post("/token/refresh")
@errors(*TOKEN_ERRORS, 413, 429, UNAVAILABLE)
@jwt_required(refresh=True, skip_revocation_check=True)
@document_response(TokenPair)
async def refresh() -> Response:
    """Swap a refresh token for a new pair (rotation).

    The session's row in the shared store decides, in one transaction: only its current
    refresh token rotates (two workers racing with it cannot both succeed); presenting
    an older one means it was stolen or replayed, so the whole session ends (with
    ``REFRESH_REUSE_GRACE_SECONDS``, the one rotated out last is accepted again for
    that long). A session that ended (logout, password change, ended by its user or an
    admin) refuses; one that idled or aged out answers 401 "Session has expired".
    """
    return await rotate(get_jwt_header(), get_jwt(), await dpop_binding())


async def rotate(header: dict[str, Any], claims: dict[str, Any], binding: Binding) -> Response:
    """The rotation of a verified refresh token (``refresh``'s docstring): /token/refresh
    and the refresh_token grant of /oauth/token. A bound pair stays bound to its key."""
    rotation, pair = await refresh_session(
        claims, request_client(), additional_claims=binding.claims or None
    )
    if pair is None:
        if rotation.outcome == "expired":
            raise AppError(401, SESSION_EXPIRED)
        raise RevokedTokenError(header, claims)
    return pair_response(pair, binding)


@bp.post("/logout")
@errors(*TOKEN_ERRORS, 413, UNAVAILABLE)
@jwt_required()
@document_response(Message)
async def logout() -> dict[str, str]:
    """End this session: revoke this access token and every token of its login."""
    svc = services()
    claims = get_jwt()
    now = time.time()
    expires_at = float(claims.get("exp") or now + svc.config["JWT_ACCESS_TOKEN_EXPIRES"])
    await revoke_token(
        claims, expires_at, login=True, reason="logout", kind=LOGOUT, client=request_client()
    )
    return {"msg": "Successfully logged out"}
