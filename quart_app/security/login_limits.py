"""Brute-force limits on password checks: per account, per (account, network), per network.

Every limit is *reserved* before the password is checked, in the shared store, with one
statement per limit and one transaction per attempt (quart_app/store/login_limits.py):
N guesses in flight at once, on any worker or host, count as N, and at most
``LOGIN_LOCKOUT_THRESHOLD`` of them at one account reach a password check. A check
that fails has been counted already; one that succeeds gives its reservations back.

* **Account lock**: after ``LOGIN_LOCKOUT_THRESHOLD`` failures in a row the account is
  locked for ``LOGIN_LOCKOUT_BASE_SECONDS``, doubling with every further failure up to
  ``LOGIN_LOCKOUT_MAX_SECONDS``. While locked, /login (and PUT /me/password) answer 429
  whatever the password, and attempts are not counted (the attacker cannot stack up
  lock time). A count with no failure for ``LOGIN_LOCKOUT_WINDOW_SECONDS`` starts again.
* **(Account, network) lock**: the same rule per account and client network (an IPv4
  address or an IPv6 /64, what throttling counts).
* **Trusted networks**: a network that logged in successfully to the account within
  ``LOGIN_TRUSTED_SOURCE_SECONDS`` is exempt from the *account* lock, not from its own.
  An attacker elsewhere cannot keep the owner out of the networks the owner uses. A
  success from a trusted network during an account lock leaves the account's count
  alone, so the owner logging in does not hand the attacker a fresh budget.
* **Network block** (the Flask article's rule): ``LOGIN_SOURCE_BLOCK_THRESHOLD`` failed
  checks from one network within ``LOGIN_SOURCE_BLOCK_WINDOW_SECONDS``, across any
  accounts, block its logins for ``LOGIN_SOURCE_BLOCK_SECONDS``. A success does not
  reset it (it only takes its own reservation back). 0 turns it off.
* **No username oracle**: the counters are keyed by a hash of the case-folded username,
  not by the user's id, so an unknown username takes exactly the path of a known one
  (the same three reservations, a dummy hash, the same answers, locks included).
* Sessions survive: the limits are on password checks only, so clients holding a
  refresh token are not affected at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import Throttled
from ..store.login_limits import Backoff, Block, LoginLimitStore, Refused

LOCKED = "Too many failed login attempts; try later"
BLOCKED = "Too many failed logins from this address; try later"


class RefusalObserver(Protocol):
    def login_refused(self, limit: str) -> None:
        """A password check was refused by ``limit``: source, pair or account."""


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    account: Backoff
    source: Block | None
    trust: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LoginPolicy:
        threshold = int(config["LOGIN_SOURCE_BLOCK_THRESHOLD"])
        return cls(
            account=Backoff(
                threshold=int(config["LOGIN_LOCKOUT_THRESHOLD"]),
                base=float(config["LOGIN_LOCKOUT_BASE_SECONDS"]),
                cap=float(config["LOGIN_LOCKOUT_MAX_SECONDS"]),
                forget=float(config["LOGIN_LOCKOUT_WINDOW_SECONDS"]),
            ),
            source=Block(
                threshold=threshold,
                window=float(config["LOGIN_SOURCE_BLOCK_WINDOW_SECONDS"]),
                seconds=float(config["LOGIN_SOURCE_BLOCK_SECONDS"]),
            )
            if threshold > 0
            else None,
            trust=float(config["LOGIN_TRUSTED_SOURCE_SECONDS"]),
        )


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One admitted password check: report its outcome exactly once."""

    guard: LoginGuard
    account: str
    pair: str
    source: str | None
    trusted: bool
    now: float

    async def failed(self) -> None:
        if self.trusted:  # not reserved at the account: count it there now
            await self.guard.store.count(self.account, self.guard.policy.account, self.now)

    async def succeeded(self) -> None:
        trust = self.guard.policy.trust
        await self.guard.store.succeeded(
            self.now,
            refund=self.source,
            reset=[self.pair] if self.trusted else [self.pair, self.account],
            reset_unless_locked=[self.account] if self.trusted else [],
            trust=(self.pair, self.now + trust) if trust > 0 else None,
        )


class LoginGuard:
    """Admits password checks (see the module docstring); one per app."""

    def __init__(self, store: LoginLimitStore, policy: LoginPolicy) -> None:
        self.store = store
        self.policy = policy
        self.observer: RefusalObserver | None = None

    async def failures(self, username_key: str) -> int:
        """Failed checks of the account counted now (0 after a success or a lapse)."""
        return await self.store.failures(_key("account", username_key))

    async def admit(self, username_key: str, network: str, now: float) -> Attempt:
        """Reserve a check of ``username_key``'s password from ``network``, or raise
        ``Throttled`` (429) naming the limit's end."""
        account, pair = _key("account", username_key), _key("pair", username_key, network)
        source = _key("source", network) if self.policy.source is not None else None
        last: list[tuple[str, str, Backoff | Block]] = []
        if source is not None and self.policy.source is not None:
            last.append(("source", source, self.policy.source))
        try:
            verdict = await self.store.reserve(
                ("pair", pair, self.policy.account),
                now,
                unless_trusted=("account", account, self.policy.account),
                last=last,
            )
        except Refused as refused:
            if self.observer is not None:
                self.observer.login_refused(refused.step)
            message = BLOCKED if refused.step == "source" else LOCKED
            raise Throttled(refused.until - now, message) from None
        trusted = verdict.trusted_until is not None and verdict.trusted_until > now
        return Attempt(self, account, pair, source, trusted, now)
