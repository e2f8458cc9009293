"""Key rotation never outruns publication: a new key is in the JWKS at once and signs only
``activation_delay`` seconds later (``rotate(now=True)``, ``rotate-keys --now``: at once).

Before, ``rotate-keys`` signed with the new key within half a second while resource
servers still held a JWKS without it (told ``max-age=60``, and the extension's client
keeps a set up to 300 s): every new token was refused there until their next fetch.
"""

from __future__ import annotations

from pathlib import Path

from quart_app.jwt.key_files import KeyDirectory, keys_from_settings
from quart_app.startup.settings import DEFAULTS
from tests.helpers.clock import FrozenClock


def _kids(keys: KeyDirectory) -> list[str]:
    return [key["kid"] for key in keys.jwks()["keys"]]


def test_a_rotated_key_is_published_at_once_and_signs_after_the_delay(
    tmp_path: Path, frozen_clock: FrozenClock
) -> None:
    keys = KeyDirectory(
        tmp_path / "keys", "ES256", max_token_lifetime=900, activation_delay=1.5, clock=frozen_clock
    )
    first = keys.signing_key("ES256")  # a directory's first key signs at once
    new = keys.rotate()
    assert new.kid != first.kid
    assert new.kid in _kids(keys) and first.kid in _kids(keys)
    assert keys.signing_key("ES256").kid == first.kid  # published, not signing yet
    other_worker = KeyDirectory(
        tmp_path / "keys", "ES256", 900, activation_delay=1.5, clock=frozen_clock
    )
    assert other_worker.signing_key("ES256").kid == first.kid
    assert new.kid in _kids(other_worker)
    frozen_clock.advance(1.6)
    assert keys.signing_key("ES256").kid == new.kid
    assert other_worker.signing_key("ES256").kid == new.kid


def test_rotate_now_signs_at_once_even_with_a_key_pending(tmp_path: Path) -> None:
    keys = KeyDirectory(tmp_path / "keys", "EdDSA", max_token_lifetime=900, activation_delay=60)
    first = keys.signing_key("EdDSA")
    pending = keys.rotate()
    assert keys.signing_key("EdDSA").kid == first.kid
    urgent = keys.rotate(now=True)
    assert keys.signing_key("EdDSA").kid == urgent.kid
    assert {first.kid, pending.kid, urgent.kid} <= set(_kids(keys))


def test_the_default_delay_covers_the_jwks_cache_lifetimes(tmp_path: Path) -> None:
    # What resource servers are told (quart_app/routes/meta.py: max-age=60) and what the
    # extension's JWKS client keeps a set for at most (JWT_JWKS_CACHE_SECONDS, 300).
    assert DEFAULTS["KEY_ACTIVATION_DELAY"] >= 300
    keys = keys_from_settings({"JWT_ALGORITHM": "ES256", "INSTANCE_PATH": str(tmp_path)})
    assert isinstance(keys, KeyDirectory) and keys.activation_delay == 0.0
    keys = keys_from_settings(
        {"JWT_ALGORITHM": "ES256", "INSTANCE_PATH": str(tmp_path), "KEY_ACTIVATION_DELAY": 300}
    )
    assert isinstance(keys, KeyDirectory) and keys.activation_delay == 300
