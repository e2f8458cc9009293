"""Durations as Flask-JWT-Extended takes them: ``timedelta``, ``dateutil.relativedelta``
or anything else that can be added to a ``datetime``; ``JWT_*_TOKEN_EXPIRES`` also as a
number of seconds, or False for "never".

A ``relativedelta(months=1)`` is a different number of seconds depending on the day, so
a duration is kept as given and turned into a moment only when a token is made.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


def expires_delta(value: Any, name: str) -> Any:
    """``value`` checked as FJE checks ``JWT_ACCESS_TOKEN_EXPIRES``: None means "never".

    Whole seconds become a timedelta (as FJE; floats too, where FJE raises); anything
    else must add to a datetime, or this raises FJE's RuntimeError naming the setting.
    A zero duration, as in FJE, gives tokens without ``exp``.
    """
    if value is False:
        return None
    if type(value) in (int, float):
        value = timedelta(seconds=value)
    try:
        value + datetime.now(UTC)
    except TypeError as error:
        raise RuntimeError(f"must be able to add {name} to datetime.datetime") from error
    return value if value else None


def after(now: float, delta: Any) -> float:
    """The POSIX time ``delta`` after ``now`` (a timedelta, relativedelta, ...)."""
    if isinstance(delta, timedelta):
        return now + delta.total_seconds()
    moment: datetime = datetime.fromtimestamp(now, UTC) + delta
    return moment.timestamp()


def is_duration(value: Any) -> bool:
    """Whether ``value`` is a duration rather than a bool or a number (``fresh``)."""
    if isinstance(value, bool | int | float):
        return False
    try:
        value + datetime.now(UTC)
    except TypeError:
        return False
    return True


def leeway_seconds(value: Any) -> float:
    """``JWT_DECODE_LEEWAY``: seconds, a timedelta, or a relativedelta (from now)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    now = datetime.now(UTC)
    try:
        later: datetime = now + value
    except TypeError as error:
        raise RuntimeError("JWT_DECODE_LEEWAY must be seconds or a timedelta") from error
    return (later - now).total_seconds()
