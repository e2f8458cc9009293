"""Passkeys (WebAuthn Level 2, with py_webauthn): registration and discoverable login.

User verification is required in both ceremonies, so a passkey login is a full,
two-factor login. Challenges are single use and live 5 minutes in the shared store (a
ticket keyed by the challenge's hash, quart_app/store/mfa.py): the ceremony's finish
may reach any worker or host. The signature counter moves by compare-and-set, so a
cloned authenticator (or one assertion presented twice) is refused; the backup
eligibility of a credential is fixed at registration and checked on every use.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, parse_client_data_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..startup.settings import SettingsError
from ..store.mfa import MfaStore
from ..store.passkeys import CredentialTaken, PasskeyRecord, PasskeyStore
from .mfa import PASSKEY_ADDED, PASSKEY_REMOVED, Actor

CHALLENGE_TTL = 300.0
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
REGISTER = "webauthn-register"
LOGIN = "webauthn-login"


class PasskeyError(Exception):
    """The credential or assertion cannot be accepted (the reason is for the log)."""


@dataclass(frozen=True, slots=True)
class RelyingParty:
    id: str
    name: str
    #: Allowed origins; empty: the request's own origin, when its host is the RP ID's.
    origins: tuple[str, ...]

    @classmethod
    def from_settings(cls, config: Mapping[str, Any]) -> RelyingParty:
        """The relying party the settings describe, or SettingsError naming the setting."""
        origins = config["WEBAUTHN_ORIGINS"]
        if isinstance(origins, str):
            origins = tuple(o.strip() for o in origins.split(",") if o.strip())
        rp_id = str(config["WEBAUTHN_RP_ID"]).strip()
        if not rp_id or not _HOST.fullmatch(rp_id):
            raise SettingsError(
                f"WEBAUTHN_RP_ID must be a domain name (e.g. example.com), not {rp_id!r}"
            )
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("https", "http") or not parts.hostname or parts.path:
                raise SettingsError(
                    f"WEBAUTHN_ORIGINS: {origin!r} is not an origin (scheme://host[:port])"
                )
            if parts.hostname != rp_id and not parts.hostname.endswith("." + rp_id):
                raise SettingsError(
                    f"WEBAUTHN_ORIGINS: {origin!r} is not on WEBAUTHN_RP_ID {rp_id!r}"
                )
        return cls(rp_id, str(config["WEBAUTHN_RP_NAME"]), tuple(origins))

    def expected_origins(self, request_origin: str, request_host: str) -> list[str]:
        if self.origins:
            return list(self.origins)
        host = request_host.rsplit(":", 1)[0] if not request_host.endswith("]") else request_host
        if host == self.id or host.endswith("." + self.id):
            return [request_origin]
        return []


def _key(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


def _challenge(credential: Mapping[str, Any]) -> bytes:
    try:
        response = credential["response"]
        client_data = parse_client_data_json(base64url_to_bytes(response["clientDataJSON"]))
    except (KeyError, TypeError, ValueError, WebAuthnException) as error:
        raise PasskeyError(f"unreadable clientDataJSON: {error}") from None
    return client_data.challenge


def _raw_id(credential: Mapping[str, Any]) -> bytes:
    raw = credential.get("rawId") or credential.get("id")
    if not isinstance(raw, str):
        raise PasskeyError("no credential id")
    try:
        return base64url_to_bytes(raw)
    except (ValueError, TypeError) as error:
        raise PasskeyError(f"bad credential id: {error}") from None


def user_handle(user_id: int) -> bytes:
    return str(user_id).encode()


class Passkeys:
    """The WebAuthn ceremonies of the app's users; one per app."""

    def __init__(self, store: PasskeyStore, tickets: MfaStore, rp: RelyingParty) -> None:
        self.store = store
        self.tickets = tickets
        self.rp = rp

    async def register_begin(self, user_id: int, username: str) -> dict[str, Any]:
        existing = await self.store.of_user(user_id)
        options = generate_registration_options(
            rp_id=self.rp.id,
            rp_name=self.rp.name,
            user_name=username,
            user_id=user_handle(user_id),
            user_display_name=username,
            timeout=int(CHALLENGE_TTL * 1000),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                require_resident_key=True,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=p.credential_id) for p in existing
            ],
        )
        now = time.time()
        await self.tickets.add_ticket(
            _key(options.challenge), REGISTER, user_id, now + CHALLENGE_TTL, now
        )
        result: dict[str, Any] = json.loads(options_to_json(options))
        return result

    async def register_finish(
        self,
        user_id: int,
        credential: Mapping[str, Any],
        name: str,
        origins: Sequence[str],
        actor: Actor,
    ) -> PasskeyRecord:
        challenge = _challenge(credential)
        found, owner = await self.tickets.take_ticket(_key(challenge), REGISTER, time.time())
        if not found or owner != user_id:
            raise PasskeyError("unknown, used or expired challenge")
        try:
            verified = verify_registration_response(
                credential=dict(credential),
                expected_challenge=challenge,
                expected_rp_id=self.rp.id,
                expected_origin=list(origins),
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as error:
            raise PasskeyError(str(error)) from None
        try:
            return await self.store.add(
                user_id,
                verified.credential_id,
                verified.credential_public_key,
                verified.sign_count,
                verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
                verified.credential_backed_up,
                name,
                [actor.event(PASSKEY_ADDED, user_id, name=name)],
            )
        except CredentialTaken:
            raise PasskeyError("credential registered already") from None

    async def remove(self, user_id: int, passkey_id: int, actor: Actor) -> bool:
        event = actor.event(PASSKEY_REMOVED, user_id, passkey=passkey_id)
        return await self.store.remove(user_id, passkey_id, [event])

    async def login_begin(self, user_id: int | None) -> dict[str, Any]:
        """Request options: discoverable (no allowCredentials) without a user."""
        allow = (
            [
                PublicKeyCredentialDescriptor(id=p.credential_id)
                for p in await self.store.of_user(user_id)
            ]
            if user_id is not None
            else None
        )
        options = generate_authentication_options(
            rp_id=self.rp.id,
            timeout=int(CHALLENGE_TTL * 1000),
            allow_credentials=allow,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        now = time.time()
        await self.tickets.add_ticket(
            _key(options.challenge), LOGIN, None, now + CHALLENGE_TTL, now
        )
        result: dict[str, Any] = json.loads(options_to_json(options))
        return result

    async def credential_of(self, assertion: Mapping[str, Any]) -> PasskeyRecord | None:
        """The registered passkey an assertion names (before it is verified)."""
        try:
            return await self.store.by_credential(_raw_id(assertion))
        except PasskeyError:
            return None

    async def login_finish(
        self, passkey: PasskeyRecord, assertion: Mapping[str, Any], origins: Sequence[str]
    ) -> None:
        """Verify an assertion made with ``passkey``, or raise PasskeyError."""
        challenge = _challenge(assertion)
        found, _ = await self.tickets.take_ticket(_key(challenge), LOGIN, time.time())
        if not found:
            raise PasskeyError("unknown, used or expired challenge")
        handle = (assertion.get("response") or {}).get("userHandle")
        if handle and base64url_to_bytes(str(handle)) != user_handle(passkey.user_id):
            raise PasskeyError("user handle does not match the credential")
        try:
            verified = verify_authentication_response(
                credential=dict(assertion),
                expected_challenge=challenge,
                expected_rp_id=self.rp.id,
                expected_origin=list(origins),
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as error:
            raise PasskeyError(str(error)) from None
        eligible = verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
        if eligible != passkey.backup_eligible:
            raise PasskeyError("backup eligibility changed since registration")
        if not await self.store.used(
            passkey.id, passkey.sign_count, verified.new_sign_count, verified.credential_backed_up
        ):
            raise PasskeyError("signature counter moved meanwhile (cloned authenticator?)")
