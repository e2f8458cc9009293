"""Passkeys over HTTP: registration (fresh token), discoverable login, list and delete.

The ceremonies themselves are in quart_app/accounts/passkeys.py. A passkey login is a
full login (user verification is required): a fresh pair, like /login. A failed
assertion for a registered passkey is a failed login of its account (the same atomic
limits as a wrong password).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, request
from quart_schema import document_response, validate_request

from ..accounts import mfa as events
from ..accounts.passkeys import PasskeyError
from ..errors import AppError
from ..jwt import get_jwt, jwt_required
from ..schemas import Message, TokenPair, normalise_username, username_key
from ..security.binding import dpop_binding
from ..security.client_address import client_address, limit_key
from ..services import services
from ..store.passkeys import PasskeyRecord
from .auth import issue_login
from .mfa_step import actor, record_event, second_factors
from .openapi import TOKEN_ERRORS, UNAVAILABLE, errors, public

bp = Blueprint("webauthn", __name__)

FAILED = "Passkey verification failed"


class CreationOptions(BaseModel):
    """PublicKeyCredentialCreationOptions as JSON (binary fields base64url), for
    ``PublicKeyCredential.parseCreationOptionsFromJSON``."""

    model_config = ConfigDict(extra="allow")

    challenge: str
    rp: dict[str, Any]
    user: dict[str, Any]
    pubKeyCredParams: list[dict[str, Any]]


class RequestOptions(BaseModel):
    """PublicKeyCredentialRequestOptions as JSON (binary fields base64url), for
    ``PublicKeyCredential.parseRequestOptionsFromJSON``."""

    model_config = ConfigDict(extra="allow")

    challenge: str
    rpId: str


class Credential(BaseModel):
    """A ``PublicKeyCredential.toJSON()`` as the browser gives it."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(max_length=1400)
    rawId: str = Field(max_length=1400)
    type: str = Field(max_length=32, examples=["public-key"])
    response: dict[str, Any]


class PasskeyRegistration(Credential):
    name: str | None = Field(default=None, max_length=64, description="Shown in the list.")


class LoginBegin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(default=None, max_length=256)


class PasskeyOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None = None


class PasskeyList(BaseModel):
    passkeys: list[PasskeyOut]


def _out(passkey: PasskeyRecord) -> dict[str, Any]:
    return {
        "id": passkey.id,
        "name": passkey.name,
        "created_at": passkey.created_at.isoformat(),
        "last_used_at": passkey.last_used_at.isoformat() if passkey.last_used_at else None,
    }


def _origins() -> list[str]:
    return second_factors().passkeys.rp.expected_origins(
        f"{request.scheme}://{request.host}", request.host
    )


def _user_id() -> int:
    return int(str(get_jwt()["sub"]))


@bp.post("/webauthn/register/begin")
@errors(*TOKEN_ERRORS, UNAVAILABLE)
@jwt_required(fresh=True)
@document_response(CreationOptions)
async def register_begin() -> dict[str, Any]:
    """Start registering a passkey (fresh token): the options for
    ``navigator.credentials.create``; the challenge is good for 5 minutes, once."""
    user_id = _user_id()
    username = str(get_jwt().get("username") or user_id)
    return await second_factors().passkeys.register_begin(user_id, username)


@bp.post("/webauthn/register/finish")
@errors(400, *TOKEN_ERRORS, 413, UNAVAILABLE)
@jwt_required()
@validate_request(PasskeyRegistration)
@document_response(PasskeyOut, 201)
async def register_finish(data: PasskeyRegistration) -> tuple[dict[str, Any], int]:
    """Finish registering: the credential ``navigator.credentials.create`` made, and an
    optional name. User verification is required."""
    user_id = _user_id()
    credential = data.model_dump(exclude={"name"})
    name = (data.name or "").strip() or "Passkey"
    try:
        passkey = await second_factors().passkeys.register_finish(
            user_id, credential, name, _origins(), actor()
        )
    except PasskeyError as error:
        await record_event(events.PASSKEY_REFUSED, user_id, reason=str(error)[:80])
        raise AppError(400, "Passkey registration failed") from None
    return _out(passkey), 201


@bp.get("/me/passkeys")
@errors(*TOKEN_ERRORS, UNAVAILABLE)
@jwt_required()
@document_response(PasskeyList)
async def list_passkeys() -> dict[str, Any]:
    """The token's user's passkeys."""
    passkeys = await second_factors().passkeys.store.of_user(_user_id())
    return {"passkeys": [_out(p) for p in passkeys]}


@bp.delete("/me/passkeys/<int:passkey_id>")
@errors(*TOKEN_ERRORS, 404, UNAVAILABLE)
@jwt_required(fresh=True)
@document_response(Message)
async def delete_passkey(passkey_id: int) -> dict[str, str]:
    """Remove one of the user's passkeys (fresh token)."""
    user_id = _user_id()
    removed = passkey_id < 2**63 and await second_factors().passkeys.remove(
        user_id, passkey_id, actor()
    )
    if not removed:
        raise AppError(404, "Passkey not found")
    return {"msg": "Passkey deleted"}


@bp.post("/webauthn/login/begin")
@public
@errors(400, 413, 429, UNAVAILABLE)
@validate_request(LoginBegin)
@document_response(RequestOptions)
async def login_begin(data: LoginBegin) -> dict[str, Any]:
    """Start a passkey login: request options, for discoverable credentials when no
    ``username`` is given (the browser offers the user's passkeys for this site)."""
    user_id = None
    if data.username:
        try:
            user = await services().users.by_key(username_key(normalise_username(data.username)))
        except ValueError:
            user = None
        # An unknown username gets the discoverable options: no account oracle.
        user_id = user.id if user else None
    return await second_factors().passkeys.login_begin(user_id)


@bp.post("/webauthn/login/finish")
@public
@errors(400, 401, 413, 429, UNAVAILABLE)
@validate_request(Credential)
@document_response(TokenPair)
async def login_finish(data: Credential) -> Response:
    """Finish a passkey login with the assertion ``navigator.credentials.get`` made: the
    /login pair, fresh. A passkey with user verification is a full login."""
    svc = services()
    binding = await dpop_binding()  # a DPoP proof binds the pair to its key
    passkeys = second_factors().passkeys
    assertion = data.model_dump()
    passkey = await passkeys.credential_of(assertion)
    if passkey is None:
        raise AppError(401, FAILED)
    user = await svc.users.by_id(passkey.user_id)
    if user is None:
        raise AppError(401, FAILED)
    epoch = user.credential_epoch  # read before the check, as for a password
    attempt = await svc.logins.admit(
        username_key(user.username), limit_key(client_address()), time.time()
    )
    try:
        await passkeys.login_finish(passkey, assertion, _origins())
    except PasskeyError as error:
        await attempt.failed()
        await record_event(
            events.PASSKEY_LOGIN_FAILED, user.id, passkey=passkey.id, reason=str(error)[:80]
        )
        raise AppError(401, FAILED) from None
    await attempt.succeeded()
    return await issue_login(user, epoch=epoch, method="passkey", binding=binding)
