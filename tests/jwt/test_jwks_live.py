"""Two processes: quart_app issues RS256 tokens; a Quart app with only ``quart_app.jwt``
and the JWKS URL verifies them, follows a key rotation, and keeps its keys while the
issuer is down."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.helpers.live import ROOT, Server

pytestmark = pytest.mark.live
QUART_APP = str(Path(sys.executable).parent / "quart-app")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    issuer_env = {"JWT_ALGORITHM": "RS256"}
    issuer = Server(tmp_path / "issuer", env=issuer_env)
    issuer.start()
    resource = Server(
        tmp_path / "resource",
        target="tests.helpers.jwks_resource_app:app",
        env={
            "PYTHONPATH": str(ROOT),
            "JWKS_URL": f"{issuer.url}/.well-known/jwks.json",
            "JWT_JWKS_MIN_REFRESH_SECONDS": "1",
        },
    )
    try:
        resource.start()
        yield issuer, resource
    finally:
        resource.stop()
        issuer.stop()


def login(issuer: Server, username: str) -> str:
    body = {"username": username, "password": "correct-horse"}
    httpx.post(f"{issuer.url}/register", json=body, timeout=10)
    response = httpx.post(f"{issuer.url}/login", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def whoami(resource: Server, token: str) -> httpx.Response:
    return httpx.get(
        f"{resource.url}/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def test_the_resource_server_follows_the_issuers_keys(servers: tuple[Server, Server]) -> None:
    issuer, resource = servers
    first = login(issuer, "alice")
    answer = whoami(resource, first)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"sub": "1", "kid": kid(first)}

    rotated = subprocess.run(
        [QUART_APP, "rotate-keys", "--now"],
        env={**issuer.env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rotated.returncode == 0, rotated.stderr
    deadline = time.monotonic() + 20
    second = login(issuer, "bob")
    while kid(second) == kid(first):  # the issuer's worker picks the new key up
        assert time.monotonic() < deadline, "the issuer never signed with the new key"
        time.sleep(0.2)
        second = login(issuer, "bob")
    answer = whoami(resource, second)
    while answer.status_code != 200:  # an unknown kid: one refetch per second at most
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)
        answer = whoami(resource, second)
    assert answer.json() == {"sub": "2", "kid": kid(second)}
    assert whoami(resource, first).status_code == 200  # the old key is still published

    # Tokens the resource server has never seen, verified while the issuer is down.
    unseen: list[Any] = [login(issuer, "carol"), login(issuer, "dave")]
    issuer.stop()
    for token in unseen:
        answer = whoami(resource, token)
        assert answer.status_code == 200, answer.text
    forged = jwt.encode({"sub": "1", "exp": int(time.time()) + 60}, "x" * 32, algorithm="HS256")
    assert whoami(resource, forged).status_code == 422


def test_a_rotation_is_published_before_it_signs(tmp_path: Path) -> None:
    """``rotate-keys`` without ``--now`` on a two-worker issuer: the new key is in the JWKS
    at once, tokens keep the old key for KEY_ACTIVATION_DELAY, and a resource server whose
    refetch an attacker keeps spending on made-up kids accepts the first new token."""
    # The delay bounds how soon after the rotation the check that the old key still signs
    # must log in: 4 s was once too short on a loaded machine (the CLI and an argon2
    # login took longer). The test then waits for the new key, polling.
    delay, min_refresh = 20.0, 2.0
    issuer = Server(
        tmp_path / "issuer",
        workers=2,
        env={"JWT_ALGORITHM": "RS256", "KEY_ACTIVATION_DELAY": str(delay)},
    )
    resource = Server(
        tmp_path / "resource",
        workers=2,
        target="tests.helpers.jwks_resource_app:app",
        env={
            "PYTHONPATH": str(ROOT),
            "JWKS_URL": f"{issuer.url}/.well-known/jwks.json",
            "JWT_JWKS_MIN_REFRESH_SECONDS": str(min_refresh),
        },
    )
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    made_up = jwt.encode(
        {"sub": "1", "exp": int(time.time()) + 600, "type": "access"},
        stranger,
        algorithm="RS256",
        headers={"kid": "made-up"},
    )
    with issuer, resource:
        first = login(issuer, "alice")
        for _ in range(4):  # both resource workers have fetched the set
            assert whoami(resource, first).status_code == 200
        time.sleep(min_refresh + 0.2)
        for _ in range(8):  # spends each resource worker's refetch
            assert whoami(resource, made_up).status_code == 422
        rotated = subprocess.run(
            [QUART_APP, "rotate-keys"],
            env={**issuer.env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert rotated.returncode == 0, rotated.stderr
        new_kid = rotated.stdout.split()[4]
        published = httpx.get(f"{issuer.url}/.well-known/jwks.json", timeout=10).json()
        assert new_kid in {key["kid"] for key in published["keys"]}
        assert kid(login(issuer, "bob")) == kid(first)  # published, not signing yet
        deadline = time.monotonic() + delay + 30
        second = first
        while kid(second) != new_kid:
            assert time.monotonic() < deadline, "the issuer never signed with the new key"
            assert whoami(resource, made_up).status_code == 422  # the attacker keeps at it
            time.sleep(0.3)
            second = login(issuer, "bob")
        answer = whoami(resource, second)
        assert answer.status_code == 200, answer.text  # the first try: no refusal window
        assert answer.json()["kid"] == new_kid
