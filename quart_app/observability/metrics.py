"""Prometheus metrics (prometheus-client) and the ``GET /metrics`` view.

Each app has its own registry, so apps built in one process (tests) never mix counts.
Hypercorn runs several worker processes and a scrape reaches only one of them; with the
environment variable ``PROMETHEUS_MULTIPROC_DIR`` set (to an empty directory, before the
server starts) every worker writes its values to files there and ``/metrics`` sums them
all -- prometheus-client's multiprocess mode. Without it each worker reports only itself,
which is right for a single worker only (a warning says so at start-up).

Labels are bounded: the route is the URL rule (``/users``, never the raw path; unmatched
paths are ``<unmatched>``), the method one of the usual few, verification outcomes and
login outcomes small fixed sets.
"""

from __future__ import annotations

import hmac
import logging
import os
from typing import Any

import jwt
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ..jwt.errors import (
    CSRFError,
    FreshTokenRequired,
    InvalidHeaderError,
    InvalidQueryParamError,
    NoAuthorizationError,
    RevokedTokenError,
    UserClaimsVerificationError,
    UserLookupError,
    WrongTokenError,
)

log = logging.getLogger(__name__)

NAMESPACE = "quart_app"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Request latency buckets (seconds): token checks take well under a millisecond, logins
#: (argon2id) tens to hundreds of milliseconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
HASH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

#: Exception class -> verification outcome label, most specific first.
REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (NoAuthorizationError, "missing"),
    (CSRFError, "csrf"),
    (InvalidHeaderError, "bad_header"),
    (InvalidQueryParamError, "bad_header"),
    (WrongTokenError, "wrong_type"),
    (FreshTokenRequired, "not_fresh"),
    (RevokedTokenError, "revoked"),
    (UserLookupError, "unknown_user"),
    (UserClaimsVerificationError, "claims_rejected"),
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidAlgorithmError, "bad_algorithm"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidAudienceError, "bad_audience"),
    (jwt.InvalidIssuerError, "bad_issuer"),
    (jwt.DecodeError, "malformed"),
)
LOGIN_OUTCOMES = {200: "ok", 401: "failed", 429: "throttled"}


def verification_reason(error: BaseException) -> str:
    for cls, reason in REASONS:
        if isinstance(error, cls):
            return reason
    return "invalid"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """The app's metrics; ``observe_request`` is the per-request hot path."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_dir() is not None
        r = self.registry
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from the start of handling to the response, by method and route.",
            ["method", "route"],
            namespace=NAMESPACE,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.verifications = Counter(
            "jwt_verifications",
            "Token checks on protected routes, by outcome (ok or why it failed).",
            ["outcome"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.logins = Counter(
            "logins",
            "POST /login answers: ok, failed (bad credentials), throttled, invalid (bad body).",
            ["outcome"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.login_refusals = Counter(
            "login_refusals",
            "Password checks refused before they ran, by limit: source (the network's"
            " block), pair (the account from that network), account.",
            ["limit"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.hash_queue = Gauge(
            "password_hash_queue_depth",
            "Password hashes waiting for or running in the hashing pool.",
            namespace=NAMESPACE,
            multiprocess_mode="livesum",
            registry=r,
        )
        self.hash_wait = Histogram(
            "password_hash_wait_seconds",
            "Time a password hash or verification waited for a pool thread.",
            ["operation"],
            namespace=NAMESPACE,
            buckets=HASH_BUCKETS,
            registry=r,
        )
        self.hash_time = Histogram(
            "password_hash_seconds",
            "Time a password hash or verification ran (argon2id or an imported hash).",
            ["operation"],
            namespace=NAMESPACE,
            buckets=HASH_BUCKETS,
            registry=r,
        )
        # Label children cached per label tuple: .labels() validates and locks each call.
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[tuple[str, str], Any] = {}
        self._verifications: dict[str, Any] = {}
        self._logins: dict[str, Any] = {}
        self._refusals: dict[str, Any] = {}

    def observe_request(
        self, method: str, route: str, status: int, seconds: float, endpoint: str | None
    ) -> None:
        if method not in METHODS:
            method = "OTHER"
        key = (method, route, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.requests.labels(method, route, str(status))
        counter.inc()
        histogram = self._latency.get((method, route))
        if histogram is None:
            histogram = self._latency[(method, route)] = self.latency.labels(method, route)
        histogram.observe(seconds)
        if endpoint == "auth.login":
            self._child(self._logins, self.logins, LOGIN_OUTCOMES.get(status, "invalid")).inc()

    def login_refused(self, limit: str) -> None:
        self._child(self._refusals, self.login_refusals, limit).inc()

    def observe_verification(self, outcome: str) -> None:
        self._child(self._verifications, self.verifications, outcome).inc()

    @staticmethod
    def _child(cache: dict[str, Any], metric: Any, label: str) -> Any:
        child = cache.get(label)
        if child is None:
            child = cache[label] = metric.labels(label)
        return child

    # HashObserver (quart_app.security.passwords): called from the hashing threads too.
    def queue_depth(self, depth: int) -> None:
        self.hash_queue.set(depth)

    def hashed(self, operation: str, waited: float, ran: float) -> None:
        self.hash_wait.labels(operation).observe(waited)
        self.hash_time.labels(operation).observe(ran)

    def exposition(self) -> bytes:
        """The text a scrape gets: this process, or every worker in multiprocess mode."""
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))

    def process_stopped(self) -> None:
        """Drop this worker's live gauges from the shared directory (clean shutdown)."""
        directory = multiprocess_dir()
        if self.multiprocess and directory:
            multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


def token_matches(expected: str, authorization: str | None) -> bool:
    """Whether ``Authorization`` is ``Bearer <expected>`` (constant-time comparison)."""
    if not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), expected.encode()
    )


CONTENT_TYPE = CONTENT_TYPE_LATEST
