"""In-process micro-benchmarks: what verifying a token costs, and what a request costs
inside each app with no server and no network.

Rows (CPU µs per operation -- process time, so that other work on a shared machine does
not count -- best of several repeats, one core), by group:

* ``pyjwt``: the HMAC-SHA256 floor over the token's signing input, and PyJWT's
  ``jwt.decode``;
* ``flask``: Flask-JWT-Extended's ``decode_token`` in the baseline app, and one whole
  GET /protected and GET /noop through its WSGI callable;
* ``quart_app``: ``verify_jwt_in_request`` in a request context (the decorator's whole
  work: header parsing, decode, type check, revocation check), less the bare context's
  cost, and whole requests through the ASGI callable;
* ``fastapi``: whole requests through the FastAPI peer;
* ``hashing``: one password verification with each app's parameters;
* ``algorithms`` (not in the default set): the JWT extension alone, per algorithm (HS256,
  RS256, ES256, EdDSA), with the verified-token cache on (every call after the first is a
  hit) and off (``JWT_VERIFIED_CACHE_SIZE = 0``: a first sight every time), the
  ``@jwt_required()`` view beside ``verify_jwt_in_request``, against a revocation mirror
  of 12,000 entries.

    python -m benchmarks.micro                    # the runner's set, a JSON list of rows
    python -m benchmarks.micro --quick            # few iterations (smoke)
    python -m benchmarks.micro --groups pyjwt,algorithms --text   # the verification table
    python -m benchmarks.micro --groups algorithms --hs-only      # HS256 alone

A row whose code is missing (the app not built yet) carries its error instead of a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Locust imports this module: Quart is loaded only when measuring
    from quart import Quart

SECRET = "micro-" + secrets.token_hex(32)
REQUIRED = ["exp", "sub", "jti", "type"]


def _discard(data: bytes) -> None:
    """A WSGI ``write`` callable that drops what it is given (Flask never calls it)."""


def _time_sync(fn: Callable[[], object], n: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - start) / n)
    return best * 1e6


async def _time_async(fn: Callable[[], Awaitable[object]], n: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(n):
            await fn()
        best = min(best, (time.process_time() - start) / n)
    return best * 1e6


def _mint(username: str = "micro_user") -> str:
    import jwt

    now = int(time.time())
    claims = {"sub": "1", "iat": now, "nbf": now, "exp": now + 3600, "jti": str(uuid.uuid4())}
    claims |= {"type": "access", "fresh": False, "username": username}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _row(name: str, us: float | None, note: str = "", error: str | None = None) -> dict[str, Any]:
    return {"name": name, "us": us, "note": note, "error": error}


def bench_pyjwt(n: int) -> list[dict[str, Any]]:
    import jwt

    token = _mint()
    signing_input, _, signature = token.rpartition(".")
    key = SECRET.encode()
    expected = jwt.utils.base64url_decode(signature.encode())

    def floor() -> bool:
        digest = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
        return hmac.compare_digest(digest, expected)

    def decode() -> object:
        return jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": REQUIRED})

    return [
        _row("HMAC-SHA256 floor", _time_sync(floor, n * 10), "hmac.new + compare_digest"),
        _row("PyJWT jwt.decode", _time_sync(decode, n), "HS256, exp checked, claims required"),
    ]


def bench_flask(n: int) -> list[dict[str, Any]]:
    from flask_jwt_extended import decode_token
    from werkzeug.test import EnvironBuilder

    from benchmarks.baseline.app import create_app, db

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/micro.db", "JWT_SECRET_KEY": SECRET}
        )
        token = _mint()
        with app.app_context():
            db.create_all()
            rows.append(
                _row(
                    "Flask-JWT-Extended decode_token",
                    _time_sync(lambda: decode_token(token), n),
                    "baseline app context",
                )
            )
        for path, auth in (("/protected", True), ("/noop", False)):
            headers = [("Authorization", f"Bearer {token}")] if auth else []
            environ = EnvironBuilder(path=path, headers=headers).get_environ()

            def call(environ: dict[str, Any] = environ, path: str = path) -> None:
                status: list[str] = []

                def start_response(
                    line: str, headers: list[tuple[str, str]], exc_info: Any = None
                ) -> Callable[[bytes], object]:
                    status.append(line)
                    return _discard

                body = app.wsgi_app(dict(environ), start_response)
                b"".join(body)
                if not status or not status[0].startswith("200"):
                    raise RuntimeError(f"Flask {path} answered {status}")

            rows.append(_row(f"Flask GET {path}, whole request", _time_sync(call, n), "WSGI"))
    return rows


class _Asgi:
    """Drive an ASGI app in-process: one GET, no server, no network."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.never = asyncio.Event()

    async def get(self, path: str, headers: dict[str, str]) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"bench")]
            + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "extensions": {},
            "state": {},
        }
        sent_body = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.never.wait()  # the client stays connected
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        return status


