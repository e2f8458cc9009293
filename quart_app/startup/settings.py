"""The one place that reads the environment and holds the configuration defaults.

Every setting can come from three places, later ones winning: the defaults below, an
environment variable of the same name, and the mapping passed to ``create_app``. Values
read from the environment are converted to the type of their default.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

log = logging.getLogger(__name__)

#: Exit status of a server process that cannot start (gunicorn's WORKER_BOOT_ERROR): a
#: supervisor seeing it stops, instead of restarting a worker that would fail again.
BOOT_ERROR_EXIT = 3

MIN_SECRET_BYTES = 32
#: Key of the lines ``load_settings`` has to say (how it read a value), logged by the app
#: once logging is configured.
NOTES_KEY = "SETTINGS_NOTES"
SECRET_FILE = "jwt-secret.key"
#: The workers' revocation snapshot in INSTANCE_PATH (quart_app/jwt/revocation.py).
SNAPSHOT_FILE = "revocations.snapshot.json"

#: name -> default. ``None`` defaults are strings when set.
DEFAULTS: dict[str, Any] = {
    # Where the SQLite database, the generated secret and generated keys live.
    "INSTANCE_PATH": "instance",
    # SQLAlchemy async URL; default is a SQLite file in the instance directory.
    "DATABASE_URL": None,
    "DATABASE_POOL_SIZE": 5,
    "DATABASE_MAX_OVERFLOW": 10,
    "DATABASE_POOL_TIMEOUT": 10.0,
    # Seconds one database operation of a request may take in all (waiting for a pooled
    # connection, connecting, each statement, commit); past it the request answers 503
    # with Retry-After. It also caps the pool, connect, statement and SQLite busy
    # timeouts (0: no overall bound, each of those alone).
    "DATABASE_OPERATION_TIMEOUT": 5.0,
    # After an operation times out, a worker answers 503 at once without calling the
    # database and tries SELECT 1 this often until it answers (a hung database costs one
    # timeout per worker, not one per request). 0 turns the breaker off.
    "DATABASE_BREAKER_COOLDOWN": 1.0,
    # PostgreSQL: reconnect pooled connections older than this (seconds; 0 = never), give
    # up connecting after DATABASE_CONNECT_TIMEOUT, cancel statements running longer
    # than DATABASE_STATEMENT_TIMEOUT (0 = no limit).
    "DATABASE_POOL_RECYCLE": 1800.0,
    "DATABASE_CONNECT_TIMEOUT": 10.0,
    "DATABASE_STATEMENT_TIMEOUT": 30.0,
    # Seconds SQLite waits for a lock held by another worker before failing.
    "SQLITE_BUSY_TIMEOUT": 10.0,
    # SQLite's zero-config path: an empty database file gets the schema at start-up.
    # Other engines never change schema at start-up: run `quart-app db upgrade` first.
    "DATABASE_CREATE_TABLES": True,
    # Redis for revocation fan-out and throttling across hosts; in-process when unset.
    "REDIS_URL": None,
    # Namespace of our Redis keys and of the revocation channel (several deployments,
    # or test runs, can share one Redis).
    "REDIS_PREFIX": "quart_app:",
    # After a Redis timeout or connection error, a worker stops calling Redis (fallbacks:
    # the SQL poll, per-worker throttling) and pings it this often until it answers.
    # 0 turns the breaker off: every request tries Redis and waits out its timeouts.
    "REDIS_BREAKER_COOLDOWN": 2.0,
    # Tokens.
    "JWT_SECRET_KEY": None,
    "JWT_ALGORITHM": "HS256",
    # Seconds a token's iat/nbf may be in the future: hosts' clocks differ a little, and a
    # token issued by a host slightly ahead must work on the others. exp stays exact
    # (JWT_DECODE_LEEWAY, 0 by default, applies to it and to iat/nbf alike).
    "JWT_CLOCK_SKEW_SECONDS": 30.0,
    "JWT_ACCESS_TOKEN_EXPIRES": 900,
    "JWT_REFRESH_TOKEN_EXPIRES": 30 * 24 * 3600,
    # Tokens each worker remembers as verified (a token seen before skips its signature
    # check until its exp): about 3 KiB each, so 10,000 are 25-30 MiB per worker. 0: off.
    "JWT_VERIFIED_CACHE_SIZE": 10_000,
    # Claims every token must carry (RFC 8725), refused with 422 'Token is missing the "exp"
    # claim' otherwise; comma-separated in the environment. The JWT extension alone, like
    # Flask-JWT-Extended, requires only the identity claim.
    "JWT_REQUIRED_CLAIMS": ("exp", "jti", "type", "sub"),
    # Where protected routes and /ws look for the access token, comma-separated: headers,
    # cookies, query_string, json. A WebSocket takes a cookie only from an Origin listed
    # in CORS_ALLOWED_ORIGINS.
    "JWT_TOKEN_LOCATION": ("headers",),
    # RS*/PS*/ES*/EdDSA keys: PEM text, or PEM files; when none is given a key pair is
    # generated once into INSTANCE_PATH/jwt-keys (and rotated there).
    "JWT_PRIVATE_KEY": None,
    "JWT_PUBLIC_KEY": None,
    "JWT_PRIVATE_KEY_FILE": None,
    "JWT_PUBLIC_KEY_FILE": None,
    # Sessions (one per login): ended after this many seconds without a refresh, and this
    # many seconds after the login whatever the activity (no refresh token outlives it).
    "SESSION_IDLE_TIMEOUT": 7 * 24 * 3600,
    "SESSION_MAX_AGE": 30 * 24 * 3600,
    # Live sessions per user: a login beyond it ends the least recently used one. 0: none.
    "SESSION_LIMIT": 50,
    # Seconds the refresh token rotated out last may be presented again (two tabs
    # refreshing at once) and get a pair of the same session. 0: off (any reuse ends it).
    "REFRESH_REUSE_GRACE_SECONDS": 0.0,
    # Days security events are kept (quart-app prune deletes older ones).
    "AUDIT_RETENTION_DAYS": 90,
    # Passwords (register, change) must have at least this many characters.
    "PASSWORD_MIN_LENGTH": 8,
    # Seconds between `quart-app rotate-keys` publishing a new key (in the JWKS at once)
    # and the key signing: at least the JWKS cache lifetime resource servers are told
    # (max-age 60 s) and the extension's own cache (JWT_JWKS_CACHE_SECONDS, 300 s), so
    # every one of them has the key before the first token it signs. `--now` skips it.
    "KEY_ACTIVATION_DELAY": 300.0,
    # How often each worker pulls new revocations from the shared store (seconds).
    "REVOCATION_SYNC_INTERVAL": 1.0,
    # A worker that starts while the database does not answer takes the revocations from
    # the snapshot its siblings keep in INSTANCE_PATH when they held the store's state at
    # most this many seconds ago; otherwise it refuses tokens (503) until the database
    # answers. 0: never (always refuse).
    "REVOCATION_SNAPSHOT_MAX_AGE": 300.0,
    # Request bodies larger than this get 413.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # Password hashing (argon2id). OWASP's minimum: m=19 MiB, t=2, p=1.
    "ARGON2_TIME_COST": 2,
    "ARGON2_MEMORY_COST": 19 * 1024,
    "ARGON2_PARALLELISM": 1,
    "PASSWORD_HASH_THREADS": os.cpu_count() or 2,
    # Hashing threads run this much nicer than the event loop (Linux, 0..19), so a storm of
    # logins takes the CPU the loop leaves idle instead of delaying token checks. When
    # token checks saturate the CPU, logins then get little of it: 0 shares it evenly.
    "PASSWORD_HASH_NICE": 19,
    # Throttling per client address on /login, /register and /token/refresh.
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_AUTH_LIMIT": 100,
    "RATELIMIT_AUTH_PERIOD": 60,
    # Number of trusted proxies in front of the service (X-Forwarded-For hops).
    "TRUSTED_PROXY_HOPS": 0,
    # Peers whose X-Forwarded-For is believed (with TRUSTED_PROXY_HOPS > 0): addresses or
    # CIDR networks, comma-separated. Unset: loopback only (a proxy on the same host).
    "TRUSTED_PROXIES": ("127.0.0.0/8", "::1"),
    # WebSockets (quart_app/serving/wsbounds.py), per worker: sockets open at once from one
    # client address (an IPv6 /64 counts as one), sockets accepted and still waiting for
    # their first-message auth (0: no cap, for either), received messages queued for the
    # view before the server stops reading, and seconds a reply may take to be taken by
    # the client before the socket is closed with 1008.
    "WS_MAX_SOCKETS_PER_ADDRESS": 50,
    "WS_MAX_PENDING_SOCKETS": 256,
    "WS_RECEIVE_QUEUE": 8,
    "WS_SEND_TIMEOUT": 10.0,
    # permessage-deflate (RFC 7692) on sockets whose client offers it. Off: each socket
    # with it keeps about 22 KiB of zlib state for its whole life, twice its size without
    # it; on, inflation stays bounded by the message size limit.
    "WEBSOCKET_COMPRESSION": False,
    # Browser origins allowed to call the API cross-origin: comma-separated
    # "https://app.example.com" entries, or "*". Empty: CORS off, no Access-Control-* headers.
    "CORS_ALLOWED_ORIGINS": "",
    # Per-account brute-force lockout: failures in a row before back-off starts.
    "LOGIN_LOCKOUT_THRESHOLD": 10,
    "LOGIN_LOCKOUT_BASE_SECONDS": 1.0,
    "LOGIN_LOCKOUT_MAX_SECONDS": 900.0,
    # A count (per account, per account and network) with no failure for this long
    # starts again from one.
    "LOGIN_LOCKOUT_WINDOW_SECONDS": 24 * 3600.0,
    # A network that logged in successfully is exempt from the account lock (not from its
    # own) for this long, so an attacker elsewhere cannot lock the owner out. 0: off.
    "LOGIN_TRUSTED_SOURCE_SECONDS": 30 * 24 * 3600.0,
    # Per network across accounts (an IPv4 address, an IPv6 /64): this many failed password
    # checks within the window (counted from the first) block its logins for
    # LOGIN_SOURCE_BLOCK_SECONDS. A success does not reset it. 0: off.
    "LOGIN_SOURCE_BLOCK_THRESHOLD": 100,
    "LOGIN_SOURCE_BLOCK_WINDOW_SECONDS": 600.0,
    "LOGIN_SOURCE_BLOCK_SECONDS": 600.0,
    # Logs: "text" or "json" lines on stderr; "none" leaves logging to the host process.
    "LOG_FORMAT": "text",
    "LOG_LEVEL": "INFO",
    # One line per request (method, route, status, duration, request id) on quart_app.access.
    "ACCESS_LOG": True,
    # GET /metrics in Prometheus format: off unless enabled; with a token it needs
    # "Authorization: Bearer <METRICS_TOKEN>". With several workers set the environment
    # variable PROMETHEUS_MULTIPROC_DIR (an empty directory) so every scrape sees them all.
    "METRICS_ENABLED": False,
    "METRICS_TOKEN": None,
    # Without METRICS_TOKEN, /metrics (user ids aside, it tells login and failure rates)
    # is served only when this says so: METRICS_ENABLED alone refuses to start.
    "METRICS_PUBLIC": False,
    # Seconds /readyz waits for the database (and Redis) before answering 503.
    "READINESS_TIMEOUT": 2.0,
    # Clients allowed to use POST /oauth/introspect: "id:secret,id:secret"; a secret may
    # be an argon2 or Werkzeug hash of it (quart-app hash-secret). Unset: the endpoint is off.
    "INTROSPECTION_CLIENTS": None,
    # The service's public base URL (https://auth.example.com): the issuer and the URLs of
    # the OAuth metadata, and what DPoP proofs' htu are compared with. Unset: JWT_ENCODE_ISSUER
    # when it is a URL, else the request's Host (answered with Vary: Host and no-store).
    "PUBLIC_URL": None,
    # DPoP (RFC 9449): seconds a proof's iat may lie in the past (JWT_CLOCK_SKEW_SECONDS is
    # added); whether every proof must carry a server nonce (DPoP-Nonce), and the key those
    # nonces are made with (shared by every host; unset: derived from the JWT secret file).
    "DPOP_PROOF_MAX_AGE": 60.0,
    "DPOP_NONCE_REQUIRED": False,
    "DPOP_NONCE_SECRET": None,
    # Client secrets hashed (argon2 INTROSPECTION_CLIENTS) at once per worker, in a queue of
    # their own before the password threads: a flood of wrong secrets cannot starve /login.
    "CLIENT_SECRET_HASH_CONCURRENCY": 1,
    # Answer claims-only routes (GET /protected, /auth/verify) for already-verified tokens
    # below Quart (quart_app/jwt/claims_routes.py).
    "FAST_PATH": True,
    # Under Hypercorn's uvloop worker, accept every queued connection per wake-up instead
    # of libuv's one per loop iteration (quart_app/serving/acceptor.py).
    "DRAIN_ACCEPT_QUEUE": True,
    # After start-up, freeze every object then alive out of the garbage collector's scans
    # (gc.freeze), so a full collection no longer stalls a worker.
    "GC_FREEZE": True,
    # python -m quart_app.serving kills and replaces a worker whose event loop has not run
    # for this many seconds (a request stuck in blocking code), like gunicorn's --timeout.
    "WORKER_TIMEOUT": 30.0,
    # python -m quart_app.serving forks workers from a process that has imported the app's
    # modules already (multiprocessing's forkserver), so a replacement serves in well under
    # a second instead of importing everything anew; false: a new interpreter each.
    "WORKER_PRELOAD": True,
    # python -m quart_app.serving steers new connections away from a worker slot that does
    # not serve (its worker died, its replacement is starting) with a classic BPF program
    # on the SO_REUSEPORT group; false: they queue on that slot's socket until it serves.
    "REUSEPORT_STEERING": True,
    # Sent on every response served over TLS (HSTS, RFC 6797); empty: not sent.
    "STRICT_TRANSPORT_SECURITY": "max-age=31536000",
    # HTTP/2 without TLS (h2c: Upgrade or prior knowledge), for a trusted proxy hop only.
    "HTTP2_CLEARTEXT": False,
    # Hypercorn's HTTP/1.1 parser: httptools (llhttp, in C; quart_app/serving/http1.py) or
    # h11 (Hypercorn's own, pure Python).
    "HTTP1_PARSER": "httptools",
    # Mail (quart_app/mail): smtp://user:pass@host:587 (STARTTLS) or smtps://host:465
    # (TLS). Unset: every mail is written as an .eml file into INSTANCE_PATH/outbox.
    "SMTP_URL": None,
    # PEM file of the CA(s) that sign the SMTP server's certificate (an internal CA);
    # unset: the system's trusted CAs.
    "SMTP_CA_FILE": None,
    "MAIL_FROM": "quart_app <no-reply@localhost>",
    # A directory of templates that replace the built-in ones of the same name.
    "MAIL_TEMPLATES_DIR": None,
    # Links mailed to users; {token} is replaced. Unset: the mail shows the token itself.
    "PASSWORD_RESET_URL": None,
    "EMAIL_VERIFY_URL": None,
    # Seconds a reset token lives, and a verification token.
    "PASSWORD_RESET_TTL": 30 * 60,
    "EMAIL_VERIFY_TTL": 24 * 3600,
    # Mail the user when they sign in from a client (browser, device) not seen before.
    "NOTIFY_NEW_SIGNIN": False,
    # The sender: how often it looks for mail queued by other workers (seconds), the
    # longest wait between two attempts of one mail, and how long one SMTP exchange may take.
    "MAIL_POLL_INTERVAL": 2.0,
    "MAIL_RETRY_MAX_SECONDS": 3600.0,
    "MAIL_SEND_TIMEOUT": 30.0,
    # Second factors (docs/mfa.md). Fernet keys, comma-separated, that encrypt TOTP secrets
    # at rest: the first encrypts, all decrypt (rotation). Unset: one is generated into
    # INSTANCE_PATH (0600); several hosts must share one.
    "MFA_ENCRYPTION_KEY": None,
    # WebAuthn relying party: the domain passkeys are bound to, the name authenticators
    # show, and the origins (scheme://host[:port], comma-separated) allowed to use them
    # (empty: the request's own origin when its host is WEBAUTHN_RP_ID or under it).
    "WEBAUTHN_RP_ID": "localhost",
    "WEBAUTHN_RP_NAME": "quart_app",
    "WEBAUTHN_ORIGINS": (),
}


class SettingsError(ValueError):
    """A setting that cannot work: one line per problem, naming the setting and the fix."""

    def __init__(self, *problems: str, partial: dict[str, Any] | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)
        #: What could be read, the defaults standing in for the bad values (so that the
        #: remaining checks can still run and report everything at once).
        self.partial = partial


def _convert(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, tuple):
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name} must be true or false, not {raw!r}")
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        kind = type(default).__name__
        raise SettingsError(f"{name} must be a number ({kind}), not {raw!r}") from None
    return raw


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Merge defaults, environment and ``overrides`` into one configuration mapping.

    Every unusable value is reported at once: :class:`SettingsError` has one line each.
    """
    env = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    problems: list[str] = []
    notes: list[str] = []
    for name, default in DEFAULTS.items():
        if name in env and env[name] != "":
            try:
                settings[name] = _convert(name, env[name], default)
            except SettingsError as error:
                problems += error.problems
    if overrides:
        settings.update(overrides)
    instance = Path(settings["INSTANCE_PATH"]).resolve()
    settings["INSTANCE_PATH"] = str(instance)
    if not settings["DATABASE_URL"]:
        settings["DATABASE_URL"] = f"sqlite+aiosqlite:///{instance / 'app.db'}"
    else:
        try:
            settings["DATABASE_URL"] = async_database_url(str(settings["DATABASE_URL"]), notes)
        except SettingsError as error:
            problems += error.problems
            settings["DATABASE_URL"] = f"sqlite+aiosqlite:///{instance / 'app.db'}"
    settings[NOTES_KEY] = notes
    if problems:
        raise SettingsError(*problems, partial=settings)
    return settings


