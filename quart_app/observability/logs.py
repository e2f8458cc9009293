"""Structured logs: text or JSON lines, a request id on every line, nothing secret.

``configure_logging`` puts one handler on the ``quart_app`` logger (Hypercorn keeps its
own ``hypercorn.error``/``hypercorn.access`` loggers). Every record logged while a request
is handled carries that request's id: the one the client sent in ``X-Request-ID`` when it
is a plain token (letters, digits, ``._:-``, at most 128), else a fresh one; the response
echoes it. The per-request line (``quart_app.access``) holds method, path, route, status,
duration, client address and user id -- never headers, the query string or the body, so
tokens and passwords cannot reach the log.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO

import orjson

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
#: The id of the request being handled in this task (None outside requests).
request_id_var: ContextVar[str | None] = ContextVar("quart_app_request_id", default=None)

ACCESS_LOGGER = "quart_app.access"
#: LogRecord attributes that are not "extra" fields.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}
_MARK = "_quart_app_handler"


class _Ids:
    """New request ids: a random prefix per process, then a counter (no syscall each)."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count(1)
        self.pid = os.getpid()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_ids = _Ids()


def request_id_from(header_value: str | None) -> str:
    """The client's request id when it is safe to log and echo, else a new one (32 hex)."""
    if header_value and _SAFE_REQUEST_ID.fullmatch(header_value):
        return header_value
    return _ids.next()


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (or "-") to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds; the seconds part is formatted once a second."""
    whole = int(created)
    if _second[0] != whole:
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{int((created - whole) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, pid, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
            "pid": record.process,
        }
        fields = record.__dict__.get("fields")
        if fields is not None:
            data.update(fields)
        else:
            for key, value in record.__dict__.items():
                if key not in _STANDARD and not key.startswith("_"):
                    data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def _asctime(created: float) -> str:
    """logging's default ``asctime`` (local time, ``,mmm``), formatted once a second."""
    whole = int(created)
    if _local_second[0] != whole:
        _local_second[:] = [whole, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(whole))]
    return f"{_local_second[1]},{int((created - whole) * 1000):03d}"


_local_second: list[Any] = [None, ""]


class TextFormatter(logging.Formatter):
    """``time level logger [request id] message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _asctime(record.created)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        line = super().format(record)
        fields = record.__dict__.get("fields")
        if fields is not None:  # a request line: the message has method, path, status
            items = [(k, fields[k]) for k in ("route", "client", "user_id") if k in fields]
        else:
            items = [
                (key, value)
                for key, value in record.__dict__.items()
                if key not in _STANDARD and not key.startswith("_")
            ]
        extras = [f"{key}={value}" for key, value in items]
        return f"{line} {' '.join(extras)}" if extras else line


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(log_format: str, level: str) -> None:
    """Send ``quart_app.*`` records to stderr as ``log_format`` ("text", "json" or "none").

    Logging is per process, so the last app created decides; calling it again replaces
    the handler it installed before rather than adding a second one.
    """
    log_format = log_format.strip().lower()
    if log_format not in {"text", "json", "none"}:
        raise ValueError(f"LOG_FORMAT must be text, json or none, not {log_format!r}")
    logger = logging.getLogger("quart_app")
    for handler in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(handler)
    if log_format == "none":
        return
    resolved = logging.getLevelName(level.strip().upper())
    if not isinstance(resolved, int):
        raise ValueError(f"LOG_LEVEL must be a logging level name, not {level!r}")
    handler = _Stderr()
    setattr(handler, _MARK, True)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(resolved)


def _sole_handler(logger: logging.Logger) -> logging.Handler | None:
    """Our handler when it is the only place ``logger``'s records can go, else None."""
    parent = logger.parent
    if logger.handlers or logger.filters or not logger.propagate or parent is None:
        return None
    handlers = parent.handlers
    if (
        len(handlers) != 1
        or not getattr(handlers[0], _MARK, False)
        or parent.filters
        or (parent.propagate and logging.root.handlers)
        or handlers[0].level > logging.INFO
    ):
        return None
    return handlers[0]


def log_request(
    logger: logging.Logger,
    *,
    method: str,
    path: str,
    route: str,
    status: int,
    duration: float,
    client: str | None,
    user_id: str | None,
) -> None:
    """Emit the one line of a request (see the module docstring for what is left out).

    When our handler is the only one the line can reach (the production set-up), the
    line is formatted and written directly -- the same text the handler would write, at a
    fraction of the cost of a LogRecord passed through the logging machinery. Otherwise
    (other handlers, as under a test runner) it goes through ``logger.handle``.
    """
    fields = {
        "method": method,
        "path": path,
        "route": route,
        "status": status,
        "duration_ms": round(duration * 1000, 3),
        "client": client,
        "user_id": user_id,
    }
    handler = _sole_handler(logger)
    if handler is not None:
        now = time.time()
        request_id = request_id_var.get() or "-"
        message = f"{method} {path} {status} {duration * 1000:.2f}ms"
        if isinstance(handler.formatter, JsonFormatter):
            data = {
                "ts": _timestamp(now),
                "level": "info",
                "logger": logger.name,
                "msg": message,
                "request_id": request_id,
                "pid": _ids.pid,
                **fields,
            }
            line = orjson.dumps(data, default=str).decode()
        else:
            line = (
                f"{_asctime(now)} INFO {logger.name} [{request_id}] {message}"
                f" route={route} client={client} user_id={user_id}"
            )
        handler.acquire()
        try:
            stream = sys.stderr
            stream.write(line + "\n")
            stream.flush()
        finally:
            handler.release()
        return
    record = logging.LogRecord(
        logger.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %s %.2fms",
        (method, path, status, duration * 1000),
        None,
    )
    record.fields = fields
    logger.handle(record)
