"""A clock that moves only when a test moves it, for ``JWTManager(clock=...)``.

The JWT extension reads every "now" from its manager's clock (creation, verification,
freshness, cookies, sockets, keys, revocation pruning, DPoP): with this one a test
crosses a token's lifetime at once instead of sleeping through it.
"""

from __future__ import annotations

import time

import jwt


class FrozenClock:
    """POSIX seconds, starting at the real time (or ``start``), moved by :meth:`advance`."""

    def __init__(self, start: float | None = None) -> None:
        self.time = time.time() if start is None else start

    def __call__(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds

    def past_expiry(self, token: str) -> None:
        """Move past ``token``'s ``exp``, as far as a real wait for it would (1.05 s)."""
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        self.time = max(self.time, exp + 1.05)


class ShiftedClock:
    """The real time plus an offset that :meth:`advance` moves: time still flows, so timers
    armed from it (a socket's end at ``exp``) fire on their own, only sooner."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
