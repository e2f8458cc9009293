"""Async SQLAlchemy persistence: engine lifecycle, models and stores."""

from __future__ import annotations

from .db import Database
from .revocations import SqlRevocationStore
from .users import UsernameTaken, UserRecord, UserStore

__all__ = ["Database", "SqlRevocationStore", "UserRecord", "UserStore", "UsernameTaken"]
