"""What one token verification costs in quart_app.jwt, next to PyJWT and the HMAC floor.

In-process, one core, no server: each row is µs of CPU time per operation, the best of
several repeats. ``verify_jwt_in_request`` and the ``@jwt_required()`` view are timed inside one
test request context, so the context's own set-up cost is not counted (it is the same with
or without JWT); the cache rows show the verified-token cache on (every call after the
first is a hit) and off (``JWT_VERIFIED_CACHE_SIZE = 0``: full PyJWT decode every time).

    .venv/bin/python -m benchmarks.verify_cost            # ~10 s
    .venv/bin/python -m benchmarks.verify_cost --quick    # smoke run
    .venv/bin/python -m benchmarks.verify_cost --json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt as pyjwt
from quart import Quart

SECRET = "verify-cost-" + "k" * 52


# CPU time of this process: steadier than wall time on a machine that is doing other work.
_clock = time.process_time


def _best_sync(fn: Callable[[], object], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = _clock()
        for _ in range(n):
            fn()
        best = min(best, (_clock() - start) / n)
    return best * 1e6


async def _best_async(fn: Callable[[], Awaitable[object]], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = _clock()
        for _ in range(n):
            await fn()
        best = min(best, (_clock() - start) / n)
    return best * 1e6


def _app(algorithm: str = "HS256", cache: bool = True, **config: Any) -> Quart:
    from quart_app.jwt import JWTManager, Revocation, RevocationList

    app = Quart(__name__)
    app.config.update(
        JWT_SECRET_KEY=SECRET,
        JWT_ALGORITHM=algorithm,
        JWT_VERIFIED_CACHE_SIZE=10_000 if cache else 0,
        **config,
    )
    manager = JWTManager(app)
    if not algorithm.startswith("HS"):
        from quart_app.jwt.keys import KeySet, generate_private_key

        manager.keys = KeySet.from_private_keys([(generate_private_key(algorithm), algorithm)])
    # As in create_app: the built-in revocation mirror, here with 10,000 revoked tokens,
    # 1,000 revoked logins and 1,000 password changes, so every check has work to do.
    manager.revocations = RevocationList()
    later = time.time() + 3600
    manager.revocations.apply(
        [Revocation("jti", f"jti-{i}", later) for i in range(10_000)]
        + [Revocation("family", f"family-{i}", later) for i in range(1_000)]
        + [Revocation("user", str(1000 + i), later, time.time()) for i in range(1_000)]
    )
    return app


async def _token(app: Quart) -> str:
    from quart_app.jwt import create_access_token

    async with app.app_context():
        # The claims /login puts in a token (quart_app.routes.auth).
        claims = {"username": "bench", "fam": "f" * 32}
        return await create_access_token("1", fresh=True, additional_claims=claims)


async def _verify_rows(app: Quart, label: str, n: int, repeat: int) -> list[dict[str, Any]]:
    from quart_app.jwt import get_jwt, jwt_required, verify_jwt_in_request

    token = await _token(app)

    @jwt_required()
    async def view() -> dict[str, Any]:
        return {"logged_in_as": get_jwt()["username"]}

    async with app.test_request_context("/protected", headers={"Authorization": f"Bearer {token}"}):
        verify_us = await _best_async(verify_jwt_in_request, n, repeat)
        view_us = await _best_async(view, n, repeat)
    return [
        {"name": f"verify_jwt_in_request, {label}", "us": verify_us},
        {"name": f"@jwt_required() view, {label}", "us": view_us},
    ]


def _raw_rows(n: int, repeat: int) -> list[dict[str, Any]]:
    now = int(time.time())
    claims = {"sub": "1", "iat": now, "nbf": now, "exp": now + 3600, "jti": "j", "type": "access"}
    token = pyjwt.encode(claims, SECRET, algorithm="HS256")
    signing_input, _, signature = token.rpartition(".")
    key, raw = SECRET.encode(), pyjwt.utils.base64url_decode(signature.encode())

    def floor() -> bool:
        digest = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
        return hmac.compare_digest(digest, raw)

    def decode() -> object:
        return pyjwt.decode(token, SECRET, algorithms=["HS256"])

    return [
        {
            "name": "HMAC-SHA256 floor (hmac.new + compare_digest)",
            "us": _best_sync(floor, n, repeat),
        },
        {"name": "PyJWT jwt.decode, HS256", "us": _best_sync(decode, n, repeat)},
    ]


async def measure(n: int = 5000, repeat: int = 5, asymmetric: bool = True) -> list[dict[str, Any]]:
    """Every row as ``{"name", "us"}``."""
    rows = _raw_rows(n, repeat)
    rows += await _verify_rows(_app(cache=True), "HS256, cache on", n, repeat)
    rows += await _verify_rows(_app(cache=False), "HS256, cache off", n, repeat)
    if asymmetric:
        for alg in ("RS256", "ES256", "EdDSA"):
            rows += await _verify_rows(_app(alg, cache=True), f"{alg}, cache on", n // 5, repeat)
            rows += await _verify_rows(_app(alg, cache=False), f"{alg}, cache off", n // 5, repeat)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (smoke)")
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    parser.add_argument("--hs-only", action="store_true", help="skip RS256/ES256/EdDSA")
    args = parser.parse_args()
    n, repeat = (300, 2) if args.quick else (5000, 7)
    rows = asyncio.run(measure(n, repeat, asymmetric=not args.hs_only))
    if args.json:
        print(json.dumps(rows))
        return
    for row in rows:
        print(f"{row['us']:9.2f} µs  {row['name']}")


if __name__ == "__main__":
    main()
