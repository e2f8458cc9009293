"""TOTP (RFC 6238) and recovery codes: enrolment, confirmation, checks, the login ticket.

What an account can do with its second factor, without HTTP. Every single-use rule is
decided in the shared store (quart_app/store/mfa.py): a TOTP code is accepted once per
user (the time step it matched must be later than the last one accepted), a recovery
code once ever, an ``mfa_token`` once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyotp

from ..store.mfa import MfaStore, Ticket
from .events import NO_CLIENT, Client, SecurityEvent
from .mfa_crypto import InvalidToken, SecretCipher

log = logging.getLogger(__name__)

#: RFC 6238's defaults, what every authenticator app reads from the otpauth URI.
PERIOD = 30
DIGITS = 6
#: Codes of the step before and after the current one are accepted (clock drift).
TOLERANCE = 1
RECOVERY_CODES = 10
#: Seconds an ``mfa_token`` (password checked, code awaited) stays good.
MFA_TOKEN_TTL = 300.0

LOGIN_TICKET = "login"

#: Security events of second factors (quart_app/accounts/events.py has the others).
MFA_ENROLMENT_STARTED = "mfa_enrolment_started"
MFA_ENABLED = "mfa_enabled"
MFA_DISABLED = "mfa_disabled"
MFA_RESET = "mfa_reset"
MFA_REQUIRED = "mfa_required"
MFA_CODE_REJECTED = "mfa_code_rejected"
RECOVERY_CODE_USED = "mfa_recovery_code_used"
RECOVERY_CODES_REGENERATED = "mfa_recovery_codes_regenerated"
PASSKEY_ADDED = "passkey_added"
PASSKEY_REMOVED = "passkey_removed"
PASSKEY_REFUSED = "passkey_registration_failed"
PASSKEY_LOGIN_FAILED = "passkey_login_failed"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts, for the security events: the request's client and session."""

    client: Client = NO_CLIENT
    session_id: str | None = None

    def event(self, kind: str, user_id: int, /, **detail: object) -> SecurityEvent:
        return SecurityEvent(
            kind,
            user_id=user_id,
            session_id=self.session_id,
            client=self.client,
            detail=detail or None,
        )


#: The command line, an admin at the console.
CONSOLE = Actor()


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normalise_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def recovery_hash(user_id: int, code: str) -> str:
    """What is stored of a recovery code (80 random bits: a plain hash is enough)."""
    return hashlib.sha256(f"{user_id}:{normalise_code(code)}".encode()).hexdigest()


