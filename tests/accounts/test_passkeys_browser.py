"""Passkeys and TOTP from a real browser against live Hypercorn with two workers.

Debian's Chromium, driven by Playwright (never a downloaded browser), with its virtual
authenticator (DevTools' WebAuthn domain: CTAP2, internal transport, resident keys,
user verification). The ceremonies' begin and finish go to different workers: each
worker is reached through a keep-alive connection that the access log showed it
answering. The /account page is driven as a user would; TOTP codes are computed here
from the secret the page shows.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pyotp
import pytest

from tests.helpers.debian import ensure_tool
from tests.helpers.live import Server, free_port, server_env
from tests.helpers.support import SECRET, unique_name

pytestmark = pytest.mark.live

THRESHOLD = 5
FAILED = {"msg": "Passkey verification failed"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ACCESS = re.compile(r"<(\d+)> \d{3}")


def chromium() -> str:
    return ensure_tool(lambda: shutil.which("chromium"), "chromium")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_backend_config: dict[str, Any]
) -> Iterator[Server]:
    """One server per backend for the module: every test enrols a user of its own."""
    port = free_port()
    env = {
        "JWT_SECRET_KEY": SECRET,
        "RATELIMIT_AUTH_LIMIT": "100000",
        "LOGIN_LOCKOUT_THRESHOLD": str(THRESHOLD),
        "LOGIN_LOCKOUT_BASE_SECONDS": "600",
        "WEBAUTHN_RP_ID": "localhost",
        "WEBAUTHN_ORIGINS": f"http://localhost:{port}",
        "DATABASE_OPERATION_TIMEOUT": "60",
        "DATABASE_POOL_TIMEOUT": "60",
        **server_env(module_backend_config),
    }
    home = tmp_path_factory.mktemp("passkeys")
    with Server(
        home / "instance", workers=2, port=port, env=env, access_log=home / "access.log"
    ) as live:
        yield live


@pytest.fixture
def alice() -> dict[str, str]:
    """This test's own account (not yet registered)."""
    return {"username": unique_name(), "password": "correct-horse"}


def _pids(server: Server) -> list[str]:
    assert server.access_log is not None
    if not server.access_log.exists():
        return []
    return ACCESS.findall(server.access_log.read_text())


def pinned_clients(server: Server) -> list[httpx.Client]:
    """One keep-alive client per worker: a new connection stays with the worker that
    accepted it, which the access log names."""
    found: dict[str, httpx.Client] = {}
    spare: list[httpx.Client] = []
    for _ in range(200):
        client = httpx.Client(base_url=server.url, timeout=60)
        before = len(_pids(server))
        assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 5
        while len(_pids(server)) == before and time.monotonic() < deadline:
            time.sleep(0.005)
        pid = _pids(server)[-1]
        if pid in found:
            spare.append(client)
        else:
            found[pid] = client
        if len(found) == 2:
            for other in spare:
                other.close()
            return list(found.values())
    raise AssertionError("one worker answered every new connection")


def worker_of(server: Server, client: httpx.Client) -> str:
    before = len(_pids(server))
    client.get("/healthz")
    deadline = time.monotonic() + 5
    while len(_pids(server)) == before and time.monotonic() < deadline:
        time.sleep(0.005)
    return _pids(server)[-1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Browser:
    """Chromium with a virtual authenticator, on the server's /account page."""

    def __init__(self, server: Server, profile: Path) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self.context = self._playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium(),
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1000, "height": 1500},
        )
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.origin = f"http://localhost:{server.port}"
        cdp = self.context.new_cdp_session(self.page)
        cdp.send("WebAuthn.enable", {"enableUI": False})
        self.authenticator = cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )["authenticatorId"]
        self.cdp = cdp
        self.page.goto(f"{self.origin}/account")
        self.page.wait_for_selector("body[data-ready=true]")

    def credentials(self) -> list[dict[str, Any]]:
        result = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})
        return list(result["credentials"])

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self.page.evaluate(
                """async (options) => {
                    const credential = await navigator.credentials.create({
                        publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options)});
                    return credential.toJSON();
                }""",
                options,
            )
        )

    def get(self, options: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self.page.evaluate(
                """async (options) => {
                    const credential = await navigator.credentials.get({
                        publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options)});
                    return credential.toJSON();
                }""",
                options,
            )
        )

    def close(self) -> None:
        self.context.close()
        self._playwright.stop()


@pytest.fixture
def browser(server: Server, tmp_path: Path) -> Iterator[Browser]:
    opened = Browser(server, tmp_path / "profile")
    try:
        yield opened
    finally:
        opened.close()


