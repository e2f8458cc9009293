"""Async SQLAlchemy persistence: engine lifecycle, models and stores."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .db import Database
    from .revocations import SqlRevocationStore
    from .users import UsernameTaken, UserRecord, UserStore

__all__ = ["Database", "SqlRevocationStore", "UserRecord", "UserStore", "UsernameTaken"]

_HOMES = {
    "Database": "db",
    "SqlRevocationStore": "revocations",
    "UserRecord": "users",
    "UserStore": "users",
    "UsernameTaken": "users",
}


def __getattr__(name: str) -> Any:
    # Imported on first use, so that the command line's `db` group starts fast.
    if name in _HOMES:
        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
