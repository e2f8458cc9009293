"""Brute-force lockout: per account, per (account, source), and trusted sources.

The trade-off. A lock per account is the only thing that stops guessing spread over
many addresses (a botnet gets the per-address limit once per address), but a plain
account lock is also a weapon: one wrong password every few minutes from anywhere
keeps the owner out for as long as the attacker likes. So:

* **Account lock** (``users.failed_logins``/``locked_until``): after
  ``LOGIN_LOCKOUT_THRESHOLD`` failures in a row the account is locked for
  ``LOGIN_LOCKOUT_BASE_SECONDS``, doubling with every further failure up to
  ``LOGIN_LOCKOUT_MAX_SECONDS``. While locked, /login answers 429 whatever the password,
  and attempts are not counted (the attacker cannot stack up lock time). A lock that
  lapsed more than ``LOGIN_LOCKOUT_WINDOW_SECONDS`` ago is forgotten.
* **Source lock** (``login_sources``): the same rule per (account, client network), the
  network being what throttling counts (an IPv4 address or an IPv6 /64).
* **Trusted sources**: a network that logged in successfully to the account within
  ``LOGIN_TRUSTED_SOURCE_SECONDS`` is exempt from the *account* lock, not from its own
  source lock. An attacker elsewhere cannot keep the owner out of the networks the owner
  uses; an attacker who shares the owner's network is limited by the source lock like
  everyone there. A success during an account lock (from a trusted source) leaves the
  account's count alone, so the owner logging in does not hand the attacker a fresh
  budget; a success after the lock resets it.
* Sessions survive: the lock is on /login only, so clients holding a refresh token are
  not affected at all.

What is left: an owner on a *new* network (no trusted source yet, no refresh token)
during a sustained distributed attack waits out locks of at most the cap each; each
costs the attacker one request per lock period per account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Throttled
from ..store import UserRecord, UserStore
from ..store.logins import LoginSourceStore, SourceState

LOCKED = "Too many failed login attempts; try later"


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    threshold: int
    base: float
    cap: float
    window: float
    trust: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LockoutPolicy:
        return cls(
            threshold=int(config["LOGIN_LOCKOUT_THRESHOLD"]),
            base=float(config["LOGIN_LOCKOUT_BASE_SECONDS"]),
            cap=float(config["LOGIN_LOCKOUT_MAX_SECONDS"]),
            window=float(config["LOGIN_LOCKOUT_WINDOW_SECONDS"]),
            trust=float(config["LOGIN_TRUSTED_SOURCE_SECONDS"]),
        )


class Lockout:
    """The lockout decisions of one login attempt (see the module docstring)."""

    def __init__(self, users: UserStore, sources: LoginSourceStore, policy: LockoutPolicy) -> None:
        self.users = users
        self.sources = sources
        self.policy = policy

    async def check(self, user: UserRecord, source: str, now: float) -> SourceState | None:
        """Raise ``Throttled`` when this attempt may not even try a password."""
        state = await self.sources.get(user.id, source)
        if state is not None and state.locked_until is not None and state.locked_until > now:
            raise Throttled(state.locked_until - now, LOCKED)
        locked = user.locked_until is not None and user.locked_until > now
        if locked and not _trusted(state, now):
            assert user.locked_until is not None
            raise Throttled(user.locked_until - now, LOCKED)
        return state

    async def failed(
        self, user: UserRecord, source: str, state: SourceState | None, now: float
    ) -> None:
        """Count a wrong password; raise ``Throttled`` if that locked this attempt out."""
        policy = self.policy
        account_until = await self.users.record_failure(
            user.id, now, policy.threshold, policy.base, policy.cap, policy.window
        )
        source_until = await self.sources.record_failure(
            user.id,
            source,
            now,
            threshold=policy.threshold,
            base=policy.base,
            cap=policy.cap,
            window=policy.window,
        )
        candidates = [source_until] if _trusted(state, now) else [account_until, source_until]
        until = max((u for u in candidates if u is not None), default=None)
        if until is not None:
            raise Throttled(until - now, LOCKED)

    async def succeeded(
        self, user: UserRecord, source: str, state: SourceState | None, now: float
    ) -> None:
        """Reset what a success resets, and (re)trust the source."""
        account_locked = user.locked_until is not None and user.locked_until > now
        if not account_locked and (user.failed_logins or user.locked_until is not None):
            await self.users.record_success(user.id)
        fresh_enough = (
            state is not None
            and not state.failures
            and state.locked_until is None
            and (state.trusted_until or 0) > now + self.policy.trust / 2
        )
        if not fresh_enough and self.policy.trust > 0:
            await self.sources.record_success(user.id, source, now, self.policy.trust)
        elif state is not None and (state.failures or state.locked_until is not None):
            await self.sources.record_success(user.id, source, now, 0)


def _trusted(state: SourceState | None, now: float) -> bool:
    return state is not None and state.trusted_until is not None and state.trusted_until > now