def _tampered(assertion: dict[str, Any]) -> dict[str, Any]:
    signature = bytearray(base64.urlsafe_b64decode(assertion["response"]["signature"] + "=="))
    signature[-1] ^= 0x01
    response = {
        **assertion["response"],
        "signature": base64.urlsafe_b64encode(bytes(signature)).rstrip(b"=").decode(),
    }
    return {**assertion, "response": response}


def test_passkey_ceremonies_span_workers(
    server: Server, browser: Browser, alice: dict[str, str]
) -> None:
    one, two = pinned_clients(server)
    assert worker_of(server, one) != worker_of(server, two)
    assert one.post("/register", json=alice).status_code == 201
    access = one.post("/login", json=alice).json()["access_token"]

    # Registration: begin on one worker, finish on the other.
    options = one.post("/webauthn/register/begin", headers=bearer(access)).json()
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    credential = browser.create(options)
    finished = two.post(
        "/webauthn/register/finish", json={**credential, "name": "Laptop"}, headers=bearer(access)
    )
    assert finished.status_code == 201, finished.text
    assert finished.json()["name"] == "Laptop"
    assert [c["isResidentCredential"] for c in browser.credentials()] == [True]
    # The same registration again: its challenge is used up.
    again = one.post("/webauthn/register/finish", json=credential, headers=bearer(access))
    assert again.status_code == 400

    # Discoverable login: no username, begin on one worker, finish on the other.
    request_options = two.post("/webauthn/login/begin", json={}).json()
    assert "allowCredentials" not in request_options or not request_options["allowCredentials"]
    assertion = browser.get(request_options)
    logged_in = one.post("/webauthn/login/finish", json=assertion)
    assert logged_in.status_code == 200, logged_in.text
    pair = logged_in.json()
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert claims["fresh"] is True and claims["username"] == alice["username"]
    assert (
        two.get("/me", headers=bearer(pair["access_token"])).json()["username"] == alice["username"]
    )
    # The same assertion once more, on either worker: refused.
    for client in (one, two):
        replay = client.post("/webauthn/login/finish", json=assertion)
        assert replay.status_code == 401
        assert replay.json() == FAILED
    listed = two.get("/me/passkeys", headers=bearer(pair["access_token"])).json()["passkeys"]
    assert [p["name"] for p in listed] == ["Laptop"] and listed[0]["last_used_at"]
    assert two.get("/me/mfa", headers=bearer(pair["access_token"])).json()["passkeys"] == 1

    # Tampered assertions are refused and counted as failed logins of the account, like
    # the two replays: THRESHOLD failures lock it.
    for _ in range(THRESHOLD - 2):
        fresh_options = one.post(
            "/webauthn/login/begin", json={"username": alice["username"]}
        ).json()
        assert fresh_options["allowCredentials"]
        bad = two.post("/webauthn/login/finish", json=_tampered(browser.get(fresh_options)))
        assert bad.status_code == 401
        assert bad.json() == FAILED
    locked = one.post("/login", json=alice)
    assert locked.status_code == 429
    good_but_locked = two.post(
        "/webauthn/login/finish",
        json=browser.get(one.post("/webauthn/login/begin", json={}).json()),
    )
    assert good_but_locked.status_code == 429


def test_totp_codes_are_single_use_across_workers(server: Server, alice: dict[str, str]) -> None:
    one, two = pinned_clients(server)
    assert one.post("/register", json=alice).status_code == 201
    access = one.post("/login", json=alice).json()["access_token"]
    secret = one.post("/me/mfa/totp", headers=bearer(access)).json()["secret"]
    totp = pyotp.TOTP(secret)
    confirmed = two.post(
        "/me/mfa/totp/confirm", json={"code": totp.at(time.time())}, headers=bearer(access)
    )
    assert confirmed.status_code == 200
    code = totp.at(time.time() + 30)  # a later step than the one that confirmed
    first = one.post("/login", json=alice)
    assert first.status_code == 401 and first.json()["msg"] == "MFA required"
    ok = one.post("/login/mfa", json={"mfa_token": first.json()["mfa_token"], "code": code})
    assert ok.status_code == 200
    second = two.post("/login", json=alice).json()["mfa_token"]
    replay = two.post("/login/mfa", json={"mfa_token": second, "code": code})
    assert replay.status_code == 401
    assert replay.json() == {"msg": "Invalid code"}
    # The used mfa_token is refused on the other worker too.
    used = two.post(
        "/login/mfa",
        json={"mfa_token": first.json()["mfa_token"], "code": totp.at(time.time() + 30)},
    )
    assert used.status_code == 401
    assert used.json() == {"msg": "Invalid or expired MFA token"}


