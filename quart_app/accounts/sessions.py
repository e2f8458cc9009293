"""Sessions: every login is one, the user sees and ends them, they idle and age out.

A session is the refresh-token family of one login (its id is the tokens' ``fam``
claim). :func:`start_session` is the one way a login becomes a token pair (password
login, a second factor, a passkey: each calls it once its checks passed);
:func:`refresh_session` rotates; :func:`end_session` and :func:`end_all_sessions` end.
Ending writes the family revocations in the same transaction and then announces them,
so every worker refuses the session's access tokens within the revocation bound and
closes its WebSockets; the fast path (/protected, /auth/verify) reads only its memory.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..jwt import create_access_token, create_refresh_token
from ..jwt.revocation import FAMILY_CLAIM, SESSION_CLAIM, Revocation
from ..services import Services, services
from ..store.events import Recording
from ..store.sessions import Ended, Rotation, SessionRecord, SessionRefused, UserNotFound
from ..store.users import UserRecord
from .events import Client, SecurityEvent

__all__ = [
    "IssuedPair",
    "SessionRefused",
    "UserNotFound",
    "end_all_sessions",
    "end_session",
    "refresh_session",
    "revoke_token",
    "start_session",
    "user_id_of",
]


@dataclass(frozen=True, slots=True)
class IssuedPair:
    """A token pair and the session it belongs to."""

    access_token: str
    refresh_token: str
    session_id: str
    expires_in: int

    def body(self) -> dict[str, Any]:
        """The JSON answer of /login and /token/refresh."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


async def _pair(
    svc: Services,
    session: SessionRecord,
    *,
    username: str,
    fresh: bool,
    started: float,
    additional_claims: dict[str, Any] | None,
) -> IssuedPair:
    """Sign a pair of ``session``: its refresh token carries ``session.current_jti`` and
    expires no later than the session does."""
    claims: dict[str, Any] = {
        **(additional_claims or {}),
        "username": username,
        FAMILY_CLAIM: session.id,
        SESSION_CLAIM: started,
    }
    identity = str(session.user_id)
    access = await create_access_token(identity, fresh=fresh, additional_claims=claims)
    # In whole seconds, as ``exp`` is: a session started the moment before this pair is
    # signed leaves a hair less than the full lifetime, which must not take a second off
    # it (the session's own end is checked at every refresh anyway).
    remaining = min(
        float(svc.config["JWT_REFRESH_TOKEN_EXPIRES"]),
        math.ceil(session.expires_at - svc.sessions.clock()),
    )
    refresh = await create_refresh_token(
        identity,
        expires_delta=timedelta(seconds=max(remaining, 1.0)),
        additional_claims={**claims, "jti": session.current_jti},
    )
    return IssuedPair(access, refresh, session.id, int(svc.config["JWT_ACCESS_TOKEN_EXPIRES"]))


async def announce(svc: Services, revoked: Sequence[Revocation]) -> None:
    """Enforce revocations already committed (with the sessions they end) in this
    worker at once and publish them (Redis); the others' SQL poll has them anyway."""
    if revoked:
        await svc.revocations.revoke(revoked)


async def start_session(
    user: UserRecord,
    client: Client,
    *,
    epoch: int,
    fresh: bool = True,
    method: str = "password",
    additional_claims: dict[str, Any] | None = None,
) -> IssuedPair:
    """Create the session of a login and sign its first pair; records ``login``.

    ``epoch`` is ``user.credential_epoch`` as read BEFORE the login's checks began
    (carry it across steps, e.g. from the password to the second factor): when the
    password changed or the account was disabled meanwhile, this raises
    :class:`SessionRefused` and no session exists. ``method`` is recorded in the event's
    detail; ``additional_claims`` go into both tokens (e.g. a DPoP ``cnf``).
    """
    svc = services()
    session, ended = await svc.sessions.start(
        user_id=user.id,
        epoch=epoch,
        session_id=uuid.uuid4().hex,
        jti=str(uuid.uuid4()),
        client=client,
        detail={"method": method},
    )
    await announce(svc, ended.revoked)
    return await _pair(
        svc,
        session,
        username=user.username,
        fresh=fresh,
        started=session.created_at,
        additional_claims=additional_claims,
    )


