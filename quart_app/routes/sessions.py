"""A user's sessions (GET/DELETE /sessions, DELETE /sessions/{id}) and security events
(GET /me/events)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel
from quart import Blueprint
from quart_schema import document_response, validate_querystring

from ..accounts.events import SESSION_ENDED, SecurityEvent
from ..accounts.sessions import end_all_sessions, end_session, user_id_of
from ..errors import AppError
from ..jwt import get_jwt, jwt_required
from ..jwt.revocation import FAMILY_CLAIM
from ..schemas import Message
from ..security.client_address import request_client
from ..services import services
from ..store.events import EventRecord
from ..store.sessions import SessionRecord, UserNotFound
from .openapi import TOKEN_ERRORS, UNAVAILABLE, errors

bp = Blueprint("sessions", __name__)

SESSION_NOT_FOUND = "Session not found"


class SessionOut(BaseModel):
    id: str = Field(description="The session id: the `fam` claim of its tokens")
    created_at: datetime = Field(description="When the login happened (UTC)")
    last_used_at: datetime = Field(description="The last login or refresh (UTC)")
    expires_at: datetime = Field(
        description="When it ends without a refresh: the idle timeout or the maximum age"
    )
    client: str = Field(description="The client address the limits saw")
    user_agent: str
    current: bool = Field(description="Whether the token of this request belongs to it")


class SessionList(RootModel[list[SessionOut]]):
    """Live sessions, most recent activity first."""


class SessionsEnded(BaseModel):
    msg: str
    ended: int


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=50, ge=1, le=200)
    before: datetime | None = Field(
        default=None, description="An event's `time`: only older events (the next page)"
    )


class EventOut(BaseModel):
    time: datetime
    event: str
    client: str
    user_agent: str
    session_id: str | None


class EventList(RootModel[list[EventOut]]):
    """Events, newest first."""


def when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def session_out(record: SessionRecord, *, current: str | None, idle: float) -> dict[str, Any]:
    return {
        "id": record.id,
        "created_at": when(record.created_at),
        "last_used_at": when(record.last_used_at),
        "expires_at": when(min(record.expires_at, record.last_used_at + idle)),
        "client": record.client,
        "user_agent": record.user_agent,
        "current": record.id == current,
    }


def event_out(record: EventRecord) -> dict[str, Any]:
    return {
        "time": when(record.time),
        "event": record.event,
        "client": record.client,
        "user_agent": record.user_agent,
        "session_id": record.session_id,
    }


def before_seconds(before: datetime | None) -> float | None:
    if before is None:
        return None
    return (before if before.tzinfo else before.replace(tzinfo=UTC)).timestamp()


def _me() -> tuple[int, str | None]:
    """The token's user id and session id."""
    claims = get_jwt()
    user_id = user_id_of(claims.get("sub"))
    if user_id is None:
        raise AppError(404, SESSION_NOT_FOUND)
    family = claims.get(FAMILY_CLAIM)
    return user_id, family if isinstance(family, str) else None


@bp.get("/sessions")
@errors(*TOKEN_ERRORS, UNAVAILABLE)
@jwt_required()
@document_response(SessionList)
async def list_sessions() -> list[dict[str, Any]]:
    """Your live sessions (one per login), most recent activity first."""
    svc = services()
    user_id, current = _me()
    idle = svc.sessions.lifetimes.idle
    return [
        session_out(record, current=current, idle=idle)
        for record in await svc.sessions.live(user_id)
    ]


@bp.delete("/sessions/<string:session_id>")
@errors(*TOKEN_ERRORS, 404, UNAVAILABLE)
@jwt_required()
@document_response(Message)
async def delete_session(session_id: str) -> dict[str, str]:
    """End one of your sessions (this one too, if you name it): every token of it dies."""
    user_id, _ = _me()
    event = SecurityEvent(
        SESSION_ENDED, user_id=user_id, session_id=session_id, client=request_client()
    )
    if len(session_id) > 64 or not await end_session(
        user_id, session_id, reason="ended_by_user", event=event
    ):
        raise AppError(404, SESSION_NOT_FOUND)
    return {"msg": "Session ended"}


@bp.delete("/sessions")
@errors(*TOKEN_ERRORS, UNAVAILABLE)
@jwt_required()
@document_response(SessionsEnded)
async def delete_other_sessions() -> dict[str, Any]:
    """Sign out everywhere else: end every session of yours but this one."""
    user_id, current = _me()
    event = SecurityEvent(
        SESSION_ENDED, user_id=user_id, session_id=current, client=request_client()
    )
    try:
        ended = await end_all_sessions(user_id, reason="ended_by_user", event=event, keep=current)
    except UserNotFound:
        ended = 0
    return {"msg": "Other sessions ended", "ended": ended}


@bp.get("/me/events")
@errors(400, *TOKEN_ERRORS, UNAVAILABLE)
@jwt_required()
@validate_querystring(EventsQuery)
@document_response(EventList)
async def my_events(query_args: EventsQuery) -> list[dict[str, Any]]:
    """Your security events (logins, refreshes, ended sessions...), newest first."""
    user_id, _ = _me()
    records = await services().events.page(
        limit=query_args.limit, user_id=user_id, before=before_seconds(query_args.before)
    )
    return [event_out(record) for record in records]
