"""Settings that stay live: ``app.config`` counts its writes to ``JWT_*`` keys.

Flask-JWT-Extended reads ``current_app.config`` on every use, so a setting changed after
start-up applies to the next request. Reading a dozen keys per request costs time, so
the manager keeps a snapshot instead, and the config tells it when to drop it: nothing
is checked per request. ``count_writes`` gives the app's config object (in place, so
every reference to it stays valid) a class that counts writes to ``JWT_*`` keys and to
``SECRET_KEY`` (FJE's fallback secret) and calls its watchers after each one.

Not seen: a value changed in place (``app.config["JWT_CSRF_METHODS"].append("GET")``).
Assign a new value instead, or call ``JWTManager.reload_config()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast


def _watched(key: object) -> bool:
    return isinstance(key, str) and (key.startswith("JWT_") or key == "SECRET_KEY")


class WriteCounting(dict[str, Any]):
    """Mixed in before the config class: every write to a watched key bumps ``jwt_writes``
    and calls each of ``jwt_watchers``."""

    jwt_writes = 0
    jwt_watchers: tuple[Callable[[], None], ...] = ()

    def watch(self, watcher: Callable[[], None]) -> None:
        """Call ``watcher()`` after every write to a ``JWT_*`` key (or ``SECRET_KEY``)."""
        self.jwt_watchers = (*self.jwt_watchers, watcher)

    def _bump(self, keys: Iterable[object]) -> None:
        if any(_watched(key) for key in keys):
            self.jwt_writes += 1
            for watcher in self.jwt_watchers:
                watcher()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._bump((key,))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._bump((key,))

    def update(self, *args: Any, **kwargs: Any) -> None:
        other = dict(*args, **kwargs)
        super().update(other)
        self._bump(other)

    def setdefault(self, key: str, default: Any = None) -> Any:
        missing = key not in self
        value = super().setdefault(key, default)
        if missing:
            self._bump((key,))
        return value

    def pop(self, key: str, *default: Any) -> Any:
        present = key in self
        value = super().pop(key, *default)
        if present:
            self._bump((key,))
        return value

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self._bump((item[0],))
        return item

    def clear(self) -> None:
        keys = list(self)
        super().clear()
        self._bump(keys)

    def __ior__(self, other: Any) -> WriteCounting:  # type: ignore[override,misc]
        self.update(other)
        return self


_classes: dict[type, type] = {}


def count_writes(config: Mapping[str, Any]) -> WriteCounting:
    """Make ``config`` (a ``quart.Config`` or any dict subclass) count its writes."""
    if isinstance(config, WriteCounting):
        return config
    if not isinstance(config, dict):
        raise TypeError(f"app.config must be a dict, not {type(config).__name__}")
    cls = type(config)
    counting = _classes.get(cls)
    if counting is None:
        counting = _classes[cls] = type(f"WriteCounting{cls.__name__}", (WriteCounting, cls), {})
    config.__class__ = counting
    return cast(WriteCounting, config)
