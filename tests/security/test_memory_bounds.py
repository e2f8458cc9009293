"""Every in-process table that traffic fills has a bound (a size, or a lifetime after
which it is swept): a long-running worker's memory levels off instead of growing with
the tokens, clients and proofs it has seen. One test per bound; docs/operating.md lists
them with what each entry costs.

Bounds tested elsewhere: the rate limiter's in-memory store
(tests/security/test_rate_limits.py), the revocation mirror's pruning
(tests/jwt/test_revocation_list.py) and the metrics' route label for unknown paths
(tests/observability/test_observability.py).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import importlib
import inspect
import json
import pkgutil
import threading
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm
from quart import Quart

import quart_app
import quart_app.jwt as qje
from quart_app.jwt.dpop import DPoP, Proof, _HeaderCache
from quart_app.jwt.socket_sessions import SocketRegistry
from quart_app.observability.metrics import Metrics
from quart_app.security import clients as client_auth
from quart_app.security.clients import IntrospectionClients
from quart_app.security.passwords import Passwords

SECRET = "bounds-secret-" + "s" * 50


# -- the verified-token cache (JWT_VERIFIED_CACHE_SIZE) -----------------------------------


async def test_verified_token_cache_keeps_at_most_its_size_newest_first() -> None:
    app = Quart(__name__)
    app.config.update(JWT_SECRET_KEY=SECRET, JWT_VERIFIED_CACHE_SIZE=8)
    manager = qje.JWTManager(app)
    async with app.app_context():
        tokens = [await qje.create_access_token(identity=f"user-{n}") for n in range(30)]
        for token in tokens:
            assert (await qje.decode_token(token))["sub"] in {f"user-{n}" for n in range(30)}
    assert list(manager.verified_tokens) == tokens[-8:]


async def test_an_expired_entry_leaves_the_verified_token_cache_when_looked_up() -> None:
    app = Quart(__name__)
    app.config.update(JWT_SECRET_KEY=SECRET, JWT_ACCESS_TOKEN_EXPIRES=1)
    manager = qje.JWTManager(app)
    async with app.app_context():
        token = await qje.create_access_token(identity="user")
        await qje.decode_token(token)
        assert token in manager.verified_tokens
        header, claims, _ = manager.verified_tokens[token]
        manager.verified_tokens[token] = (header, claims, time.time() - 10)
        try:
            await qje.decode_token(token)
        except Exception as error:
            assert type(error).__name__ == "ExpiredSignatureError"
    assert token not in manager.verified_tokens


# -- DPoP: the proof-header cache and this worker's replay window ------------------------


def _proof_header() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    header = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}
    return base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()


def test_dpop_header_cache_keeps_at_most_its_size() -> None:
    cache = _HeaderCache(size=4)
    headers = [_proof_header() for _ in range(10)]
    for header in headers:
        assert cache.get(header)[0] == "EdDSA"
    assert list(cache._entries) == headers[-4:]


async def test_dpop_replay_window_keeps_at_most_its_size() -> None:
    now = [1_000_000.0]
    dpop = DPoP(window=16, clock=lambda: now[0])
    for n in range(100):
        await dpop.accept_once(Proof(jkt="key", jti=f"proof-{n}", iat=now[0]))
    assert len(dpop._seen) <= 16


async def test_dpop_replay_window_forgets_proofs_past_their_age() -> None:
    now = [1_000_000.0]
    dpop = DPoP(max_age=60.0, clock=lambda: now[0])
    for n in range(50):
        await dpop.accept_once(Proof(jkt="key", jti=f"proof-{n}", iat=now[0]))
    now[0] += 62.0  # past iat + max_age + 1: no longer acceptable, so no longer kept
    await dpop.accept_once(Proof(jkt="key", jti="later", iat=now[0]))
    assert len(dpop._seen) == 1


# -- introspection clients: the pairs verified before ------------------------------------


async def test_introspection_remembers_a_bounded_number_of_verified_pairs() -> None:
    many = client_auth._REMEMBERED + 50
    configured = {f"client-{n}": f"secret-{n}-{'x' * 20}" for n in range(many)}
    clients = IntrospectionClients(configured, passwords=None)  # type: ignore[arg-type]
    for client_id, secret in configured.items():
        assert await clients.authenticate(client_id, secret)
    assert len(clients._verified) == client_auth._REMEMBERED


# -- open WebSockets: the expiry heap ----------------------------------------------------


async def test_socket_expiry_heap_does_not_keep_closed_sockets() -> None:
    registry = SocketRegistry()
    task = asyncio.current_task()
    assert task is not None
    exp = time.time() + 3600
    try:
        for n in range(1000):
            claims = {"sub": f"user-{n}", "jti": f"jti-{n}", "iat": time.time(), "exp": exp}
            registry.close(registry.open(task, {}, claims))
        assert len(registry) == 0
        assert len(registry._heap) <= 2 * len(registry) + 64 + 1
        assert not registry._by_jti and not registry._by_sub
    finally:
        registry.stop()


# -- metrics: one label set per method, route and status ---------------------------------


def test_request_metrics_label_unusual_methods_as_one() -> None:
    metrics = Metrics()
    for n in range(200):
        metrics.observe_request(f"X{n}", "<unmatched>", 405, 0.001, None)
    assert list(metrics._requests) == [("OTHER", "<unmatched>", 405)]
    assert list(metrics._latency) == [("OTHER", "<unmatched>")]


# -- lru_caches: every one that takes arguments has a size ---------------------------------


def _caches() -> list[tuple[str, Any]]:
    found = []
    for info in pkgutil.walk_packages(quart_app.__path__, "quart_app."):
        # serving/preloaded.py freezes the heap when imported (the forkserver's last import):
        # here it would freeze the test run's (tests/serving/test_worker_hooks.py counts it).
        if info.name.endswith(("__main__", ".preloaded")) or ".migrations." in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, functools._lru_cache_wrapper):
                found.append((f"{info.name}.{name}", value))
    return found


def test_every_lru_cache_with_arguments_has_a_maxsize() -> None:
    caches = _caches()
    assert {"quart_app.jwt.dpop.normalize_htu", "quart_app.jwt.websocket._farewell"} <= {
        name for name, _ in caches
    }
    unbounded = [
        name
        for name, cache in caches
        if cache.cache_parameters()["maxsize"] is None
        and inspect.signature(cache.__wrapped__).parameters
    ]
    assert unbounded == []


# -- password hashing: argon2's working memory stays with each pool thread ---------------


async def test_password_hashes_run_on_at_most_the_pool_threads() -> None:
    # Each thread that has hashed keeps ARGON2_MEMORY_COST resident (glibc keeps a freed
    # block that large for reuse): the pool's size is what bounds that memory.
    passwords = Passwords(time_cost=1, memory_cost=8, parallelism=1, threads=2)
    await passwords.start()
    seen: set[int] = set()

    def note(password: str) -> str:
        seen.add(threading.get_ident())
        return str(passwords.hasher.hash(password))

    try:
        await asyncio.gather(*(passwords._run(note, f"password-{n}") for n in range(40)))
    finally:
        await passwords.stop()
    assert 1 <= len(seen) <= 2
