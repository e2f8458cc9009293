"""Helpers for the operations tests: a real Flask-SQLAlchemy database, the CLI, live servers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner, Result

from quart_app.cli import main
from tests.helpers.support import FAST_HASHING, SECRET

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def legacy_sha256(password: str, salt: str = "Zb8fQ2xk") -> str:
    """What Werkzeug < 2.3 stored for ``generate_password_hash(pw, "sha256")`` (built by
    hand: Werkzeug 3 refuses the method)."""
    if not salt:
        return "sha256$$" + hashlib.sha256(password.encode()).hexdigest()
    return f"sha256${salt}$" + hmac.new(salt.encode(), password.encode(), "sha256").hexdigest()


def flask_database(path: Path, users: Sequence[tuple[int, str, str]]) -> str:
    """Create the Flask app's database with Flask-SQLAlchemy itself; returns its URL.

    ``users`` are (id, username, password hash) rows of the guide's ``User`` model.
    """
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    url = f"sqlite:///{path}"
    flask_app = Flask("flask_source")
    flask_app.config["SQLALCHEMY_DATABASE_URI"] = url
    db = SQLAlchemy(flask_app)

    class User(db.Model):  # type: ignore[name-defined,misc]
        id = db.Column(db.Integer, primary_key=True)
        username = db.Column(db.String(80), unique=True, nullable=False)
        password = db.Column(db.String(256), nullable=False)

    with flask_app.app_context():
        db.create_all()
        for user_id, username, password in users:
            db.session.add(User(id=user_id, username=username, password=password))
        db.session.commit()
        db.engine.dispose()
    assert User.__table__.name == "user"  # Flask-SQLAlchemy's name for the model
    return url


# A Fernet key for the tests' TOTP secrets (not a secret of any deployment).
MFA_KEY = "BO0_y5gnXpMVG-rzzX_uq89P-x9VqB8P5_PAnFSYI2I="


def cli_env(tmp_path: Path, **extra: Any) -> dict[str, str]:
    """The environment the CLI (or a server) reads: this test's database and instance."""
    env = {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        "JWT_SECRET_KEY": SECRET,
        # Given, like the JWT secret: a generated one would be announced on stderr.
        "MFA_ENCRYPTION_KEY": MFA_KEY,
        **{key: str(value) for key, value in FAST_HASHING.items()},
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


def run_cli(args: Sequence[str], env: Mapping[str, str], stdin: str | None = None) -> Result:
    """Invoke ``quart-app ARGS`` in-process (click's CliRunner)."""
    return CliRunner().invoke(main, list(args), env=dict(env), input=stdin)


async def cli(args: Sequence[str], env: Mapping[str, str], stdin: str | None = None) -> Result:
    """``run_cli`` from an async test: the command runs its own event loop, in a thread."""
    return await asyncio.to_thread(run_cli, args, env, stdin)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Hypercorn:
    """A Hypercorn process serving quart_app.asgi:app on a free loopback port."""

    def __init__(self, tmp_path: Path, env: Mapping[str, str], *extra_args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"hypercorn-{self.port}.log"
        self.env = {**os.environ, **env}
        self.args = [
            sys.executable,
            "-m",
            "hypercorn",
            "--config",
            str(ROOT / "hypercorn.toml"),
            "--bind",
            f"127.0.0.1:{self.port}",
            *extra_args,
            "quart_app.asgi:app",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hypercorn exited: {self.log()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"hypercorn did not start: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextlib.contextmanager
def hypercorn(tmp_path: Path, env: Mapping[str, str], *extra_args: str) -> Iterator[Hypercorn]:
    server = Hypercorn(tmp_path, env, *extra_args)
    try:
        server.start()
        yield server
    finally:
        server.stop()
