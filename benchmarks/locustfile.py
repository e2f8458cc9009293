"""Locust users for quart_app (and the Flask baseline, which shares the auth routes).

Run from the repository root against a running service::

    locust -f benchmarks --headless -u 50 -r 50 -t 20s --host http://127.0.0.1:8000
    locust -f benchmarks LoginUser --headless -u 4 -r 4 -t 20s   # one class by name

Without class names the run is ``ProtectedUser`` and ``MixedUser``. ``LoginUser`` and
``LoginStorm`` run only when named: they hammer password hashing and the per-address login
throttle (100 a minute by default), so against a default ``make run`` they answer 429 by
design; raise ``RATELIMIT_AUTH_LIMIT`` on the server first.

Every user registers its own account (uuid-based name) in ``on_start``; no token is
hard-coded. A request that fails is reported to Locust with the response's JSON ``msg``.
"""

from __future__ import annotations

import os
import random
import secrets
import sys
import time
import uuid
from typing import Any

from locust import between, constant, task
from locust.contrib.fasthttp import FastHttpUser

#: Refresh when less than this share of the access token's lifetime is left...
REFRESH_AT_FRACTION = 0.2
#: ...but at least this many seconds before it expires.
REFRESH_MARGIN_S = 5.0


def opt_in_weight(class_name: str) -> int:
    """1 when `class_name` is named on the command line (or LOCUST_USER_CLASSES), else 0.

    Locust drops weight-0 classes when it builds its environment, before any event hook
    runs, so the choice has to be made when the class is defined.
    """
    named = set(sys.argv[1:]) | set(os.environ.get("LOCUST_USER_CLASSES", "").split())
    return 1 if class_name in named else 0


def new_credentials() -> tuple[str, str]:
    """A username unique across runs (the allowed alphabet, 3..64 chars) and a random password."""
    return f"lc_{uuid.uuid4().hex}", secrets.token_urlsafe(18)


def failure_message(status: int, body: Any, text: str | None, error: Any) -> str:
    """The response's JSON ``msg`` when it has one, else a short description."""
    msg = body.get("msg") if isinstance(body, dict) else None
    if isinstance(msg, str):
        return msg
    if status == 0 or error is not None:
        return f"connection error: {error}"
    snippet = (text or "").strip().replace("\n", " ")[:120]
    return f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"


class ApiUser(FastHttpUser):
    """Shared plumbing: checked JSON calls, an account, a token pair and its refresh."""

    abstract = True
    host = "http://127.0.0.1:8000"

    username: str
    password: str
    access_token: str | None = None
    refresh_token: str | None = None
    refresh_due: float = 0.0

    def call(
        self,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...] = (200,),
        token: str | None = None,
        json: Any = None,
        name: str | None = None,
    ) -> Any:
        """Send one request; a status outside ``expect`` is a Locust failure with its msg."""
        headers = {"Authorization": f"Bearer {token}"} if token else None
        with self.client.request(
            method, path, json=json, headers=headers, name=name or path, catch_response=True
        ) as resp:
            body: Any = None
            try:
                body = resp.json() if resp.text else None
            except ValueError:
                body = None
            if resp.status_code in expect:
                resp.success()
                return body
            resp.failure(failure_message(resp.status_code, body, resp.text, resp.error))
            return None

    def register(self) -> bool:
        self.username, self.password = new_credentials()
        body = {"username": self.username, "password": self.password}
        return self.call("POST", "/register", json=body, expect=(201,)) is not None

    def _store_tokens(self, body: Any) -> bool:
        if not isinstance(body, dict) or "access_token" not in body:
            self.access_token = self.refresh_token = None
            return False
        self.access_token = body["access_token"]
        self.refresh_token = body["refresh_token"]
        lifetime = float(body.get("expires_in", 900))
        lead = max(REFRESH_MARGIN_S, lifetime * REFRESH_AT_FRACTION)
        self.refresh_due = time.monotonic() + max(0.0, lifetime - lead)
        return True

    def login(self) -> bool:
        body = {"username": self.username, "password": self.password}
        return self._store_tokens(self.call("POST", "/login", json=body))

    def refresh(self) -> bool:
        if self.refresh_token is None:
            return self.login()
        return self._store_tokens(self.call("POST", "/token/refresh", token=self.refresh_token))

    def ensure_token(self) -> str | None:
        """The current access token, refreshed via /token/refresh before it expires."""
        if self.access_token is None:
            self.login()
        elif time.monotonic() >= self.refresh_due:
            self.refresh()
        return self.access_token

    def on_start(self) -> None:
        if self.register():
            self.login()


