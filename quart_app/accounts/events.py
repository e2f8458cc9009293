"""Security events: what happened to an account, kept in ``security_events`` and logged.

An event is written in the same transaction as what it records (a login whose event
cannot be written fails with it), through :func:`quart_app.store.events.recording`, and
once committed it is also logged as one structured line on the ``quart_app.security``
logger. Token checks record nothing: /protected and /auth/verify stay free of I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("quart_app.security")

#: The events this service records (second factors and recovery add theirs).
REGISTER = "register"
LOGIN = "login"
LOGIN_FAILED = "login_failed"
LOGIN_BLOCKED = "login_blocked"
REFRESH = "refresh"
REFRESH_REUSE = "refresh_reuse"
LOGOUT = "logout"
SESSION_ENDED = "session_ended"
PASSWORD_CHANGED = "password_changed"
ACCOUNT_DISABLED = "account_disabled"
ACCOUNT_ENABLED = "account_enabled"
ADMIN_GRANTED = "admin_granted"
ADMIN_REVOKED = "admin_revoked"

#: Longest client address and user agent kept (longer ones are cut).
CLIENT_MAX = 64
USER_AGENT_MAX = 256


@dataclass(frozen=True, slots=True)
class Client:
    """Who made the request: the address the limits see and the User-Agent header."""

    address: str = ""
    user_agent: str = ""

    def clipped(self) -> Client:
        return Client(self.address[:CLIENT_MAX], self.user_agent[:USER_AGENT_MAX])


#: What the command line and other requests without a client record.
NO_CLIENT = Client()


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One event. ``time`` is epoch seconds (the recording host's clock)."""

    event: str
    user_id: int | None = None
    session_id: str | None = None
    client: Client = NO_CLIENT
    detail: Mapping[str, Any] | None = None
    time: float = field(default_factory=time.time)


def log_events(events: Iterable[SecurityEvent]) -> None:
    """One structured line per event (JSON fields with ``LOG_FORMAT=json``)."""
    for event in events:
        log.info(
            "security event",
            extra={
                "event": event.event,
                "user_id": event.user_id,
                "session_id": event.session_id,
                "client": event.client.address,
                "user_agent": event.client.user_agent,
                "detail": dict(event.detail) if event.detail else None,
                "event_time": event.time,
            },
        )
