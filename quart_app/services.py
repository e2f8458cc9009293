"""The per-app objects views use, kept in ``app.extensions`` (never module globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from quart import Quart, current_app

from .jwt import RevocationSync
from .security.login_limits import LoginGuard
from .security.passwords import Passwords
from .store import Database, UserStore
from .store.events import EventStore
from .store.sessions import SessionStore

EXTENSION_KEY = "quart_app"


@dataclass
class Services:
    db: Database
    users: UserStore
    passwords: Passwords
    revocations: RevocationSync
    logins: LoginGuard
    sessions: SessionStore
    events: EventStore
    config: dict[str, Any]


def services(app: Quart | None = None) -> Services:
    target = app if app is not None else current_app
    return cast(Services, target.extensions[EXTENSION_KEY])
