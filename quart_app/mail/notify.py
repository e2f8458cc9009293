"""Security notices: "your password was changed" and the like, to a verified address.

Recording one of the events of :data:`EVENT_NOTICES` (``store.events.recording``) queues
its notice in the same transaction, so features only record their events.
:func:`queue_notification` queues one directly, inside the caller's transaction (e.g. to
another address): the notice is sent if and only if the transaction commits.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..store.models import User, UserEmail
from .outbox import queue_mail

if TYPE_CHECKING:
    from ..accounts.events import SecurityEvent

#: Notice kind -> what the mail says happened (also the template's ``what``).
NOTICES = {
    "password_changed": "Your password was changed.",
    "password_reset": "Your password was reset with a link sent to this address.",
    "mfa_enabled": "Two-factor authentication was turned on for your account.",
    "mfa_disabled": "Two-factor authentication was turned off for your account.",
    "passkey_added": "A new passkey was added to your account.",
    "recovery_code_used": (
        "One of your recovery codes was used. If that was not you, change your password"
        " and make new recovery codes."
    ),
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


#: Security event -> the notice it sends (to the user's verified address), queued in the
#: transaction that records the event (quart_app/store/events.py): a notice exists if and
#: only if its event does.
EVENT_NOTICES = {
    "password_changed": "password_changed",
    "password_reset": "password_reset",
    "mfa_enabled": "mfa_enabled",
    "mfa_disabled": "mfa_disabled",
    "mfa_reset": "mfa_disabled",
    "passkey_added": "passkey_added",
    "mfa_recovery_code_used": "recovery_code_used",
    "new_signin": "new_signin",
}


async def notify_events(session: AsyncSession, events: Iterable[SecurityEvent]) -> None:
    """Queue the notice of each event that has one, in ``session``'s transaction."""
    for event in events:
        kind = EVENT_NOTICES.get(event.event)
        if kind is None or event.user_id is None:
            continue
        details = {}
        if event.client.user_agent:
            details["client"] = event.client.user_agent
        if event.client.address:
            details["address"] = event.client.address
        await queue_notification(session, event.user_id, kind, details)
