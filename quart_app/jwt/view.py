"""The manager's view of the app's ``JWT_*`` settings, and what is derived from them.

The settings object, the verification rules, the key set and the verified-token cache
are built lazily from ``app.config`` and kept until :meth:`ConfigView.reload_config`.
"""

from __future__ import annotations

from typing import Any

from .config import JWTConfig
from .keys import KeySet
from .verifier import Rules

Claims = dict[str, Any]


class ConfigView:
    """Settings, rules, keys and verified tokens of one app (the base of ``JWTManager``)."""

    def __init__(self) -> None:
        self._app_config: Any = None
        self._config: JWTConfig | None = None
        self._keys: KeySet | None = None
        self._explicit_keys: KeySet | None = None
        self._rules: Rules | None = None
        # token string -> (header, claims, exp): tokens already verified by this worker.
        self._verified: dict[str, tuple[Claims, Claims, float | None]] = {}

    @property
    def config(self) -> JWTConfig:
        """The ``JWT_*`` settings, read once from the app's config."""
        if self._config is None:
            self._config = JWTConfig(self._app_config)
        return self._config

    def reload_config(self) -> None:
        """Re-read ``JWT_*`` settings (after changing ``app.config``) and forget cached tokens."""
        self._config = None
        self._rules = None
        self._keys = None
        self._verified.clear()

    @property
    def rules(self) -> Rules:
        """What the fast path checks, from the decode settings."""
        if self._rules is None:
            config = self.config
            self._rules = Rules(
                algorithms=frozenset(config.decode_algorithms),
                required=config.required_claims,
                identity_claim_key=config.identity_claim_key,
                audience=config.decode_audience,
                issuer=config.decode_issuer,
                leeway=config.leeway,
                verify_sub=config.verify_sub,
            )
        return self._rules

    @property
    def keys(self) -> KeySet:
        """The signing and verification keys (built from ``JWT_*`` settings unless set)."""
        if self._explicit_keys is not None:
            return self._explicit_keys
        if self._keys is None:
            config = self.config
            self._keys = KeySet.from_config(
                config.algorithm,
                secret=config.secret_key,
                private_key=config.private_key,
                public_key=config.public_key,
                decode_algorithms=config.decode_algorithms,
            )
        return self._keys

    @keys.setter
    def keys(self, keys: KeySet | None) -> None:
        """Use ``keys`` (e.g. a ``KeyDirectory``) instead of the ``JWT_*`` key settings."""
        self._explicit_keys = keys
        self._verified.clear()

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set of every public key still accepted (empty for HS* only)."""
        return self.keys.jwks()

    def forget_verified(self) -> None:
        """Drop every cached verification (after a key rotation)."""
        self._verified.clear()