async def _bench_asgi(
    name: str, app: Any, token: str, n: int, noop: str = "/noop"
) -> list[dict[str, Any]]:
    driver = _Asgi(app)
    rows = []
    for path, auth in (("/protected", True), (noop, False)):
        headers = {"Authorization": f"Bearer {token}"} if auth else {}
        status = await driver.get(path, headers)
        if status != 200:
            rows.append(_row(f"{name} GET {path}", None, error=f"answered {status}"))
            continue

        async def call(path: str = path, headers: dict[str, str] = headers) -> int:
            return await driver.get(path, headers)

        us = await _time_async(call, n)
        rows.append(_row(f"{name} GET {path}, whole request", us, "ASGI, in-process"))
    return rows


async def _bench_quart(n: int) -> list[dict[str, Any]]:
    from benchmarks.peers.quart_noop import create_app

    app = create_app()
    rows: list[dict[str, Any]] = []
    async with app.test_app() as test_app:
        client = test_app.test_client()
        username, password = f"micro_{uuid.uuid4().hex[:12]}", secrets.token_urlsafe(16)
        creds = {"username": username, "password": password}
        resp = await client.post("/register", json=creds)
        if resp.status_code != 201:
            raise RuntimeError(f"/register answered {resp.status_code}")
        resp = await client.post("/login", json=creds)
        token = (await resp.get_json())["access_token"]

        from quart_app.jwt import verify_jwt_in_request

        headers = {"Authorization": f"Bearer {token}"}

        async def ctx_only() -> None:
            async with app.test_request_context("/protected", headers=headers):
                pass

        async def ctx_verify() -> None:
            async with app.test_request_context("/protected", headers=headers):
                await verify_jwt_in_request()

        base = await _time_async(ctx_only, n)
        full = await _time_async(ctx_verify, n)
        rows.append(
            _row(
                "quart_app verify_jwt_in_request",
                full - base,
                f"decorator's work; request context itself {base:.0f} µs excluded",
            )
        )
        rows += await _bench_asgi("quart_app", app, token, n)
    from quart_app.startup.settings import DEFAULTS

    if "FAST_PATH" in DEFAULTS:
        slow_app = create_app(FAST_PATH=False)
        async with slow_app.test_app():
            rows += await _bench_asgi("quart_app (FAST_PATH=false)", slow_app, token, n)
    return rows


async def _bench_fastapi(n: int) -> list[dict[str, Any]]:
    from benchmarks.peers.fastapi_app import create_app

    os.environ["JWT_SECRET_KEY"] = SECRET
    return await _bench_asgi("FastAPI", create_app(), _mint(), n)


def bench_hashing(quick: bool) -> list[dict[str, Any]]:
    """One password verify with each app's parameters: what bounds logins per second."""
    from argon2 import PasswordHasher, Type
    from werkzeug.security import check_password_hash, generate_password_hash

    from quart_app.startup.settings import load_settings

    settings = load_settings()
    hasher = PasswordHasher(
        time_cost=settings["ARGON2_TIME_COST"],
        memory_cost=settings["ARGON2_MEMORY_COST"],
        parallelism=settings["ARGON2_PARALLELISM"],
        type=Type.ID,
    )
    argon_hash = hasher.hash("correct horse battery")
    scrypt_hash = generate_password_hash("correct horse battery")
    n = 2 if quick else 10
    cores = os.cpu_count() or 1
    argon = _time_sync(lambda: hasher.verify(argon_hash, "correct horse battery"), n, 3)
    scrypt = _time_sync(lambda: check_password_hash(scrypt_hash, "correct horse battery"), n, 3)
    params = (
        f"t={settings['ARGON2_TIME_COST']}, m={settings['ARGON2_MEMORY_COST']} KiB,"
        f" p={settings['ARGON2_PARALLELISM']}"
    )
    return [
        _row(
            "argon2id verify (quart_app's parameters)",
            argon,
            f"{params}: at most ~{cores / (argon / 1e6):.0f} logins/s on {cores} cores",
        ),
        _row(
            "werkzeug scrypt verify (Flask baseline)",
            scrypt,
            f"at most ~{cores / (scrypt / 1e6):.0f} logins/s on {cores} cores",
        ),
    ]


