"""Helpers of the fault-injection tests (database, Redis, start-up) and their measurement script."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Callable

import httpx
import jwt

from tests.helpers.support import SECRET

#: Short, so the tests are quick; the default is 5 s.
OPERATION_TIMEOUT = 1.5
#: How long a client waits before it calls an answer lost: far past the bound.
PATIENCE = 30.0
UNAVAILABLE = {"msg": "Service temporarily unavailable"}


def credentials(name: str) -> dict[str, str]:
    return {"username": name, "password": "correct-horse"}


def env_for(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "DATABASE_OPERATION_TIMEOUT": str(OPERATION_TIMEOUT),
        "JWT_SECRET_KEY": SECRET,
        "RATELIMIT_AUTH_LIMIT": "100000",
        "LOG_FORMAT": "text",
        **extra,
    }


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.json() == UNAVAILABLE
    assert int(response.headers["Retry-After"]) >= 1


async def all_at_once(url: str, names: list[str]) -> list[httpx.Response]:
    """One registration per name, all in flight together."""
    async with httpx.AsyncClient(timeout=PATIENCE) as client:
        return await asyncio.gather(
            *(client.post(f"{url}/register", json=credentials(name)) for name in names)
        )


def eventually(check: Callable[[], bool], attempts: int = 300) -> bool:
    """Poll ``check`` until it is true (the server heals on its own), at most ~30 s."""
    for _ in range(attempts):
        if check():
            return True
        time.sleep(0.1)
    return False


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def signed_token(sub: str, username: str, key: str = SECRET) -> str:
    """An access token made with the service's key by someone else (another host)."""
    now = int(time.time())
    claims = {
        "sub": sub,
        "username": username,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": str(uuid.uuid4()),
        "type": "access",
        "fresh": False,
    }
    return jwt.encode(claims, key, algorithm="HS256")
