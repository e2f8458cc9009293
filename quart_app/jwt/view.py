"""The manager's view of the app's ``JWT_*`` settings, and what is derived from them.

The settings object, the verification rules, the key set and the verified-token cache
are built lazily from ``app.config`` and kept until a ``JWT_*`` key of it is written
(``live``), or :meth:`ConfigView.reload_config` is called: then all of them are dropped
and the next use rebuilds them. The config says when: nothing is checked per request.
"""

from __future__ import annotations

from typing import Any

from .config import JWTConfig
from .keys import KeySet
from .live import WriteCounting
from .verifier import Rules

Claims = dict[str, Any]


class ConfigView:
    """Settings, rules, keys and verified tokens of one app (the base of ``JWTManager``)."""

    def __init__(self) -> None:
        self._app_config: WriteCounting | None = None  # set by init_app
        #: Moves whenever the settings view is rebuilt or a loader is set or replaced.
        self._generation = 0
        self._config: JWTConfig | None = None
        self._keys: KeySet | None = None
        self._explicit_keys: KeySet | None = None
        self._rules: Rules | None = None
        self._clock_skew = 0.0
        # token string -> (header, claims, exp): tokens already verified by this worker.
        self._verified: dict[str, tuple[Claims, Claims, float | None]] = {}

    @property
    def config(self) -> JWTConfig:
        """The ``JWT_*`` settings, as ``app.config`` holds them now."""
        config = self._config
        if config is None:
            config = self._rebuild()
        return config

    def _watch(self, app_config: WriteCounting) -> None:
        """Read the settings from ``app_config``; rebuild after each write to them."""
        self._app_config = app_config
        app_config.watch(self.reload_config)
        self._config = None

    def _rebuild(self) -> JWTConfig:
        app_config = self._app_config
        if app_config is None:
            raise RuntimeError("JWTManager.init_app(app) has not been called")
        self._changed()
        config = self._config = JWTConfig(app_config)
        return config

    def reload_config(self) -> None:
        """Re-read ``JWT_*`` settings and forget verified tokens.

        Writes to ``app.config`` are noticed without it; a value changed in place (a list
        appended to) is not.
        """
        self._config = None

    @property
    def generation(self) -> int:
        """A number that changes with the settings or the loaders (for callers' caches)."""
        self.config  # noqa: B018 - rebuilds the view if a setting was written
        return self._generation

    def _changed(self) -> None:
        """Forget everything built from the settings or checked with the loaders."""
        self._generation += 1
        self._config = None
        self._rules = None
        self._keys = None
        self._verified.clear()

    @property
    def rules(self) -> Rules:
        """What the fast path checks, from the decode settings."""
        config = self.config
        if self._rules is None:
            self._rules = Rules(
                algorithms=frozenset(config.decode_algorithms),
                required=config.required_claims,
                identity_claim_key=config.identity_claim_key,
                audience=config.decode_audience,
                issuer=config.decode_issuer,
                leeway=config.leeway,
                clock_skew=self._clock_skew,
                verify_sub=config.verify_sub,
            )
        return self._rules

    @property
    def clock_skew(self) -> float:
        """Seconds a token's ``iat``/``nbf`` may lie in the future (0, as FJE, by default).

        For a service whose hosts' clocks differ a little: a token issued by a host a
        second ahead is otherwise refused elsewhere as "not yet valid". ``exp`` is not
        affected: it keeps ``JWT_DECODE_LEEWAY`` alone.
        """
        return self._clock_skew

    @clock_skew.setter
    def clock_skew(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("clock_skew cannot be negative")
        self._clock_skew = float(seconds)
        self._changed()

    @property
    def keys(self) -> KeySet:
        """The signing and verification keys (built from ``JWT_*`` settings unless set)."""
        if self._explicit_keys is not None:
            return self._explicit_keys
        config = self.config
        if self._keys is None and config.jwks_url:
            from .jwks import remote_key_set

            self._keys = remote_key_set(config)
        if self._keys is None:
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
        self._changed()

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set of every public key still accepted (empty for HS* only)."""
        return self.keys.jwks()

    def forget_verified(self) -> None:
        """Drop every cached verification (after a key rotation)."""
        self._verified.clear()
