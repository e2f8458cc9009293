"""Administration: a user's sessions, ending them, disabling an account, every event.

The role is read from the database at each request (never from a token), so an admin
who is demoted or disabled loses the rights at once. CLI equivalents: ``quart-app
admin``, ``sessions``, ``end-sessions``, ``disable``, ``enable``, ``events``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel
from quart import Blueprint
from quart_schema import document_response, validate_querystring

from ..accounts.events import ACCOUNT_DISABLED, ACCOUNT_ENABLED, SESSION_ENDED, SecurityEvent
from ..accounts.sessions import end_all_sessions, user_id_of
from ..errors import AppError
from ..jwt import get_jwt, jwt_required
from ..schemas import Message
from ..security.client_address import request_client
from ..services import services
from ..store.sessions import UserNotFound
from ..store.users import UserRecord
from .openapi import TOKEN_ERRORS, UNAVAILABLE, errors
from .sessions import EventOut, SessionList, SessionsEnded, before_seconds, event_out, session_out

bp = Blueprint("admin", __name__, url_prefix="/admin")

P = ParamSpec("P")
T = TypeVar("T")

ADMIN_REQUIRED = "Admin rights required"
USER_NOT_FOUND = "User not found"
#: Database ids are 64-bit.
MAX_ID = 2**63 - 1


class AdminEventsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: int | None = Field(default=None, ge=0, le=MAX_ID)
    event: str | None = Field(default=None, max_length=32)
    limit: int = Field(default=50, ge=1, le=200)
    before: datetime | None = Field(
        default=None, description="An event's `time`: only older events (the next page)"
    )


class AdminEventOut(EventOut):
    user_id: int | None


class AdminEventList(RootModel[list[AdminEventOut]]):
    """Events of every user, newest first."""


async def current_admin() -> UserRecord:
    """The token's user if it is an enabled admin (read now), else 403."""
    user_id = user_id_of(get_jwt().get("sub"))
    user = await services().users.by_id(user_id) if user_id is not None else None
    if user is None or not user.is_admin or user.disabled:
        raise AppError(403, ADMIN_REQUIRED)
    return user


def admin_required(view: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """An access token of a user whose role is "admin" in the database right now."""

    @functools.wraps(view)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        await current_admin()
        return await view(*args, **kwargs)

    return jwt_required()(wrapper)


async def _target(user_id: int) -> UserRecord:
    user = await services().users.by_id(user_id) if 0 <= user_id <= MAX_ID else None
    if user is None:
        raise AppError(404, USER_NOT_FOUND)
    return user


def _event(name: str, user_id: int) -> SecurityEvent:
    admin = user_id_of(get_jwt().get("sub"))
    return SecurityEvent(name, user_id=user_id, client=request_client(), detail={"by": admin})


async def _end_all(user_id: int, *, reason: str, kind: str, disabled: bool | None = None) -> int:
    """End every session of the user (a ``kind`` event by this admin); 404 when the user
    is gone by then."""
    try:
        return await end_all_sessions(
            user_id, reason=reason, event=_event(kind, user_id), disabled=disabled
        )
    except UserNotFound:
        raise AppError(404, USER_NOT_FOUND) from None


@bp.get("/users/<int:user_id>/sessions")
@errors(*TOKEN_ERRORS, 403, 404, UNAVAILABLE)
@admin_required
@document_response(SessionList)
async def user_sessions(user_id: int) -> list[dict[str, Any]]:
    """A user's live sessions (``current`` is false)."""
    user = await _target(user_id)
    svc = services()
    idle = svc.sessions.lifetimes.idle
    return [
        session_out(record, current=None, idle=idle) for record in await svc.sessions.live(user.id)
    ]


@bp.delete("/users/<int:user_id>/sessions")
@errors(*TOKEN_ERRORS, 403, 404, UNAVAILABLE)
@admin_required
@document_response(SessionsEnded)
async def end_user_sessions(user_id: int) -> dict[str, Any]:
    """End every session of a user (on every worker within the revocation bound)."""
    user = await _target(user_id)
    ended = await _end_all(user.id, reason="ended_by_admin", kind=SESSION_ENDED)
    return {"msg": "Sessions ended", "ended": ended}


@bp.post("/users/<int:user_id>/disable")
@errors(*TOKEN_ERRORS, 403, 404, UNAVAILABLE)
@admin_required
@document_response(Message)
async def disable_user(user_id: int) -> dict[str, str]:
    """Disable an account: every session ends, and it cannot log in (403) until enabled."""
    user = await _target(user_id)
    await _end_all(user.id, reason="disabled", kind=ACCOUNT_DISABLED, disabled=True)
    return {"msg": "Account disabled"}


@bp.post("/users/<int:user_id>/enable")
@errors(*TOKEN_ERRORS, 403, 404, UNAVAILABLE)
@admin_required
@document_response(Message)
async def enable_user(user_id: int) -> dict[str, str]:
    """Let a disabled account log in again."""
    user = await _target(user_id)
    if not await services().users.enable(user.id, event=_event(ACCOUNT_ENABLED, user.id)):
        raise AppError(404, USER_NOT_FOUND)
    return {"msg": "Account enabled"}


@bp.get("/events")
@errors(400, *TOKEN_ERRORS, 403, UNAVAILABLE)
@admin_required
@validate_querystring(AdminEventsQuery)
@document_response(AdminEventList)
async def all_events(query_args: AdminEventsQuery) -> list[dict[str, Any]]:
    """Every user's security events, newest first (filter by user and event)."""
    records = await services().events.page(
        limit=query_args.limit,
        user_id=query_args.user_id,
        event=query_args.event,
        before=before_seconds(query_args.before),
    )
    return [{**event_out(record), "user_id": record.user_id} for record in records]
