"""What DPoP costs per request: ``GET /protected`` with a DPoP-bound token and an ES256
proof next to the same route with a bearer token, and the ES256 proof verification alone.

In-process, one core, no HTTP server: each request is one ASGI call into the service's
full stack (the claims fast path answers both kinds for a token the worker has seen),
timed in CPU seconds of this process (steadier than wall time on a busy machine), the
best of several repeats. Proofs are signed before the clock starts (a client's work),
each with its own ``jti``. Rows:

* ``bearer``: ``Authorization: Bearer``;
* ``dpop, replay window only``: the proof checked, its ``jti`` kept in this worker's
  window (no shared store): the cost of the check itself;
* ``dpop, SQL replay store``: as the service runs without Redis (one INSERT per request,
  SQLite here);
* ``dpop, Redis replay store``: with ``REDIS_URL`` (one ``SET NX PX`` per request; the
  row is left out when no Redis answers at ``--redis``);
* ``ES256 signature alone``: PyJWT's ``ECAlgorithm.verify`` of one proof's signature, the
  call the service makes; ``jwt.decode`` of a proof: PyJWT's whole decode, for scale.

    .venv/bin/python -m benchmarks.studies._dpop_cost            # ~20 s
    .venv/bin/python -m benchmarks.studies._dpop_cost --quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from quart_app import create_app
from quart_app.jwt import create_access_token
from quart_app.jwt.dpop import DPoP, access_token_hash, get_dpop, init_dpop, thumbprint

_clock = time.process_time
HOST = "bench.local"
URL = f"http://{HOST}/protected"


class Key:
    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        self.jkt = thumbprint(self.jwk)

    def proof(self, token: str) -> str:
        claims = {
            "jti": uuid.uuid4().hex,
            "htm": "GET",
            "htu": URL,
            "iat": int(time.time()),
            "ath": access_token_hash(token),
        }
        headers = {"typ": "dpop+jwt", "jwk": self.jwk}
        return jwt.encode(claims, self.private, algorithm="ES256", headers=headers)


async def _call(asgi: Any, headers: list[tuple[bytes, bytes]]) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/protected",
        "raw_path": b"/protected",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", HOST.encode()), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "extensions": {},
    }
    status = 0
    sent_body = False
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client stays connected (Quart stops listening when done)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await asgi(scope, receive, send)
    done.set()
    return status


async def _timed(asgi: Any, requests: list[list[tuple[bytes, bytes]]]) -> float:
    start = _clock()
    for headers in requests:
        status = await _call(asgi, headers)
        if status != 200:
            raise RuntimeError(f"status {status}")
    return (_clock() - start) / len(requests)


async def _redis_store(url: str) -> Any:
    from redis.asyncio import Redis

    from quart_app.store.oauth import RedisReplayStore

    client = Redis.from_url(url, socket_timeout=1)
    try:
        await client.ping()
    except Exception:
        await client.aclose()
        return None
    return RedisReplayStore(client, f"dpop-bench-{uuid.uuid4().hex[:8]}:", None)  # type: ignore[arg-type]


async def run(n: int, repeat: int, redis_url: str | None = None) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="dpop-bench-"))
    app = create_app(
        {
            "INSTANCE_PATH": str(workdir / "instance"),
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            "JWT_SECRET_KEY": "dpop-bench-" + "k" * 40,
            "ACCESS_LOG": False,
            "LOG_LEVEL": "WARNING",
        }
    )
    key = Key()
    rows: dict[str, float] = {}
    async with app.test_app():
        async with app.app_context():
            bearer = await create_access_token("1", additional_claims={"username": "a"})
            bound = await create_access_token(
                "1", additional_claims={"username": "a", "cnf": {"jkt": key.jkt}}
            )
        asgi = app.asgi_app
        service_dpop = get_dpop(app)
        window_only = DPoP(store=None, skew=service_dpop.skew)
        variants = [
            ("dpop, replay window only", window_only),
            ("dpop, SQL replay store", service_dpop),
        ]
        redis_store = await _redis_store(redis_url) if redis_url else None
        if redis_store is not None:
            variants.append(
                ("dpop, Redis replay store", DPoP(store=redis_store, skew=service_dpop.skew))
            )
        results: dict[str, list[float]] = {}
        for _ in range(repeat):
            bearer_requests = [[(b"authorization", f"Bearer {bearer}".encode())]] * n
            results.setdefault("bearer", []).append(await _timed(asgi, bearer_requests))
            for name, dpop in variants:
                init_dpop(app, dpop)
                proofs = [
                    [
                        (b"authorization", f"DPoP {bound}".encode()),
                        (b"dpop", key.proof(bound).encode()),
                    ]
                    for _ in range(n)
                ]
                results.setdefault(name, []).append(await _timed(asgi, proofs))
        init_dpop(app, service_dpop)
        if redis_store is not None:
            await redis_store.close()
    for name, times in results.items():
        rows[name] = min(times)
    proof = key.proof(bound)
    public = key.private.public_key()
    head, payload, signature = proof.split(".")
    signer = jwt.algorithms.get_default_algorithms()["ES256"]
    raw = jwt.utils.base64url_decode(signature)
    message = f"{head}.{payload}".encode()
    signature_times, decode_times = [], []
    for _ in range(repeat):
        start = _clock()
        for _ in range(n):
            signer.verify(message, public, raw)
        signature_times.append((_clock() - start) / n)
        start = _clock()
        for _ in range(n):
            jwt.decode(proof, public, algorithms=["ES256"], options={"verify_iat": False})
        decode_times.append((_clock() - start) / n)
    rows[SIGNATURE] = min(signature_times)
    rows["jwt.decode of a proof (PyJWT, for scale)"] = min(decode_times)
    return rows


SIGNATURE = "ES256 signature alone (PyJWT ECAlgorithm.verify)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    n, repeat = (200, 1) if args.quick else (2000, 3)
    rows = asyncio.run(run(n, repeat, args.redis))
    base = rows["bearer"]
    print(f"{'row':45} {'µs CPU/request':>15} {'x bearer':>9}")
    for name, seconds in rows.items():
        print(f"{name:45} {seconds * 1e6:15.1f} {seconds / base:9.2f}")
    window = rows["dpop, replay window only"]
    verify = rows[SIGNATURE]
    print(
        f"DPoP beyond the signature (window only): {(window - verify) * 1e6:.1f} µs"
        f" = {(window - verify) / base:.2f} x bearer",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()