def new_recovery_codes() -> list[str]:
    return [f"{secrets.token_hex(5)}-{secrets.token_hex(5)}" for _ in range(RECOVERY_CODES)]


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step within the tolerance whose code is ``code``, or None."""
    code = "".join(code.split())
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = int(now // PERIOD)
    found = None
    for step in range(current - TOLERANCE, current + TOLERANCE + 1):
        # Every candidate is compared (no early exit): the time does not tell which.
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    otpauth_uri: str


@dataclass(frozen=True, slots=True)
class MfaState:
    totp: bool
    recovery_codes_left: int


class SecondFactors:
    """TOTP and recovery codes for the app's users; one per app."""

    def __init__(self, store: MfaStore, cipher: SecretCipher, issuer: str) -> None:
        self.store = store
        self.cipher = cipher
        self.issuer = issuer

    @classmethod
    def from_settings(
        cls, store: MfaStore, cipher: SecretCipher, config: Mapping[str, Any]
    ) -> SecondFactors:
        return cls(store, cipher, str(config["WEBAUTHN_RP_NAME"]))

    async def enabled(self, user_id: int) -> bool:
        record = await self.store.totp(user_id)
        return record is not None and record.confirmed

    async def state(self, user_id: int) -> MfaState:
        enabled = await self.enabled(user_id)
        left = await self.store.codes_left(user_id) if enabled else 0
        return MfaState(enabled, left)

    async def enrol(self, user_id: int, username: str) -> Enrolment | None:
        """A fresh pending secret, or None when TOTP is confirmed already."""
        secret = pyotp.random_base32(32)  # 160 bits, RFC 4226's recommended length
        if not await self.store.start_totp(user_id, self.cipher.encrypt(secret), time.time()):
            return None
        uri = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
            name=username, issuer_name=self.issuer
        )
        return Enrolment(secret, uri)

    def _secret(self, user_id: int, stored: str) -> str | None:
        try:
            return self.cipher.decrypt(stored)
        except InvalidToken:
            log.warning("user %s: no MFA_ENCRYPTION_KEY decrypts the TOTP secret", user_id)
            return None

    async def confirm(self, user_id: int, code: str, actor: Actor) -> list[str] | None:
        """Confirm the pending secret with a code of it: the recovery codes, or None."""
        record = await self.store.totp(user_id)
        if record is None or record.confirmed:
            return None
        secret = self._secret(user_id, record.secret)
        step = matching_step(secret, code, time.time()) if secret else None
        if step is None:
            return None
        codes = new_recovery_codes()
        hashes = [recovery_hash(user_id, code) for code in codes]
        event = actor.event(MFA_ENABLED, user_id)
        if not await self.store.confirm(user_id, record.secret, step, hashes, [event]):
            return None
        return codes

    async def check_totp(self, user_id: int, code: str) -> bool:
        """A confirmed factor's code, accepted once (the step is recorded atomically)."""
        record = await self.store.totp(user_id)
        if record is None or not record.confirmed:
            return False
        secret = self._secret(user_id, record.secret)
        step = matching_step(secret, code, time.time()) if secret else None
        return step is not None and await self.store.use_step(user_id, step)

    async def use_recovery_code(self, user_id: int, code: str, actor: Actor) -> bool:
        if not normalise_code(code) or not await self.enabled(user_id):
            return False
        event = actor.event(RECOVERY_CODE_USED, user_id)
        return await self.store.use_code(
            user_id, recovery_hash(user_id, code), time.time(), [event]
        )

    async def check(
        self, user_id: int, actor: Actor, *, code: str | None, recovery_code: str | None
    ) -> str | None:
        """``code`` (TOTP, or a recovery code when it is not six digits) or
        ``recovery_code``: the method that accepted it, or None."""
        if code is not None:
            if await self.check_totp(user_id, code):
                return "totp"
            if matching_step_shape(code):
                return None
            recovery_code = code
        if recovery_code is not None and await self.use_recovery_code(
            user_id, recovery_code, actor
        ):
            return "recovery_code"
        return None

    async def regenerate(self, user_id: int, actor: Actor) -> list[str] | None:
        codes = new_recovery_codes()
        hashes = [recovery_hash(user_id, code) for code in codes]
        event = actor.event(RECOVERY_CODES_REGENERATED, user_id)
        return codes if await self.store.replace_codes(user_id, hashes, [event]) else None

    async def disable(
        self,
        user_id: int,
        actor: Actor,
        *,
        event: str = MFA_DISABLED,
        detail: dict[str, object] | None = None,
    ) -> bool:
        """Remove TOTP and the recovery codes, recording ``event`` with the change."""
        return await self.store.disable(user_id, [actor.event(event, user_id, **(detail or {}))])

    # The login ticket: the password was right, the second factor is awaited.

    async def issue_ticket(self, user_id: int, epoch: int) -> str:
        """An ``mfa_token`` for the user, carrying the credential epoch read before the
        password was checked (the session it leads to is refused if it moved)."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        await self.store.add_ticket(
            _key(token), LOGIN_TICKET, user_id, now + MFA_TOKEN_TTL, now, epoch=epoch
        )
        return token

    async def ticket(self, token: str) -> Ticket | None:
        """A live ``mfa_token``'s user and epoch (not used up by this call)."""
        ticket = await self.store.peek_ticket(_key(token), LOGIN_TICKET, time.time())
        return ticket if ticket is not None and ticket.user_id is not None else None

    async def use_ticket(self, token: str) -> bool:
        found, _ = await self.store.take_ticket(_key(token), LOGIN_TICKET, time.time())
        return found


def matching_step_shape(code: str) -> bool:
    """Whether ``code`` looks like a TOTP code (six digits) rather than a recovery code."""
    code = "".join(code.split())
    return len(code) == DIGITS and code.isascii() and code.isdigit()
