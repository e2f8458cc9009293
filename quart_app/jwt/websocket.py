"""``jwt_required`` on Quart websocket routes, first-message auth, and sockets that end
with their token.

* **Handshake.** ``verify_jwt_in_request`` (and so ``jwt_required``) on a websocket route
  looks for the token where a handshake can carry one: ``headers``, ``query_string``
  (when configured) and ``cookies``. A cookie counts only when the handshake's
  ``Origin`` is one of ``JWT_WEBSOCKET_ORIGINS``: a browser sends its cookies with a
  WebSocket opened by any site (cross-site WebSocket hijacking), and ``Origin`` is the
  one thing such a page cannot forge. Any failure raises the extension's usual
  exception before the socket is accepted, so the client gets the HTTP status and
  ``msg`` instead of an upgrade.
* **First message.** Browsers cannot set headers on a WebSocket: ``await
  websocket_auth(timeout=5)`` accepts the socket and reads ``{"type": "auth", "token":
  "<JWT>"}``, verified exactly as a header token; a bad token, or none in time, closes
  the socket with 4401 and the ``msg`` as reason.
* **Lifetime.** Every verified socket is tracked by the app's
  :class:`~quart_app.jwt.socket_sessions.SocketRegistry`; when its token is revoked or expires
  the view is cancelled and the client gets ``{"type": "revoked"|"expired", "msg":
  ...}`` and close code 4401. ``await websocket_reauth(token)`` moves the socket onto a
  newer token of the same identity; another identity closes it with 4403.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from quart import Quart, Request, Response, current_app, g, websocket
from quart.wrappers import Websocket

from .config import JWTConfig
from .errors import (
    CSRFError,
    JWTExtendedException,
    NoAuthorizationError,
)
from .extension import Claims, get_manager
from .locate import check_and_load, from_headers, from_query_string, missing_jwt, store
from .socket_sessions import SocketRegistry, SocketSession

if TYPE_CHECKING:  # annotations only: the manager imports this module
    from .manager import JWTManager

#: Close codes: the token is missing, bad, revoked or expired (HTTP 401's
#: counterpart), or belongs to another identity than the socket's (403's).
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
#: Where a handshake can carry a token; ``json`` has no body to be read from.
HANDSHAKE_LOCATIONS = ("headers", "query_string", "cookies")
REGISTRY_KEY = "flask-jwt-extended.sockets"
#: A close frame's reason is at most 123 bytes of UTF-8.
MAX_REASON = 123
#: How long the last words to a client may take. Generous: when thousands of sockets end at
#: once (a user's revocation) on a busy worker, each waits its turn on the event loop
#: within this time; only a client that does not read its socket is let go after it.
FAREWELL_TIMEOUT = 60.0
_SESSION = "_jwt_extended_socket"


class WebSocketAuthError(JWTExtendedException):
    """Close the socket with ``code`` and ``msg`` (raised once the socket is accepted)."""

    def __init__(self, msg: str, code: int = CLOSE_UNAUTHORIZED) -> None:
        super().__init__(msg)
        self.msg = msg
        self.code = code


def get_registry(app: Quart | None = None) -> SocketRegistry:
    """The app's registry of open authenticated sockets (made on first use)."""
    target = app if app is not None else cast(Quart, current_app._get_current_object())  # type: ignore[attr-defined]
    registry = target.extensions.get(REGISTRY_KEY)
    if registry is None:
        manager = get_manager(target)
        config = manager.config
        registry = SocketRegistry(config.identity_claim_key, config.leeway, manager.now)
        target.extensions[REGISTRY_KEY] = registry
    return cast(SocketRegistry, registry)


def get_websocket_session() -> SocketSession | None:
    """This socket's session, once a token was verified for it."""
    return cast(SocketSession | None, g.get(_SESSION))


# -- the handshake ---------------------------------------------------------------------


def _origin_allowed(ws: Websocket, config: JWTConfig) -> None:
    origin = ws.headers.get("Origin")
    if not origin:
        raise CSRFError(
            "Missing Origin header: cookies authenticate a WebSocket only from an allowed origin"
        )
    if origin.rstrip("/").lower() not in config.websocket_origins:
        raise CSRFError(f"Origin not allowed: {origin[:64]}")


def _from_cookie(ws: Websocket, config: JWTConfig, refresh: bool) -> str:
    name = config.refresh_cookie_name if refresh else config.access_cookie_name
    encoded = ws.cookies.get(name)
    if not encoded:
        raise NoAuthorizationError(f'Missing cookie "{name}"')
    _origin_allowed(ws, config)
    return encoded


def _locate(
    ws: Websocket, config: JWTConfig, locations: Sequence[str], refresh: bool
) -> tuple[str, str]:
    usable = [location for location in locations if location in HANDSHAKE_LOCATIONS]
    if not usable:
        raise NoAuthorizationError(
            "Missing JWT: a WebSocket handshake carries it in headers, query_string or cookies"
        )
    errors: list[str] = []
    # The readers only look at headers and args, which a websocket has as a request does.
    as_request = cast(Request, ws)
    for location in usable:
        try:
            if location == "headers":
                return from_headers(as_request, config, refresh)[0], location
            if location == "query_string":
                return from_query_string(as_request, config, refresh)[0], location
            return _from_cookie(ws, config, refresh), location
        except NoAuthorizationError as error:
            errors.append(str(error))
    raise missing_jwt(usable, errors)


