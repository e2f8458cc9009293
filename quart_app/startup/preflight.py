"""Settings checked before anything starts: every problem is one line that names the fix.

``create_app`` reads its settings through :func:`preflight`; a supervisor runs it once, in
the master, before it spawns workers, so a bad setting is said once and nothing starts.
Only what can be known without the network is checked here; a database that refuses the
URL is reported by the worker that tried it (``quart_app.startup.boot``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from ..jwt.config import settings_problems
from ..jwt.key_files import key_directory
from ..jwt.keys import ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS
from ..mail.config import mail_problems
from ..security.client_address import parse_proxies
from ..security.clients import parse_clients
from .settings import SECRET_FILE, SettingsError, load_settings, short_secret

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LOG_FORMATS = ("text", "json", "none")
HTTP1_PARSERS = ("httptools", "h11")

#: Settings that must be at least 1 (when numbers: the create_app mapping may hold
#: Flask-JWT-Extended's timedelta or False for the lifetimes).
POSITIVE = (
    "JWT_ACCESS_TOKEN_EXPIRES",
    "JWT_REFRESH_TOKEN_EXPIRES",
    "DATABASE_POOL_SIZE",
    "PASSWORD_HASH_THREADS",
    "MAX_CONTENT_LENGTH",
    "ARGON2_TIME_COST",
    "ARGON2_PARALLELISM",
    "RATELIMIT_AUTH_LIMIT",
    "RATELIMIT_AUTH_PERIOD",
    "WORKER_TIMEOUT",
    "PASSWORD_RESET_TTL",
    "EMAIL_VERIFY_TTL",
    "MAIL_SEND_TIMEOUT",
    "MAIL_RETRY_MAX_SECONDS",
    "SESSION_IDLE_TIMEOUT",
    "SESSION_MAX_AGE",
    "AUDIT_RETENTION_DAYS",
    "WS_RECEIVE_QUEUE",
    "WS_SEND_TIMEOUT",
)
NOT_NEGATIVE = (
    "DATABASE_MAX_OVERFLOW",
    "DATABASE_POOL_TIMEOUT",
    "DATABASE_CONNECT_TIMEOUT",
    "DATABASE_STATEMENT_TIMEOUT",
    "SQLITE_BUSY_TIMEOUT",
    "TRUSTED_PROXY_HOPS",
    "READINESS_TIMEOUT",
    "MAIL_POLL_INTERVAL",
    "SESSION_LIMIT",
    "REFRESH_REUSE_GRACE_SECONDS",
    "KEY_ACTIVATION_DELAY",
    "WS_MAX_SOCKETS_PER_ADDRESS",
    "WS_MAX_PENDING_SOCKETS",
    "JWT_VERIFIED_CACHE_SIZE",
)


def preflight(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Load and check the settings; :class:`SettingsError` names every unusable one."""
    problems: list[str] = []
    try:
        settings = load_settings(overrides, environ)
    except SettingsError as error:
        if error.partial is None:
            raise
        problems, settings = error.problems, error.partial
    problems += problems_of(settings, environ)
    if problems:
        raise SettingsError(*problems)
    return settings


def stale_metrics(environ: Mapping[str, str] | None = None) -> str | None:
    """What is wrong with a non-empty ``PROMETHEUS_MULTIPROC_DIR`` at a server's start, or
    None. Files left there by an earlier run would be summed into every scrape (counts of
    processes long gone). Checked by the supervisor before any worker starts (workers
    write their own files there, so it cannot be checked from a worker).
    """
    multiproc = (os.environ if environ is None else environ).get(MULTIPROC_ENV)
    if not multiproc or not Path(multiproc).is_dir():
        return None
    left = sorted(path.name for path in Path(multiproc).glob("*.db"))
    if not left:
        return None
    return (
        f"{MULTIPROC_ENV} {multiproc} holds {len(left)} file(s) of an earlier run"
        f" ({left[0]}, ...): empty it before starting (rm {multiproc}/*.db)"
    )