# DATABASE_URL as people write it: ``postgres://`` (Heroku, Render, ``psql``),
# ``postgresql://`` and ``sqlite:///`` are read by SQLAlchemy as the synchronous psycopg2
# and pysqlite drivers, which an asyncio server cannot use. They are mapped to asyncpg and
# aiosqlite, saying so in the log; anything else that is not an async driver is refused
# with the forms that work.

#: Bare schemes and the async driver they are read as.
ASYNC_DRIVERS = {"postgres": "postgresql+asyncpg", "postgresql": "postgresql+asyncpg"}
ASYNC_DRIVERS["sqlite"] = "sqlite+aiosqlite"

SUPPORTED = (
    "sqlite:///relative/app.db or sqlite:////absolute/app.db (aiosqlite),"
    " postgresql://user:password@host:5432/dbname (asyncpg)"
)


def _shown(url: URL | str) -> str:
    return url.render_as_string(hide_password=True) if isinstance(url, URL) else url


def async_database_url(raw: str, notes: list[str] | None = None) -> str:
    """The async SQLAlchemy URL for ``raw`` (``DATABASE_URL`` as people write it);
    :class:`SettingsError` if there is none.

    A mapped spelling appends a line to ``notes``, for the log once logging is set up.
    """
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise SettingsError(
            f"DATABASE_URL {raw!r} is not a database URL: use {SUPPORTED}"
        ) from None
    scheme = url.drivername
    if scheme in ASYNC_DRIVERS:
        mapped = url.set(drivername=ASYNC_DRIVERS[scheme])
        if notes is not None:
            notes.append(f"DATABASE_URL {_shown(url)} is read as {_shown(mapped)}")
        url = mapped
    try:
        dialect = url.get_dialect()
    except (NoSuchModuleError, ImportError) as error:
        raise SettingsError(
            f"DATABASE_URL scheme {scheme!r} is not supported ({error}): use {SUPPORTED}"
        ) from None
    if not getattr(dialect, "is_async", False):
        raise SettingsError(
            f"DATABASE_URL driver {scheme!r} is synchronous and cannot serve an asyncio app:"
            f" use {SUPPORTED}"
        )
    return url.render_as_string(hide_password=False)


