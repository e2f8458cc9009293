"""Encryption at rest of second-factor secrets (TOTP seeds), with key rotation.

``MFA_ENCRYPTION_KEY`` is a comma-separated list of Fernet keys (AES-128-CBC with
HMAC-SHA256, from ``cryptography``). The first encrypts; every one decrypts, so a new
key is put first and the old one kept until ``quart-app mfa rekey`` has re-encrypted
every secret with the new one (then the old key can go). When unset, one key is
generated into INSTANCE_PATH (mode 0600, published atomically like the JWT secret), so
every worker of a host reads the same one; several hosts must share it (set it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..startup.settings import SettingsError, generated_file

log = logging.getLogger(__name__)

KEY_FILE = "mfa-encryption.key"


class SecretCipher:
    """Encrypts and decrypts short secrets with the configured keys."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SettingsError("MFA_ENCRYPTION_KEY: no key given")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()

    def rotate(self, token: str) -> str:
        """The same secret encrypted with the first key (what ``mfa rekey`` stores)."""
        return self._fernet.rotate(token.encode()).decode()


def parse_keys(raw: str) -> list[bytes]:
    """The keys of an ``MFA_ENCRYPTION_KEY`` value, or SettingsError naming the setting."""
    keys = [part.strip().encode() for part in raw.split(",") if part.strip()]
    for key in keys:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise SettingsError(
                "MFA_ENCRYPTION_KEY: each comma-separated key must be 32 url-safe base64-encoded"
                " bytes (make one with `python3 -c 'from cryptography.fernet import Fernet;"
                " print(Fernet.generate_key().decode())'`)"
            ) from None
    return keys


def _generated_key(instance: Path) -> bytes:
    path = generated_file(instance, KEY_FILE, Fernet.generate_key, "MFA encryption key", log)
    keys = parse_keys(path.read_text())
    if not keys:
        raise SettingsError(
            f"INSTANCE_PATH: {path} holds no key; delete it or set MFA_ENCRYPTION_KEY"
        )
    return keys[0]


def cipher_from_settings(settings: Mapping[str, Any]) -> SecretCipher:
    configured = settings.get("MFA_ENCRYPTION_KEY")
    if configured:
        raw = configured.decode() if isinstance(configured, bytes) else str(configured)
        return SecretCipher(parse_keys(raw))
    return SecretCipher([_generated_key(Path(settings["INSTANCE_PATH"]))])


__all__ = ["InvalidToken", "SecretCipher", "cipher_from_settings", "parse_keys"]