def _sent_something(
    ws: Websocket, config: JWTConfig, locations: Sequence[str], refresh: bool
) -> bool:
    """Whether the handshake has any of the configured places for a token filled in."""
    cookie = config.refresh_cookie_name if refresh else config.access_cookie_name
    return any(
        (location == "headers" and bool(ws.headers.get(config.header_name, "").strip()))
        or (location == "query_string" and config.query_string_name in ws.args)
        or (location == "cookies" and cookie in ws.cookies)
        for location in locations
    )


async def _check(
    manager: JWTManager,
    encoded: str,
    *,
    fresh: bool,
    refresh: bool,
    verify_type: bool,
    skip_revocation_check: bool,
    sent_with: tuple[Any, str] | None = None,
) -> tuple[Claims, Claims, Any]:
    """Decode and check ``encoded`` in FJE's order; ``(header, claims, loaded user)``."""
    return await check_and_load(
        manager, encoded, None, fresh, refresh, verify_type, skip_revocation_check, sent_with
    )


_store = store


def _bind(manager: JWTManager, header: Claims, claims: Claims) -> SocketSession:
    """Tie this socket's life to the token ``claims`` (new session, or re-bound)."""
    app = cast(Quart, current_app._get_current_object())  # type: ignore[attr-defined]
    registry = get_registry(app)
    if manager.revocations is not None:
        registry.watch(manager.revocations)
    session = get_websocket_session()
    if session is None or session.ended is not None:
        task = asyncio.current_task()
        assert task is not None, "a websocket is always served by a task"
        session = registry.open(task, header, claims)
        g._jwt_extended_socket = session
        task.add_done_callback(lambda _task: registry.close(session))
    else:
        registry.rebind(session, header, claims)
    return session


async def verify_jwt_in_websocket(
    optional: bool = False,
    fresh: bool = False,
    refresh: bool = False,
    locations: str | Sequence[str] | None = None,
    verify_type: bool = True,
    skip_revocation_check: bool = False,
) -> tuple[Claims, Claims] | None:
    """``verify_jwt_in_request`` for a websocket's handshake (it calls this one)."""
    manager = get_manager(current_app._get_current_object())  # type: ignore[attr-defined]
    config = manager.config
    ws = cast(Websocket, websocket._get_current_object())  # type: ignore[attr-defined]
    if isinstance(locations, str):
        locations = (locations,)
    locations = locations or config.token_location
    try:
        encoded, location = _locate(ws, config, locations, refresh)
    except NoAuthorizationError:
        # Optional means "no token at all" (the first message may bring one); a header
        # that is there but malformed refuses the handshake, as it would be without it.
        if not optional or _sent_something(ws, config, locations, refresh):
            raise
        _store(manager, {}, {}, None, None)
        return None
    header, claims, user = await _check(
        manager,
        encoded,
        fresh=fresh,
        refresh=refresh,
        verify_type=verify_type,
        skip_revocation_check=skip_revocation_check,
        sent_with=(ws, location),
    )
    _store(manager, header, claims, user, location)
    _bind(manager, header, claims)
    return header, claims


# -- in-band authentication --------------------------------------------------------------


async def _auth_error(error: Exception) -> WebSocketAuthError:
    """``error`` as the app would answer it over HTTP (its loaders and handlers included),
    turned into a close: 4401 for a refused token, 1011/1013 for a failure of ours."""
    app = cast(Quart, current_app._get_current_object())  # type: ignore[attr-defined]
    response = cast(Response, await app.make_response(await app.handle_user_exception(error)))
    data = await response.get_json(silent=True)
    key = get_manager(app).config.error_msg_key
    msg = data[key] if isinstance(data, dict) and isinstance(data.get(key), str) else str(error)
    status = response.status_code
    if status >= 500:
        # 1013 "try again later" for an unavailable dependency, 1011 for a bug.
        return WebSocketAuthError(msg, 1013 if status == 503 else 1011)
    return WebSocketAuthError(msg)


def _token_of(message: str | bytes) -> str:
    try:
        data = json.loads(message)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("type") != "auth":
        raise WebSocketAuthError('Expected {"type": "auth", "token": "<JWT>"}')
    token = data.get("token")
    if not isinstance(token, str) or not token:
        raise WebSocketAuthError('Missing "token" in the auth message')
    return token


async def _authenticate(token: str, *, fresh: bool = False, sub: str | None = None) -> Claims:
    """Verify an in-band ``token`` like a header token and bind the socket to it."""
    manager = get_manager(current_app._get_current_object())  # type: ignore[attr-defined]
    try:
        header, claims, user = await _check(
            manager,
            token,
            fresh=fresh,
            refresh=False,
            verify_type=True,
            skip_revocation_check=False,
        )
    except Exception as error:
        raise await _auth_error(error) from error
    if sub is not None and str(claims.get(manager.config.identity_claim_key)) != sub:
        raise WebSocketAuthError("Token of another identity than this socket's", CLOSE_FORBIDDEN)
    _store(manager, header, claims, user, "message")
    _bind(manager, header, claims)
    return claims


