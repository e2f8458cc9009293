"""``GET /ws``: an authenticated WebSocket that lives only as long as its token.

The token comes in the handshake's ``Authorization`` header (a bad one refuses the
upgrade with the HTTP answer), or in the first message ``{"type": "auth", "token":
...}`` within 5 s. Then ``{"type": "echo", "data": X}`` is echoed, and ``{"type":
"auth", "token": ...}`` with a newer token of the same user extends the socket. When the
token expires or is revoked anywhere, the client gets ``{"type": "expired"|"revoked",
"msg": ...}`` and close 4401 (``quart_app.jwt.websocket`` does that part).
"""

from __future__ import annotations

from typing import Any

import orjson
from quart import Blueprint, Response, current_app, jsonify, websocket
from quart_cors import cors_exempt

from ..jwt import get_websocket_session, jwt_required, websocket_auth, websocket_reauth
from ..middleware.websockets import ClientNotReading, pending_slot

bp = Blueprint("ws", __name__)

#: Seconds a browser has to send its auth message after the handshake.
AUTH_TIMEOUT = 5.0

#: What the OpenAPI description says about this route (OpenAPI has no WebSockets).
DESCRIPTION = """\
**WebSocket `GET /ws`** (not an HTTP operation, so not listed below). Authenticate with the
handshake's `Authorization: Bearer <access token>` header (a bad one refuses the upgrade
with the status and `msg` of the HTTP routes), or, from a browser, with the first message
`{"type": "auth", "token": "<access token>"}` within 5 s (a bad or missing one closes the
socket with code 4401 and the `msg` as reason). The server then sends `{"type": "ready",
"sub", "exp"}` and answers `{"type": "echo", "data": X}` with the same message. The socket
lives only as long as its token: on expiry or revocation (logout, password change,
revoke-user, on any worker) the server sends `{"type": "expired"|"revoked", "msg"}` and
closes with 4401. `{"type": "auth", "token": <newer token of the same user>}` extends it
(answered `ready` again); a token of another user closes it with 4403.
"""


def _dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def _ready(claims: dict[str, Any]) -> str:
    return _dumps({"type": "ready", "sub": claims.get("sub"), "exp": claims.get("exp")})


def _error(msg: str) -> str:
    return _dumps({"type": "error", "msg": msg})


@bp.websocket("/ws")
@cors_exempt
@jwt_required(optional=True)
async def ws() -> tuple[Response, int, dict[str, str]] | None:
    """Echo for an authenticated client, until its token dies.

    Exempt from quart-cors' origin check, which would refuse every handshake without an
    allowed ``Origin`` (any non-browser client): a socket needs a token anyway, which no
    other site's page holds; only a cookie can be sent by one, and the extension takes a
    cookie only from ``JWT_WEBSOCKET_ORIGINS``.

    A socket without a token in its handshake waits for its auth message in one of the
    worker's ``WS_MAX_PENDING_SOCKETS`` slots; with none free the handshake gets 503. A
    client that does not take its replies is closed with 1008 (quart_app/serving/wsbounds.py).
    """
    try:
        if get_websocket_session() is None:
            async with pending_slot(current_app._get_current_object()) as admitted:  # type: ignore[attr-defined]
                if not admitted:
                    msg = "Too many WebSockets waiting for authentication"
                    return jsonify(msg=msg), 503, {"Retry-After": "5"}
                claims = await websocket_auth(timeout=AUTH_TIMEOUT)
        else:
            claims = await websocket_auth(timeout=AUTH_TIMEOUT)
        await websocket.send(_ready(claims))
        await _serve()
    except ClientNotReading:
        pass  # closed with 1008 already
    return None


async def _serve() -> None:
    while True:
        raw = await websocket.receive()
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await websocket.send(_error("Message is not valid JSON"))
            continue
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "echo":
            await websocket.send(_dumps({"type": "echo", "data": message.get("data")}))
        elif kind == "auth":
            token = message.get("token")
            if not isinstance(token, str) or not token:
                await websocket.send(_error('Missing "token" in the auth message'))
                continue
            await websocket.send(_ready(await websocket_reauth(token)))
        else:
            await websocket.send(_error('Unknown message type: expected "echo" or "auth"'))
