"""The Flask app this service ports, grown to our contract's JSON: the baseline to beat.

Flask + Flask-JWT-Extended + Flask-SQLAlchemy + werkzeug's default password hash (scrypt),
as the classic Flask-JWT-Extended guides build it, with the routes and JSON of the
service's contract (the README's route table) for /register, /login, /token/refresh and
/protected, ``/auth/verify`` for the gateway scenario, plus a no-auth ``GET /noop`` and
``GET /healthz``. Served by gunicorn with 2 sync
workers (``gunicorn_conf.py``)::

    gunicorn -c benchmarks/baseline/gunicorn_conf.py 'benchmarks.baseline.app:create_app()'

Configuration from the environment: ``BASELINE_DATABASE_URL`` (SQLAlchemy URL),
``JWT_SECRET_KEY``, ``JWT_ACCESS_TOKEN_EXPIRES`` (seconds). A fixture, so it keeps the
tutorials' shape (a module-level ``db``) rather than our package's conventions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    get_jwt_identity,
)
from flask_jwt_extended import jwt_required as _jwt_required
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

View = TypeVar("View", bound=Callable[..., ResponseReturnValue])


def jwt_required(**options: Any) -> Callable[[View], View]:
    """Flask-JWT-Extended's ``jwt_required``, as typed as the views it wraps (FJE leaves
    its decorator unannotated)."""
    decorate: Callable[[View], View] = _jwt_required(**options)
    return decorate


USERNAME = re.compile(r"[A-Za-z0-9_.\-]{3,64}")

db = SQLAlchemy()


class User(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(db.String(64), unique=True)
    username_key: Mapped[str] = mapped_column(db.String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(db.String(256))
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))


def _credentials() -> tuple[str, str] | None:
    """Username and password from a JSON body or HTTP Basic, or None when malformed."""
    if request.authorization is not None and request.authorization.type == "basic":
        auth = request.authorization
        return (auth.username or "", auth.password or "")
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or set(data) != {"username", "password"}:
        return None
    username, password = data["username"], data["password"]
    if not isinstance(username, str) or not isinstance(password, str):
        return None
    return username, password


def _token_pair(user_id: str, username: str, *, fresh: bool, app: Flask) -> dict[str, Any]:
    claims = {"username": username}
    expires: timedelta = app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    return {
        "access_token": create_access_token(user_id, fresh=fresh, additional_claims=claims),
        "refresh_token": create_refresh_token(user_id, additional_claims=claims),
        "token_type": "Bearer",
        "expires_in": int(expires.total_seconds()),
    }


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the baseline app; ``config`` overrides the environment."""
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ.get("BASELINE_DATABASE_URL", "sqlite:///baseline.db"),
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 30}},
        JWT_SECRET_KEY=os.environ.get("JWT_SECRET_KEY", "baseline-dev-secret-" + "x" * 32),
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(
            seconds=int(os.environ.get("JWT_ACCESS_TOKEN_EXPIRES", "900"))
        ),
    )
    app.config.update(config or {})
    db.init_app(app)
    JWTManager(app)

    @app.post("/register")
    def register() -> ResponseReturnValue:
        creds = _credentials() if request.authorization is None else None
        if creds is None:
            return jsonify(msg="Invalid request body"), 400
        username, password = creds
        if not USERNAME.fullmatch(username) or not 8 <= len(password) <= 1024:
            return jsonify(msg="Invalid username or password format"), 400
        user = User(
            username=username,
            username_key=username.lower(),
            password_hash=generate_password_hash(password),
        )
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return jsonify(msg="Username already exists"), 409
        return jsonify(id=user.id, username=user.username), 201

    @app.post("/login")
    def login() -> ResponseReturnValue:
        creds = _credentials()
        if creds is None:
            return jsonify(msg="Invalid request body"), 400
        username, password = creds
        user = db.session.execute(
            db.select(User).where(User.username_key == func.lower(username))
        ).scalar_one_or_none()
        if user is None or not check_password_hash(user.password_hash, password):
            return jsonify(msg="Bad username or password"), 401
        return jsonify(_token_pair(str(user.id), user.username, fresh=True, app=app))

    @app.post("/token/refresh")
    @jwt_required(refresh=True)
    def refresh() -> ResponseReturnValue:
        username = get_jwt()["username"]
        return jsonify(_token_pair(get_jwt_identity(), username, fresh=False, app=app))

    @app.get("/protected")
    @jwt_required()
    def protected() -> ResponseReturnValue:
        return jsonify(logged_in_as=get_jwt()["username"])

    # The gateway scenario's verifier (nginx auth_request), as the Flask app would write it.
    @app.route("/auth/verify", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
    @jwt_required()
    def verify() -> ResponseReturnValue:
        claims = get_jwt()
        headers = {
            "X-Auth-Subject": str(claims["sub"]),
            "X-Auth-Username": str(claims.get("username", "")),
            "X-Auth-Token-Id": str(claims["jti"]),
            "X-Auth-Expires": str(int(claims["exp"])),
        }
        return "", 200, headers

    @app.get("/noop")
    def noop() -> ResponseReturnValue:
        return jsonify(status="ok")

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        db.session.execute(text("SELECT 1"))
        return jsonify(status="ok")

    return app


def create_tables() -> None:
    """Create the schema once, before the workers fork (gunicorn's ``on_starting``)."""
    app = create_app()
    with app.app_context():
        db.create_all()
        db.engine.dispose()