async def websocket_auth(timeout: float = 5.0, *, fresh: bool = False) -> Claims:  # noqa: ASYNC109
    """The claims this socket is authenticated with.

    When the handshake carried a verified token (``jwt_required(optional=True)``), that
    one; otherwise the socket is accepted and its first message must be ``{"type":
    "auth", "token": "<access token>"}`` within ``timeout`` seconds. A bad token, or
    none in time, raises :class:`WebSocketAuthError`: the ``jwt_required`` wrapper
    closes the socket with 4401 and the ``msg`` as reason.
    """
    session = get_websocket_session()
    if session is not None and session.ended is None:
        return cast(Claims, g._jwt_extended_jwt)
    ws = cast(Websocket, websocket._get_current_object())  # type: ignore[attr-defined]
    await ws.accept()
    try:
        message = await asyncio.wait_for(ws.receive(), timeout)
    except TimeoutError:
        raise WebSocketAuthError(
            f'Missing auth message: expected {{"type": "auth", "token": "<JWT>"}}'
            f" within {timeout:g} s"
        ) from None
    return await _authenticate(_token_of(message), fresh=fresh)


async def websocket_reauth(token: str) -> Claims:
    """Move this socket onto ``token``, a newer access token of the same identity.

    Raises :class:`WebSocketAuthError`: 4401 for a bad token (the socket's old one stops
    counting), 4403 for a valid token of another identity.
    """
    session = get_websocket_session()
    live = session is not None and session.ended is None
    return await _authenticate(token, sub=session.sub if live and session else None)


# -- ending a socket ----------------------------------------------------------------------


def _reason(msg: str) -> str:
    raw = msg.encode()
    if len(raw) <= MAX_REASON:
        return msg
    return raw[: MAX_REASON - 3].decode(errors="ignore") + "..."


@functools.lru_cache(maxsize=16)
def _farewell(kind: str, msg: str) -> str:
    """``{"type": kind, "msg": msg}`` as sent, encoded once for all the sockets one
    revocation or expiry ends (a logout can end thousands at once)."""
    return json.dumps({"type": kind, "msg": msg}, separators=(",", ":"))


async def close_socket(code: int, msg: str, message: dict[str, Any] | str | None = None) -> None:
    """Send ``message`` (if any; a ``str`` is sent as it is) and close with ``code`` and
    ``msg``; a client that is gone or does not read is let go after ``FAREWELL_TIMEOUT``."""
    ws = cast(Websocket, websocket._get_current_object())  # type: ignore[attr-defined]
    g._jwt_extended_socket_closed = True
    if isinstance(message, dict):
        message = json.dumps(message, separators=(",", ":"))
    with contextlib.suppress(Exception):
        async with asyncio.timeout(FAREWELL_TIMEOUT):
            await ws.accept()
            if message is not None:
                await ws.send(message)
            await ws.close(code, _reason(msg))


async def run_websocket_view(
    view: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    verify: Callable[[], Awaitable[Any]] | None = None,
) -> Any:
    """Run a websocket view (after ``verify``) so that the socket ends as the contract says.

    The registry ends a session by cancelling its task; here that cancellation becomes
    ``{"type": "revoked"|"expired", "msg"}`` and close 4401, and a
    :class:`WebSocketAuthError` becomes its close code and reason. Any other
    cancellation (the client went away, shutdown) propagates untouched.
    """
    try:
        if verify is not None:
            await verify()
        return await view(*args, **(kwargs or {}))
    except asyncio.CancelledError:
        session = get_websocket_session()
        task = asyncio.current_task()
        if session is None or session.ended is None or task is None:
            raise
        task.uncancel()
        kind, msg = session.ended
        await close_socket(CLOSE_UNAUTHORIZED, msg, _farewell(kind, msg))
        return None
    except WebSocketAuthError as error:
        await close_socket(error.code, error.msg)
        return None
    except ConnectionError:
        # The server side gave up on the client (e.g. it does not read its messages: the
        # connection class closed the socket already); nothing left to say to it.
        return None
    finally:
        session = get_websocket_session()
        if session is not None:
            get_registry().close(session)


def init_websockets(app: Quart) -> None:
    """Let a socket verified by a bare ``verify_jwt_in_request`` (no ``jwt_required``
    around the view) end as the contract says too: its view is cancelled like any other,
    and the teardown sends the message and the close the wrapper would have."""

    @app.teardown_websocket
    async def end_cancelled_socket(_error: BaseException | None) -> None:
        session = get_websocket_session()
        if session is None or session.ended is None or g.get("_jwt_extended_socket_closed"):
            return
        kind, msg = session.ended
        await close_socket(CLOSE_UNAUTHORIZED, msg, _farewell(kind, msg))