async def test_concurrent_wrong_codes_are_counted_once_each(
    server: Server, alice: dict[str, str]
) -> None:
    limits = httpx.Limits(max_connections=40, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as http:
        assert (await http.post("/register", json=alice)).status_code == 201
        access = (await http.post("/login", json=alice)).json()["access_token"]
        secret = (await http.post("/me/mfa/totp", headers=bearer(access))).json()["secret"]
        totp = pyotp.TOTP(secret)
        code = totp.at(time.time())
        confirmed = await http.post(
            "/me/mfa/totp/confirm", json={"code": code}, headers=bearer(access)
        )
        assert confirmed.status_code == 200
        token = (await http.post("/login", json=alice)).json()["mfa_token"]
        valid = {totp.at(time.time() + 30 * k) for k in (-1, 0, 1)}
        wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)
        responses = await asyncio.gather(
            *(http.post("/login/mfa", json={"mfa_token": token, "code": wrong}) for _ in range(20))
        )
    statuses = [r.status_code for r in responses]
    # The password step holds one of the THRESHOLD checks until a code succeeds.
    assert statuses.count(401) == THRESHOLD - 1, statuses
    assert statuses.count(429) == 20 - (THRESHOLD - 1), statuses


def test_account_page_enrols_totp_and_a_passkey_and_logs_in_with_it(
    server: Server, browser: Browser, alice: dict[str, str]
) -> None:
    page = browser.page
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.post("/register", json=alice).status_code == 201
    page.fill("#username", alice["username"])
    page.fill("#password", alice["password"])
    page.click("#login-button")
    page.wait_for_selector("#account:not([hidden])")
    assert page.text_content("#whoami") == alice["username"]

    page.click("#totp-enable")
    page.wait_for_selector("#totp-enrol:not([hidden])")
    secret = page.text_content("#totp-secret") or ""
    # The page's CSP forbids eval: wait with selectors only.
    page.wait_for_selector("#totp-qr[src^='data:image/svg+xml;base64,']")
    totp = pyotp.TOTP(secret)
    page.fill("#totp-confirm-code", totp.at(time.time()))
    page.click("#totp-confirm")
    page.wait_for_selector("#recovery:not([hidden])")
    recovery = [li.text_content() or "" for li in page.query_selector_all("#recovery-codes li")]
    assert len(recovery) == 10
    page.wait_for_selector("#totp-state[data-enabled=true]")

    page.fill("#passkey-name", "This laptop")
    page.click("#passkey-add")
    page.wait_for_selector("li.passkey")
    assert "This laptop" in (page.text_content("#passkeys") or "")

    # Password, then the code the page asks for.
    page.click("#logout")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#username", alice["username"])
    page.fill("#password", alice["password"])
    page.click("#login-button")
    page.wait_for_selector("#code-form:not([hidden])")
    page.fill("#login-code", totp.at(time.time() + 30))  # later than the confirming step
    page.click("#code-button")
    page.wait_for_selector("#account:not([hidden])")

    # A passkey alone is a full login: no code asked. Another client logged in meanwhile.
    page.click("#logout")
    page.wait_for_selector("#login:not([hidden])")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        token = http.post("/login", json=alice).json()["mfa_token"]
        other = http.post("/login/mfa", json={"mfa_token": token, "recovery_code": recovery[0]})
        assert other.status_code == 200
    page.click("#passkey-login")
    page.wait_for_selector("#account:not([hidden])")
    assert page.text_content("#whoami") == alice["username"]
    page.wait_for_selector("li.passkey")
    assert "last used" in (page.text_content("#passkeys") or "")
    assert page.is_hidden("#code-form")
    rows = page.query_selector_all("#sessions tbody tr")
    assert len(rows) == 2 and len(page.query_selector_all("#sessions tr.current")) == 1
    events = page.text_content("#events") or ""
    for event in ("mfa_enabled", "passkey_added", "login"):
        assert event in events
    shot = os.environ.get("ACCOUNT_SCREENSHOT")
    page.screenshot(
        path=shot or str(Path(server.log_path).with_name("account.png")), full_page=True
    )

    # Ending the other session from the page: its refresh token is dead.
    page.click("button.end-session")
    # The list is redrawn: wait for it to hold exactly one row (the current session).
    page.wait_for_selector("#sessions tbody tr.current:only-child")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        refreshed = http.post("/token/refresh", headers=bearer(other.json()["refresh_token"]))
        assert refreshed.status_code == 401
