"""A resource server that has nothing of quart_app but its JWT extension and a JWKS URL.

Served by Hypercorn in ``tests/jwt/test_jwks_live.py``: ``JWKS_URL`` names the issuer's
``/.well-known/jwks.json``; tokens are RS256 and verified with the keys found there.
"""

from __future__ import annotations

import os
from typing import Any

from quart import Quart

from quart_app.jwt import JWTManager, get_jwt, get_jwt_header, jwt_required

app = Quart(__name__)
app.config.update(
    JWT_ALGORITHM="RS256",
    JWT_JWKS_URL=os.environ["JWKS_URL"],
    JWT_JWKS_MIN_REFRESH_SECONDS=float(os.environ.get("JWT_JWKS_MIN_REFRESH_SECONDS", "30")),
    JWT_JWKS_TIMEOUT_SECONDS=2.0,
)
JWTManager(app)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/whoami")
@jwt_required()
async def whoami() -> dict[str, Any]:
    return {"sub": get_jwt()["sub"], "kid": get_jwt_header().get("kid")}
