"""Security notices: "your password was changed" and the like, to a verified address.

:func:`queue_notification` is what every feature calls, inside the transaction that made
the change it reports: the notice is sent if and only if the change commits. The caller
records its security event in the same transaction (the notice is the mail only).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..store.models import User, UserEmail
from .outbox import queue_mail

if TYPE_CHECKING:
    from ..store.events import Recording

#: Notice kind -> what the mail says happened (also the template's ``what``).
NOTICES = {
    "password_changed": "Your password was changed.",
    "password_reset": "Your password was reset with a link sent to this address.",
    "mfa_enabled": "Two-factor authentication was turned on for your account.",
    "mfa_disabled": "Two-factor authentication was turned off for your account.",
    "passkey_added": "A new passkey was added to your account.",
    "new_signin": "Your account was signed in to from a client not seen before.",
    "email_changed": "The email address of your account was changed.",
}


async def queue_notification(
    session: AsyncSession,
    user_id: int,
    kind: str,
    details: Mapping[str, Any] | None = None,
    *,
    recipient: str | None = None,
) -> str | None:
    """Queue the notice ``kind`` (a key of :data:`NOTICES`) to ``user_id``'s verified
    address in ``session``'s transaction; None when the user has none.

    ``details`` (short strings: a client, an address) are shown in the mail. ``recipient``
    overrides the address (the old one, when the address itself changes).
    """
    if kind not in NOTICES:
        raise ValueError(f"unknown notice {kind!r}; one of {', '.join(NOTICES)}")
    row = (
        await session.execute(
            select(User.username, UserEmail.email, UserEmail.verified_key)
            .join(UserEmail, UserEmail.user_id == User.id, isouter=True)
            .where(User.id == user_id)
        )
    ).first()
    if row is None:
        return None
    address = recipient or (row.email if row.verified_key is not None else None)
    if not address:
        return None
    context = {
        "kind": kind,
        "what": NOTICES[kind],
        "username": row.username,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "details": {str(key): str(value) for key, value in (details or {}).items()},
    }
    return await queue_mail(
        session, recipient=address, template="notice", context=context, user_id=user_id
    )


def notify(
    user_id: int, kind: str, details: Mapping[str, Any] | None = None
) -> Callable[[Recording], Awaitable[None]]:
    """The notice as a step of a recorded transaction (``end_all_sessions(within=...)``)."""
    if kind not in NOTICES:
        raise ValueError(f"unknown notice {kind!r}")

    async def step(tx: Recording) -> None:
        await queue_notification(tx.session, user_id, kind, details)

    return step
