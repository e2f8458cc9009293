"""The best peer: a minimal FastAPI + PyJWT app answering GET /protected like quart_app.

No database and no login: the runner mints its HS256 access tokens with the shared
``JWT_SECRET_KEY``. Verification is as strict as ours (required ``sub``, ``exp``, ``jti``,
``type``; only HS256 accepted; refresh tokens refused). Served by uvicorn::

    uvicorn --factory --workers 2 --no-access-log benchmarks.peers.fastapi_app:create_app
"""

from __future__ import annotations

import os
from typing import Any

import jwt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

REQUIRED_CLAIMS = ["exp", "sub", "jti", "type"]


def _error(status: int, msg: str) -> JSONResponse:
    return JSONResponse({"msg": msg}, status_code=status)


def create_app() -> FastAPI:
    """Build the peer; the secret comes from ``JWT_SECRET_KEY``."""
    secret = os.environ["JWT_SECRET_KEY"]
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/protected", response_model=None)
    async def protected(request: Request) -> dict[str, Any] | JSONResponse:
        header = request.headers.get("authorization")
        if header is None:
            return _error(401, "Missing Authorization Header")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token or " " in token:
            return _error(422, "Bad Authorization header. Expected 'Authorization: Bearer <JWT>'")
        try:
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], options={"require": REQUIRED_CLAIMS}
            )
        except jwt.ExpiredSignatureError:
            return _error(401, "Token has expired")
        except jwt.InvalidTokenError as exc:
            return _error(422, str(exc))
        if claims["type"] != "access":
            return _error(422, "Only non-refresh tokens are allowed")
        return {"logged_in_as": claims.get("username", claims["sub"])}

    @app.get("/noop")
    async def noop() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