def _extension_app(algorithm: str, cache: bool) -> Quart:
    """The JWT extension on a bare Quart app, with a 12,000-entry revocation mirror."""
    from quart import Quart

    from quart_app.jwt import JWTManager, Revocation, RevocationList
    from quart_app.jwt.keys import KeySet, generate_private_key

    app = Quart(__name__)
    app.config.update(
        JWT_SECRET_KEY=SECRET,
        JWT_ALGORITHM=algorithm,
        JWT_VERIFIED_CACHE_SIZE=10_000 if cache else 0,
    )
    manager = JWTManager(app)
    if not algorithm.startswith("HS"):
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


async def _extension_rows(app: Quart, label: str, n: int, repeat: int) -> list[dict[str, Any]]:
    from quart_app.jwt import create_access_token, get_jwt, jwt_required, verify_jwt_in_request

    async with app.app_context():
        # The claims /login puts in a token (quart_app.routes.auth).
        claims = {"username": "bench", "fam": "f" * 32}
        token = await create_access_token("1", fresh=True, additional_claims=claims)

    @jwt_required()
    async def view() -> dict[str, Any]:
        return {"logged_in_as": get_jwt()["username"]}

    async with app.test_request_context("/protected", headers={"Authorization": f"Bearer {token}"}):
        verify_us = await _time_async(verify_jwt_in_request, n, repeat)
        view_us = await _time_async(view, n, repeat)
    return [
        _row(f"verify_jwt_in_request, {label}", verify_us, "the extension alone"),
        _row(f"@jwt_required() view, {label}", view_us, "the extension alone"),
    ]


async def bench_algorithms(quick: bool, hs_only: bool) -> list[dict[str, Any]]:
    """Each algorithm, verified-token cache on and off."""
    n, repeat = (300, 2) if quick else (5000, 7)
    rows: list[dict[str, Any]] = []
    for algorithm in ("HS256",) if hs_only else ("HS256", "RS256", "ES256", "EdDSA"):
        count = n if algorithm == "HS256" else n // 5
        for cache in (True, False):
            label = f"{algorithm}, cache {'on' if cache else 'off'}"
            app = _extension_app(algorithm, cache)
            rows += await _extension_rows(app, label, count, repeat)
    return rows


#: Every group, in run order.
GROUPS = ("pyjwt", "flask", "quart_app", "fastapi", "hashing", "algorithms")
#: What ``python -m benchmarks.micro`` measures unless told (the runner's verify-micro).
DEFAULT_GROUPS = ("pyjwt", "flask", "quart_app", "fastapi", "hashing")


def run_all(
    quick: bool = False, groups: tuple[str, ...] = DEFAULT_GROUPS, hs_only: bool = False
) -> list[dict[str, Any]]:
    """The micro-benchmarks of ``groups``; a failing group becomes a row with the error."""
    n = 100 if quick else 1000
    rows: list[dict[str, Any]] = []
    every: dict[str, tuple[str, Callable[[], list[dict[str, Any]]]]] = {
        "pyjwt": ("PyJWT", lambda: bench_pyjwt(n)),
        "flask": ("Flask", lambda: bench_flask(n)),
        "quart_app": ("quart_app", lambda: asyncio.run(_bench_quart(n))),
        "fastapi": ("FastAPI", lambda: asyncio.run(_bench_fastapi(n))),
        "hashing": ("password hashing", lambda: bench_hashing(quick)),
        "algorithms": ("algorithms", lambda: asyncio.run(bench_algorithms(quick, hs_only))),
    }
    for key in groups:
        name, group = every[key]
        try:
            rows += group()
        except Exception as exc:  # report it, keep the other groups
            rows.append(_row(name, None, error=f"{type(exc).__name__}: {exc}"))
    return rows


def _groups(text: str) -> tuple[str, ...]:
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in chosen if name not in GROUPS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"groups are {', '.join(GROUPS)}; not {unknown}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description="in-process verification micro-benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke)")
    parser.add_argument(
        "--groups",
        type=_groups,
        default=DEFAULT_GROUPS,
        help=f"comma-separated, of {', '.join(GROUPS)} (default: all but algorithms)",
    )
    parser.add_argument("--hs-only", action="store_true", help="algorithms: HS256 alone")
    parser.add_argument("--text", action="store_true", help="a table instead of JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("INSTANCE_PATH", tmp)
        os.environ.setdefault("DATABASE_URL", f"sqlite+aiosqlite:///{tmp}/micro.db")
        os.environ["JWT_SECRET_KEY"] = SECRET
        os.environ.setdefault("RATELIMIT_AUTH_LIMIT", "1000000")
        rows = run_all(args.quick, args.groups, args.hs_only)
    if not args.text:
        print(json.dumps(rows))
        return
    for row in rows:
        figure = f"{row['us']:9.2f} µs" if row["us"] is not None else f"{'error':>12}"
        print(f"{figure}  {row['name']}{'  ' + row['error'] if row['error'] else ''}")


if __name__ == "__main__":
    main()