def problems_of(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per setting that cannot work (the values are already read)."""
    env = os.environ if environ is None else environ
    problems = [*_check_values(settings), *_check_secret(settings), *settings_problems(settings)]
    problems += mail_problems(settings)
    return problems + _check_paths(settings, env)


def _check_values(settings: Mapping[str, Any]) -> list[str]:
    problems = []
    algorithm = str(settings.get("JWT_ALGORITHM"))
    if algorithm not in HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS:
        known = ", ".join(sorted(HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS))
        problems.append(f"JWT_ALGORITHM {algorithm!r} is not supported: use one of {known}")
    log_format = str(settings.get("LOG_FORMAT") or "none").strip().lower()
    if log_format not in LOG_FORMATS:
        problems.append(f"LOG_FORMAT must be text, json or none, not {log_format!r}")
    parser = str(settings.get("HTTP1_PARSER") or "").strip().lower()
    if parser not in HTTP1_PARSERS:
        problems.append(f"HTTP1_PARSER must be httptools or h11, not {parser!r}")
    level = str(settings.get("LOG_LEVEL", "INFO")).strip().upper()
    if not isinstance(logging.getLevelName(level), int):
        problems.append(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {level!r}")
    try:
        parse_clients(settings.get("INTROSPECTION_CLIENTS"))
    except SettingsError as error:
        problems.append(str(error))
    try:
        parse_proxies(settings.get("TRUSTED_PROXIES"))
    except SettingsError as error:
        problems.append(str(error))
    if (
        settings.get("METRICS_ENABLED")
        and not settings.get("METRICS_TOKEN")
        and not settings.get("METRICS_PUBLIC")
    ):
        problems.append(
            "METRICS_ENABLED is true but METRICS_TOKEN is unset, which would publish"
            " /metrics to anyone: set METRICS_TOKEN (scrapers send 'Authorization: Bearer"
            " <token>'), or METRICS_PUBLIC=true if the port is reachable by scrapers only"
        )
    min_length = settings.get("PASSWORD_MIN_LENGTH")
    if isinstance(min_length, int) and not 8 <= min_length <= 1024:
        problems.append(f"PASSWORD_MIN_LENGTH must be from 8 to 1024, not {min_length}")
    grace = settings.get("REFRESH_REUSE_GRACE_SECONDS")
    if isinstance(grace, int | float) and grace > 300:
        problems.append(f"REFRESH_REUSE_GRACE_SECONDS must be at most 300, not {grace}")
    for names, least in ((POSITIVE, 1), (NOT_NEGATIVE, 0)):
        for name in names:
            value = settings.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < least:
                problems.append(f"{name} must be at least {least}, not {value}")
    return problems


def _check_secret(settings: Mapping[str, Any]) -> list[str]:
    secret = settings.get("JWT_SECRET_KEY")
    if not secret or not str(settings.get("JWT_ALGORITHM")).startswith("HS"):
        return []
    problem = short_secret(secret if isinstance(secret, bytes) else str(secret))
    return [] if problem is None else [problem]


def _needs_instance(settings: Mapping[str, Any]) -> bool:
    """Whether a secret or key still has to be generated into INSTANCE_PATH."""
    instance = Path(str(settings["INSTANCE_PATH"]))
    algorithm = str(settings.get("JWT_ALGORITHM"))
    if algorithm.startswith("HS"):
        return not settings.get("JWT_SECRET_KEY") and not (instance / SECRET_FILE).exists()
    keys = ("JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "JWT_PRIVATE_KEY_FILE", "JWT_PUBLIC_KEY_FILE")
    if any(settings.get(name) for name in keys):
        return False
    return not any(key_directory(instance).glob(f"key-*-{algorithm}.pem"))


def _unwritable(directory: Path) -> str | None:
    """Why files cannot be created in ``directory`` (made if missing), or None."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Permission bits do not stop root; a read-only file system does: try it.
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        return error.strerror or type(error).__name__
    return None


def _check_paths(settings: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    problems = []
    instance = Path(str(settings["INSTANCE_PATH"]))
    url = make_url(str(settings["DATABASE_URL"]))
    database = url.database if url.get_backend_name() == "sqlite" else None
    # Only a database still to be created needs a writable folder now: an existing file on
    # a filesystem gone read-only is a fault the workers answer 503 for until it heals.
    on_disk = database is not None and database != ":memory:" and not database.startswith("file:")
    if database is not None and on_disk and not Path(database).exists():
        folder = Path(database).resolve().parent
        if (why := _unwritable(folder)) is not None:
            where = "INSTANCE_PATH" if folder == instance else "DATABASE_URL"
            problems.append(
                f"{where}: cannot write the SQLite database in {folder} ({why}):"
                f" point {where} at a writable directory"
            )
    why = _unwritable(instance) if not problems and _needs_instance(settings) else None
    if why is not None:
        problems.append(
            f"INSTANCE_PATH: cannot write the generated secret or keys in {instance}"
            f" ({why}): point INSTANCE_PATH at a writable directory, or set"
            " JWT_SECRET_KEY (HS*) or JWT_PRIVATE_KEY/JWT_PUBLIC_KEY"
        )
    for name in ("JWT_PRIVATE_KEY_FILE", "JWT_PUBLIC_KEY_FILE"):
        value = settings.get(name)
        if value and not Path(str(value)).is_file():
            problems.append(
                f"{name} {value}: no such file: point {name} at the PEM file, or unset it"
            )
        elif value and not os.access(str(value), os.R_OK):
            problems.append(f"{name} {value}: not readable by this user")
    multiproc = env.get(MULTIPROC_ENV)
    if multiproc:
        folder = Path(multiproc)
        if not folder.is_dir():
            problems.append(
                f"{MULTIPROC_ENV} {multiproc} is not a directory: create it empty before"
                f" starting (mkdir -p {multiproc}), or unset it for per-process metrics"
            )
        elif (why := _unwritable(folder)) is not None:
            problems.append(f"{MULTIPROC_ENV} {multiproc} is not writable ({why})")
    return problems
