"""Creating a token for a manager: its settings and loaders applied to ``tokens.encode_token``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quart import current_app
from quart.json.provider import DefaultJSONProvider

from . import tokens
from .default_callbacks import call
from .durations import expires_delta as checked_delta

if TYPE_CHECKING:  # annotations only: the manager imports this module
    from .manager import JWTManager


async def encode(
    manager: JWTManager,
    identity: Any,
    token_type: str,
    *,
    fresh: Any = False,
    expires_delta: Any = None,
    additional_claims: dict[str, Any] | None = None,
    additional_headers: dict[str, Any] | None = None,
) -> str:
    """A signed token of ``token_type`` for ``identity``: what ``create_access_token`` and
    ``create_refresh_token`` call, with the manager's settings, keys and loaders."""
    config = manager.config
    if expires_delta is None:
        # As FJE: only the setting of this token's type is read (and checked).
        delta = config.access_expires if token_type == tokens.ACCESS else config.refresh_expires
    else:
        delta = checked_delta(expires_delta, "expires_delta")
    headers = dict(await call(manager.callbacks.additional_headers, identity) or {})
    if additional_headers:
        headers.update(additional_headers)
    claims = dict(await call(manager.callbacks.additional_claims, identity) or {})
    if additional_claims:
        claims.update(additional_claims)
    if manager.callbacks.encode_key is not None:
        key = await call(manager.callbacks.encode_key, identity)
    else:
        signing = manager.keys.signing_key(config.algorithm)
        key = signing.signing_key
        if signing.kid is not None:
            headers.setdefault("kid", signing.kid)
    return tokens.encode_token(
        identity=await call(manager.callbacks.user_identity, identity),
        key=key,
        algorithm=config.algorithm,
        token_type=token_type,
        expires_delta=delta,
        fresh=fresh,
        csrf=config.csrf_protect,
        audience=config.encode_audience,
        issuer=config.encode_issuer,
        identity_claim_key=config.identity_claim_key,
        encode_nbf=config.encode_nbf,
        claims=claims,
        headers=headers,
        json_encoder=_json_encoder(),
        now=manager.now(),
    )


_encoders: dict[Callable[[Any], Any], type[json.JSONEncoder]] = {}


def _json_encoder() -> type[json.JSONEncoder]:
    """As FJE: values JSON cannot encode (a UUID identity, a date claim) are encoded with
    the ``default`` of the app's JSON provider class."""
    provider = current_app.json_provider_class
    default: Callable[[Any], Any] = getattr(provider, "default", DefaultJSONProvider.default)
    encoder = _encoders.get(default)
    if encoder is None:

        class Encoder(json.JSONEncoder):
            def default(self, o: Any) -> Any:
                return default(o)

        encoder = _encoders[default] = Encoder
    return encoder
