"""A tiny Quart app that answers before reading the body: a deterministic fixture.

Served by Hypercorn in tests/middleware/test_early_answer.py
(``hypercorn tests/helpers/early_app.py:app``).
``EARLY_APP_DRAIN=0`` serves it without ``DrainRequestBody``, to show the bug itself.
"""

from __future__ import annotations

import os

from quart import Quart, Response, jsonify, request

from quart_app.middleware.connection import DrainRequestBody
from quart_app.serving import http1

MAX_CONTENT_LENGTH = 1024

app = Quart(__name__)
app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH


@app.before_serving
async def http1_parser() -> None:
    # HTTP1_PARSER as quart_app reads it (quart_app/serving/worker_hooks.py).
    http1.install(os.environ.get("HTTP1_PARSER", "httptools"))


@app.get("/healthz")
async def healthz() -> Response:
    return jsonify(status="ok")


@app.put("/me/password")
async def change_password() -> tuple[Response, int]:
    # Like a jwt_required decorator: the header is checked before the body is awaited.
    if "Authorization" not in request.headers:
        return jsonify(msg="Missing Authorization Header"), 401
    data = await request.get_data()
    return jsonify(length=len(data)), 200


@app.post("/echo")
async def echo() -> tuple[Response, int]:
    data = await request.get_data()  # 413 when over MAX_CONTENT_LENGTH, before the body
    return jsonify(length=len(data)), 200


if os.environ.get("EARLY_APP_DRAIN", "1") != "0":
    app.asgi_app = DrainRequestBody(  # type: ignore[method-assign]
        app.asgi_app, max_body_size=MAX_CONTENT_LENGTH
    )
