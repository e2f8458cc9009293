"""quart_app.jwt is usable on its own: importing it (and using it) loads none of the
service (its database, Redis, password hashing, schemas, settings)."""

from __future__ import annotations

import json
import subprocess
import sys

SERVICE_MODULES = (
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "alembic",
    "redis",
    "argon2",
    "quart_schema",
    "quart_rate_limiter",
    "quart_cors",
    "prometheus_client",
    # (hypercorn is loaded by Quart itself)
    "pydantic",
)

PROGRAM = """
import asyncio, json, sys
from quart import Quart
from quart_app.jwt import JWTManager, create_access_token, get_jwt_identity, jwt_required

app = Quart("standalone")
app.config["JWT_SECRET_KEY"] = "standalone-" + "s" * 40
JWTManager(app)

@app.get("/protected")
@jwt_required()
async def protected():
    return {"identity": get_jwt_identity()}

async def main():
    async with app.app_context():
        token = await create_access_token("alice")
    response = await app.test_client().get(
        "/protected", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code, await response.get_json()

status, body = asyncio.run(main())
print(json.dumps({"status": status, "body": body, "modules": sorted(sys.modules)}))
"""


def test_importing_and_using_the_extension_loads_nothing_of_the_service() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(result.stdout)
    assert (report["status"], report["body"]) == (200, {"identity": "alice"})
    modules = report["modules"]
    assert "quart_app.jwt" in modules
    loaded = [
        m
        for m in modules
        if m.split(".")[0] in SERVICE_MODULES
        or (m.startswith("quart_app.") and not m.startswith("quart_app.jwt"))
    ]
    assert loaded == []
