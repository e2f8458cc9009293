"""DPoP over HTTP: server CPU per ``GET /protected`` request, side by side in one run.

Rows: the Flask baseline (Flask-JWT-Extended under gunicorn, 2 sync workers) with a
bearer token; quart_app (Hypercorn, 2 workers, SQLite and in-process stores) with a bearer
token; quart_app with a DPoP-bound token and an ES256 proof per request (the SQL replay
store: one INSERT each). Each server's CPU (master and workers, user + system) is read
before and after a bounded batch of sequential keep-alive requests; the batches run in
interleaved rounds (A/B/C, A/B/C, ...) and the best round counts. Proofs are signed
before a round starts. CPU per request stays meaningful on a machine busy with other
work; requests per second would not.

    .venv/bin/python -m benchmarks.studies._dpop_http            # ~1 min
    .venv/bin/python -m benchmarks.studies._dpop_http --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from benchmarks.servers import Server, target_specs
from quart_app.jwt.dpop import access_token_hash

SECRET = "dpop-http-bench-" + "s" * 48
USER = {"username": "bench", "password": "correct-horse-battery"}


class Key:
    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))

    def proof(self, method: str, url: str, token: str | None = None) -> str:
        claims = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
        if token is not None:
            claims["ath"] = access_token_hash(token)
        headers = {"typ": "dpop+jwt", "jwk": self.jwk}
        return jwt.encode(claims, self.private, algorithm="ES256", headers=headers)


def _batch(server: Server, headers: list[dict[str, str]]) -> float:
    """Server CPU seconds per request for one batch."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        client.get("/healthz")  # the connection is open before the clock starts
        before = server.cpu_seconds()
        for h in headers:
            response = client.get("/protected", headers=h)
            if response.status_code != 200:
                raise RuntimeError(f"{server.spec.key}: {response.status_code} {response.text}")
        return (server.cpu_seconds() - before) / len(headers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    n, rounds = (200, 1) if args.quick else (1000, 3)
    specs = target_specs()
    workdir = Path(tempfile.mkdtemp(prefix="dpop-http-"))
    flask = Server(specs["flask-gunicorn"], workdir, SECRET)
    quart = Server(specs["quart-hypercorn"], workdir, SECRET)
    base = specs["quart-hypercorn"]
    redis_env = {"REDIS_URL": args.redis, "REDIS_PREFIX": f"dpop-http-{uuid.uuid4().hex[:8]}:"}
    with_redis = Server(
        dataclasses.replace(base, key="quart-hypercorn-redis", env={**base.env, **redis_env}),
        workdir,
        SECRET,
    )
    key = Key()
    try:
        flask.start()
        quart.start()
        with_redis.start()
        tokens = {}
        for server in (flask, quart, with_redis):
            httpx.post(f"{server.base_url}/register", json=USER, timeout=30)
            login = httpx.post(f"{server.base_url}/login", json=USER, timeout=30)
            tokens[server.spec.key] = login.json()["access_token"]
        bound_tokens = {}
        for server in (quart, with_redis):
            url = f"{server.base_url}/login"
            bound = httpx.post(
                url, json=USER, headers={"DPoP": key.proof("POST", url)}, timeout=30
            ).json()
            assert bound["token_type"] == "DPoP", bound
            bound_tokens[server.spec.key] = bound["access_token"]

        def bearer(server: Server) -> Callable[[], list[dict[str, str]]]:
            token = tokens[server.spec.key]
            return lambda: [{"Authorization": f"Bearer {token}"}] * n

        def dpop(server: Server) -> Callable[[], list[dict[str, str]]]:
            token = bound_tokens[server.spec.key]
            protected = f"{server.base_url}/protected"
            return lambda: [
                {"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", protected, token)}
                for _ in range(n)
            ]

        rows: list[tuple[str, Server, Callable[[], list[dict[str, str]]]]] = [
            ("Flask baseline, Bearer", flask, bearer(flask)),
            ("quart_app, Bearer", quart, bearer(quart)),
            ("quart_app, DPoP + ES256 proof, SQL replay store", quart, dpop(quart)),
            ("quart_app + Redis, Bearer", with_redis, bearer(with_redis)),
            ("quart_app + Redis, DPoP + ES256 proof, Redis replay", with_redis, dpop(with_redis)),
        ]
        best: dict[str, float] = {}
        for round_ in range(rounds):
            for name, server, make in rows:
                headers = make()
                per_request = _batch(server, headers)
                best[name] = min(best.get(name, float("inf")), per_request)
                print(f"round {round_ + 1} {name}: {per_request * 1e6:.0f} µs CPU/request")
    finally:
        flask.stop()
        quart.stop()
        with_redis.stop()
    flask_cpu = best["Flask baseline, Bearer"]
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'row':55} {'µs server CPU/request':>22} {'Flask/row':>10}")
    for name, seconds in best.items():
        print(f"{name:55} {seconds * 1e6:22.0f} {flask_cpu / seconds:10.2f}")


if __name__ == "__main__":
    main()