async def refresh_session(
    claims: dict[str, Any], client: Client, *, additional_claims: dict[str, Any] | None = None
) -> tuple[Rotation, IssuedPair | None]:
    """Spend a (signature-checked) refresh token: the new pair, or why there is none."""
    svc = services()
    family, jti, sub = claims.get(FAMILY_CLAIM), claims.get("jti"), claims.get("sub")
    user_id = user_id_of(sub)
    if not isinstance(family, str) or not isinstance(jti, str) or user_id is None:
        return Rotation("unknown"), None
    rotation = await svc.sessions.rotate(
        session_id=family,
        user_id=user_id,
        presented_jti=jti,
        new_jti=str(uuid.uuid4()),
        client=client,
    )
    await announce(svc, rotation.revoked)
    if rotation.session is None:
        return rotation, None
    pair = await _pair(
        svc,
        rotation.session,
        username=str(claims.get("username", "")),
        fresh=False,
        started=rotation.session.created_at,
        additional_claims=additional_claims,
    )
    return rotation, pair


async def end_session(
    user_id: int,
    session_id: str,
    *,
    reason: str,
    event: SecurityEvent,
    extra: Sequence[Revocation] = (),
) -> bool:
    """End one live session of the user; False when it is not one."""
    svc = services()
    ended: Ended = await svc.sessions.end(
        session_id, user_id=user_id, reason=reason, event=event, extra=extra
    )
    await announce(svc, ended.revoked)
    return bool(ended.ids)


async def revoke_token(
    claims: Mapping[str, Any],
    expires_at: float,
    *,
    login: bool,
    reason: str,
    kind: str,
    client: Client,
) -> None:
    """Revoke the token of ``claims`` until ``expires_at``; with ``login``, when the
    token names its login (``fam`` and a user), that whole login too: its session ends
    (reason ``reason``, a ``kind`` event from ``client``) with both revocations written
    in the same transaction."""
    svc = services()
    entries = [Revocation("jti", str(claims["jti"]), expires_at)]
    family = claims.get(FAMILY_CLAIM)
    user_id = user_id_of(claims.get("sub"))
    if login and isinstance(family, str) and family and user_id is not None:
        entries.append(
            Revocation("family", family, svc.sessions.clock() + svc.sessions.lifetimes.horizon)
        )
        await end_session(
            user_id,
            family,
            reason=reason,
            event=SecurityEvent(kind, user_id=user_id, session_id=family, client=client),
            extra=entries,
        )
    else:
        await svc.revocations.revoke(entries)


async def end_all_sessions(
    user_id: int,
    *,
    reason: str,
    event: SecurityEvent,
    keep: str | None = None,
    password_hash: str | None = None,
    disabled: bool | None = None,
    within: Callable[[Recording], Awaitable[object]] | None = None,
) -> int:
    """End every session of the user but ``keep``; returns how many ended.

    Race-free with logins in flight (see ``SessionStore.end_all``): a login whose
    password check began before this commits gets no session that outlives it. With
    ``password_hash`` (a password change) or ``disabled`` the user row changes in the
    same transaction, as does whatever ``within`` writes (it runs first; what it raises
    rolls the whole back and is raised here). Raises :class:`UserNotFound`.
    """
    svc = services()
    ended = await svc.sessions.end_all(
        user_id,
        reason=reason,
        event=event,
        keep=keep,
        password_hash=password_hash,
        disabled=disabled,
        within=within,
    )
    await announce(svc, ended.revoked)
    return len(ended.ids)


def user_id_of(sub: object) -> int | None:
    """The user id a ``sub`` claim names (canonical ASCII decimal, 63 bits), else None."""
    if not isinstance(sub, str) or not (sub.isascii() and sub.isdigit()) or len(sub) > 19:
        return None
    value = int(sub)
    return value if str(value) == sub and value < 2**63 else None