class ProtectedUser(ApiUser):
    """Logs in once, then hammers GET /protected, refreshing before the token expires."""

    wait_time = constant(0)

    @task
    def protected(self) -> None:
        token = self.ensure_token()
        if token is not None:
            self.call("GET", "/protected", token=token)


class MixedUser(ApiUser):
    """A realistic client: mostly reads, pages through /users, refreshes, logs out and in.

    Refresh and logout/login are occasional and paced per user (at most every
    ``REFRESH_EVERY_S`` and ``RELOGIN_EVERY_S``), so a run stays inside the default
    per-address throttle of /login and /token/refresh however long it lasts.
    """

    REFRESH_EVERY_S = 20.0
    RELOGIN_EVERY_S = 40.0

    wait_time = between(0.05, 0.5)
    after_id: int | None = None
    last_refresh: float = 0.0
    last_login: float = 0.0

    def on_start(self) -> None:
        super().on_start()
        # Stagger the users' first refresh and re-login over the period.
        now = time.monotonic()
        self.last_refresh = now - random.uniform(0, self.REFRESH_EVERY_S)
        self.last_login = now - random.uniform(0, self.RELOGIN_EVERY_S)

    @task(10)
    def protected(self) -> None:
        if (token := self.ensure_token()) is not None:
            self.call("GET", "/protected", token=token)

    @task(4)
    def me(self) -> None:
        if (token := self.ensure_token()) is not None:
            self.call("GET", "/me", token=token)

    @task(4)
    def users_page(self) -> None:
        token = self.ensure_token()
        if token is None:
            return
        limit = random.choice((10, 50, 100))
        path = f"/users?limit={limit}"
        if self.after_id is not None:
            path += f"&after_id={self.after_id}"
        page = self.call("GET", path, token=token, name="/users?limit=&after_id=")
        if isinstance(page, list):
            # Keyset paging: continue after the last id, start over at the end.
            self.after_id = page[-1]["id"] if len(page) == limit else None

    @task(1)
    def refresh_tokens(self) -> None:
        if time.monotonic() - self.last_refresh < self.REFRESH_EVERY_S:
            return self.protected()
        self.last_refresh = time.monotonic()
        self.refresh()
        return None

    @task(1)
    def logout_and_login(self) -> None:
        if time.monotonic() - self.last_login < self.RELOGIN_EVERY_S:
            return self.me()
        self.last_login = time.monotonic()
        if self.access_token is not None:
            self.call("POST", "/logout", token=self.access_token)
            self.access_token = self.refresh_token = None
        self.login()
        return None


class LoginUser(ApiUser):
    """Logs in again and again: the password-hashing path. Opt-in: runs when named."""

    weight = opt_in_weight("LoginUser")
    wait_time = constant(0)

    @task
    def login_again(self) -> None:
        self.login()


class LoginStorm(ApiUser):
    """Many concurrent logins, run beside ProtectedUser. Opt-in (weight 0).

    Each user logs in back to back with no think time; 32 of them keep the hashing pool
    saturated while ProtectedUser measures whether the event loop stays responsive.
    Opt-in: runs when named.
    """

    weight = opt_in_weight("LoginStorm")
    wait_time = constant(0)

    @task
    def login_storm(self) -> None:
        self.login()