def short_secret(secret: str | bytes) -> str | None:
    """The problem with a configured HMAC secret that is too short, or None."""
    size = len(secret if isinstance(secret, bytes) else secret.encode())
    if size >= MIN_SECRET_BYTES:
        return None
    return (
        f"JWT_SECRET_KEY is {size} bytes, HMAC needs at least {MIN_SECRET_BYTES}"
        " (RFC 7518 section 3.2): unset it to have one generated into INSTANCE_PATH,"
        " or set one made by `python3 -c 'import secrets; print(secrets.token_hex(32))'`"
    )


def generated_file(
    instance: Path, name: str, make: Callable[[], bytes], what: str, logger: logging.Logger
) -> Path:
    """The path of ``name`` in ``instance``, written once with ``make()`` if missing.

    The content is written to a temporary file with mode 0600 and published with
    ``os.link``, which fails if the file exists: concurrent workers starting together all
    end up reading the one file that won, and restarts keep it. A file readable by group
    or others is kept but warned about on ``logger``.
    """
    instance.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = instance / name
    if not path.exists():
        tmp = instance / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, make())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
            logger.info("generated a new %s in %s", what, path)
        except FileExistsError:
            pass  # another worker won the race; use its file
        finally:
            tmp.unlink()
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning("%s is readable by group or others (mode %o); chmod 600 it", path, mode)
    return path


def resolve_secret(settings: dict[str, Any]) -> str:
    """Return the HMAC secret: configured, or generated once into the instance directory.

    A generated secret is written once by ``generated_file`` (mode 0600, first writer
    wins): concurrent workers starting together all read the one secret that won, and
    restarts keep it.
    """
    configured = settings.get("JWT_SECRET_KEY")
    if configured:
        secret = configured.decode() if isinstance(configured, bytes) else str(configured)
        if (problem := short_secret(secret)) is not None:
            raise SettingsError(problem)
        return secret
    path = generated_file(
        Path(settings["INSTANCE_PATH"]),
        SECRET_FILE,
        lambda: secrets.token_hex(64).encode(),
        "JWT secret",
        log,
    )
    secret = path.read_text().strip()
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"INSTANCE_PATH: {path} holds a secret shorter than {MIN_SECRET_BYTES} bytes:"
            " delete the file to have a new one generated (every token issued dies)"
        )
    return secret
