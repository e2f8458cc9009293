"""``jwt_required`` and ``verify_jwt_in_request``: the async, FJE-compatible request checks.

The order of checks is Flask-JWT-Extended's: locate the token, decode and verify it,
CSRF double submit, token type, freshness, revocation, the verification loader, and the
user lookup. Only what succeeds in full is stored in the request context.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from functools import partial, wraps
from typing import Any, TypeVar, cast, overload

from quart import Request, current_app, g, has_websocket_context, request

from .deprecation import deprecated
from .errors import NoAuthorizationError
from .extension import Claims, get_manager
from .locate import locate, verify_and_store
from .websocket import run_websocket_view, verify_jwt_in_websocket

F = TypeVar("F", bound=Callable[..., Any])


async def verify_jwt_in_request(
    optional: bool = False,
    fresh: bool = False,
    refresh: bool = False,
    locations: str | Sequence[str] | None = None,
    verify_type: bool = True,
    skip_revocation_check: bool = False,
) -> tuple[Claims, Claims] | None:
    """Verify the request's token and store it for ``get_jwt()`` and friends.

    Returns ``(jwt_header, jwt_data)``, or None when ``optional`` and no token was sent.
    A token that is present but invalid is always an error, optional or not. In a
    websocket view it verifies the handshake, and the socket lives only as long as the
    token (see ``quart_app.jwt.websocket``).
    """
    # This runs on every protected request: each context-local proxy is resolved once
    # (every access to one is a context look-up).
    try:
        req: Request = request._get_current_object()  # type: ignore[attr-defined]
    except RuntimeError:
        if not has_websocket_context():
            raise
        return await verify_jwt_in_websocket(
            optional, fresh, refresh, locations, verify_type, skip_revocation_check
        )
    manager = get_manager(current_app._get_current_object())  # type: ignore[attr-defined]
    config = manager.config
    if req.method in config.exempt_methods:
        return None
    if isinstance(locations, str):
        locations = (locations,)
    try:
        encoded, csrf_value, location = await locate(
            req, config, locations or config.token_location, refresh
        )
    except NoAuthorizationError:
        if not optional:
            raise
        vars(g._get_current_object()).update(
            _jwt_extended_jwt={},
            _jwt_extended_jwt_header={},
            _jwt_extended_jwt_user={"loaded_user": None},
            _jwt_extended_jwt_location=None,
        )
        return None
    return await verify_and_store(
        manager,
        encoded,
        csrf_value,
        location,
        fresh,
        refresh,
        verify_type,
        skip_revocation_check,
        sent_with=(req, location),
    )


@overload
def jwt_required(
    optional: bool = False,
    fresh: bool = False,
    refresh: bool = False,
    locations: str | Sequence[str] | None = None,
    verify_type: bool = True,
    skip_revocation_check: bool = False,
) -> Callable[[F], F]: ...


@overload
def jwt_required(optional: F) -> F: ...


def jwt_required(
    optional: bool | F = False,
    fresh: bool = False,
    refresh: bool = False,
    locations: str | Sequence[str] | None = None,
    verify_type: bool = True,
    skip_revocation_check: bool = False,
) -> Callable[[F], F] | F:
    """Protect a view: it runs only with a valid token (see ``verify_jwt_in_request``).

    Note the parentheses, as in FJE 4: ``@jwt_required()``. The bare ``@jwt_required`` of
    FJE 3.x works too, with a DeprecationWarning.
    """
    if callable(optional):
        deprecated("@jwt_required without parentheses", "@jwt_required()")
        return jwt_required()(optional)
    is_optional = bool(optional)

    def decorator(fn: F) -> F:
        is_async = inspect.iscoroutinefunction(fn)

        @wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if has_websocket_context():
                # Few frames: each one stays alive for as long as the socket is open.
                verify = partial(
                    verify_jwt_in_request,
                    is_optional,
                    fresh,
                    refresh,
                    locations,
                    verify_type,
                    skip_revocation_check,
                )
                view = fn if is_async else current_app.ensure_async(fn)
                return await run_websocket_view(view, args, kwargs, verify)
            await verify_jwt_in_request(
                is_optional, fresh, refresh, locations, verify_type, skip_revocation_check
            )
            if is_async:
                return await fn(*args, **kwargs)
            return await current_app.ensure_async(fn)(*args, **kwargs)

        return cast(F, wrapper)

    return decorator
