"""The open authenticated WebSockets of one worker, ended the moment their token dies.

Each socket verified by ``jwt_required`` (or ``websocket_auth``) is a
:class:`SocketSession`, indexed by its token's ``jti``, login family and identity. Two
things end a session, and neither polls per socket:

* **revocation**: the worker's revocation mirror calls :meth:`SocketRegistry.revoked`
  with every entry new to it, whoever made it (this worker, the SQL poll, the Redis
  listener), so a logout, a password change, ``revoke-user`` or a refresh-token replay
  anywhere reaches the socket as soon as it reaches the mirror;
* **expiry**: one heap of ``exp`` times per worker and one timer armed for the earliest.

Ending a session cancels the task serving the socket; the view's wrapper catches that
cancellation, sends ``{"type": "revoked"|"expired", "msg": ...}`` and closes with 4401
(``quart_app.jwt.websocket``). Nothing here touches Quart: it is plain asyncio.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from .revocation import FAMILY_CLAIM, Revocation, RevocationList
from .tokens import numeric_date

log = logging.getLogger(__name__)

EndKind = Literal["revoked", "expired"]
REVOKED: EndKind = "revoked"
EXPIRED: EndKind = "expired"
#: The ``msg`` sent with each end, the texts of the HTTP token errors.
MESSAGES: dict[EndKind, str] = {REVOKED: "Token has been revoked", EXPIRED: "Token has expired"}


class SocketSession:
    """One open socket and the token it currently lives on."""

    __slots__ = ("claims", "ended", "exp", "family", "header", "iat", "jti", "sub", "task")

    def __init__(self, task: asyncio.Task[Any], header: Mapping[str, Any]) -> None:
        self.task = task
        self.header: Mapping[str, Any] = header
        self.claims: Mapping[str, Any] = {}
        self.jti: str | None = None
        self.family: str | None = None
        self.sub: str | None = None
        self.iat: float | None = None
        self.exp: float | None = None
        #: Why the session ended, once it has: ``(kind, msg)``.
        self.ended: tuple[EndKind, str] | None = None

    def _bind(
        self, header: Mapping[str, Any], claims: Mapping[str, Any], identity_key: str
    ) -> None:
        self.header, self.claims = header, claims
        jti, family, iat, exp = (claims.get(k) for k in ("jti", FAMILY_CLAIM, "iat", "exp"))
        self.jti = jti if isinstance(jti, str) else None
        self.family = family if isinstance(family, str) and family else None
        sub = claims.get(identity_key)
        self.sub = None if sub is None else str(sub)
        self.iat, self.exp = numeric_date(iat), numeric_date(exp)


class SocketRegistry:
    """Every open authenticated socket of one app in this worker (see the module doc)."""

    def __init__(
        self,
        identity_claim_key: str = "sub",
        leeway: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity_claim_key = identity_claim_key
        self.leeway = leeway
        #: The wall clock ``exp`` is compared with (the manager's, see ``get_registry``).
        self.clock = clock
        self._sessions: set[SocketSession] = set()
        self._by_jti: dict[str, set[SocketSession]] = {}
        self._by_family: dict[str, set[SocketSession]] = {}
        self._by_sub: dict[str, set[SocketSession]] = {}
        self._heap: list[tuple[float, int, SocketSession]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: float | None = None
        self._mirrors: list[RevocationList] = []
        #: How many sessions ended, by kind (for metrics and tests).
        self.ended: dict[EndKind, int] = {REVOKED: 0, EXPIRED: 0}

    def __len__(self) -> int:
        return len(self._sessions)

    def watch(self, mirror: RevocationList) -> None:
        """Follow ``mirror``: its new entries end the sessions they cover."""
        if not any(known is mirror for known in self._mirrors):
            self._mirrors.append(mirror)
            mirror.add_listener(self.revoked)

    # -- sessions --------------------------------------------------------------------

    def open(
        self, task: asyncio.Task[Any], header: Mapping[str, Any], claims: Mapping[str, Any]
    ) -> SocketSession:
        """Track the socket served by ``task``, living on the token ``claims``."""
        session = SocketSession(task, header)
        self._sessions.add(session)
        self.rebind(session, header, claims)
        return session

    def rebind(
        self, session: SocketSession, header: Mapping[str, Any], claims: Mapping[str, Any]
    ) -> None:
        """Move ``session`` onto another token (in-band re-authentication)."""
        if session.ended is not None or session not in self._sessions:
            return
        self._unindex(session)
        session._bind(header, claims, self.identity_claim_key)
        for index, key in (
            (self._by_jti, session.jti),
            (self._by_family, session.family),
            (self._by_sub, session.sub),
        ):
            if key is not None:
                index.setdefault(key, set()).add(session)
        if session.exp is not None:
            heapq.heappush(self._heap, (session.exp, next(self._order), session))
            self._compact()
            self._arm()
        # A revocation may have reached the mirror between verification and now.
        if any(mirror.is_revoked(claims, self.identity_claim_key) for mirror in self._mirrors):
            self.end(session, REVOKED)

    def close(self, session: SocketSession) -> None:
        """Forget ``session`` (its socket is closed); idempotent."""
        if session in self._sessions:
            self._sessions.discard(session)
            self._unindex(session)

    def end(self, session: SocketSession, kind: EndKind) -> bool:
        """End ``session``: its task is cancelled and told why. False if it had ended."""
        if session.ended is not None or session not in self._sessions:
            return False
        session.ended = (kind, MESSAGES[kind])
        self.ended[kind] += 1
        self.close(session)
        session.task.cancel()
        return True

    def end_matching(
        self,
        *,
        jti: str | None = None,
        family: str | None = None,
        sub: str | None = None,
        issued_before: float | None = None,
        kind: EndKind = REVOKED,
    ) -> int:
        """End the sessions on token ``jti``, of login ``family``, or of identity ``sub``
        (only those issued before ``issued_before`` when given). For revocations that
        the mirror does not see, e.g. a custom ``token_in_blocklist_loader``'s store.
        Returns how many ended.
        """
        victims: set[SocketSession] = set()
        if jti is not None:
            victims.update(self._by_jti.get(jti, ()))
        if family is not None:
            victims.update(self._by_family.get(family, ()))
        if sub is not None:
            victims.update(
                s
                for s in self._by_sub.get(sub, ())
                if issued_before is None or s.iat is None or s.iat < issued_before
            )
        return sum(self.end(session, kind) for session in victims)

    def revoked(self, entries: Iterable[Revocation]) -> None:
        """The mirror's listener: end every session an entry covers."""
        if not self._sessions:
            return
        for entry in entries:
            if entry.kind == "jti":
                self.end_matching(jti=entry.value)
            elif entry.kind == "family":
                self.end_matching(family=entry.value)
            elif entry.kind == "user" and entry.not_before is not None:
                self.end_matching(sub=entry.value, issued_before=entry.not_before)

    def _unindex(self, session: SocketSession) -> None:
        for index, key in (
            (self._by_jti, session.jti),
            (self._by_family, session.family),
            (self._by_sub, session.sub),
        ):
            if key is not None:
                bucket = index.get(key)
                if bucket is not None:
                    bucket.discard(session)
                    if not bucket:
                        del index[key]

    # -- expiry: one heap, one timer ---------------------------------------------------

    def _compact(self) -> None:
        """Drop heap entries of closed or rebound sessions once they are the majority."""
        if len(self._heap) > 2 * len(self._sessions) + 64:
            self._heap = [
                item for item in self._heap if item[2] in self._sessions and item[0] == item[2].exp
            ]
            heapq.heapify(self._heap)

    def _arm(self) -> None:
        if not self._heap:
            return
        due = self._heap[0][0] + self.leeway
        if self._timer is not None and self._timer_due is not None and self._timer_due <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        # exp is wall-clock time; the loop's clock is monotonic.
        delay = max(0.0, due - self.clock())
        self._timer = loop.call_later(delay, self.expire_due)
        self._timer_due = due

    def expire_due(self) -> None:
        """End every session whose token has expired by :attr:`clock`, then arm the timer
        for the next one. The timer calls it; so can whoever moved an injected clock."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_due = None
        now = self.clock()
        heap = self._heap
        while heap and heap[0][0] + self.leeway <= now:
            exp, _, session = heapq.heappop(heap)
            if session.exp == exp and session in self._sessions:
                self.end(session, EXPIRED)
        self._arm()

    def stop(self) -> None:
        """Cancel the expiry timer (at shutdown); open sessions are left to their tasks."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_due = None
