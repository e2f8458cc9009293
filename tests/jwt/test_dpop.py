"""DPoP (RFC 9449) in the extension alone: proofs of every supported algorithm, every
malformed-proof case of section 4.3, bound tokens refused as Bearer, the replay window,
server nonces, and the challenges."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from quart import Quart

from quart_app.jwt import JWTManager, create_access_token, get_jwt, jwt_required
from quart_app.jwt.dpop import (
    DPoP,
    DPoPError,
    access_token_hash,
    cnf_claims,
    get_dpop,
    init_dpop,
    normalize_htu,
    thumbprint,
    verify_proof,
)
from tests.helpers.dpop_proofs import ALGORITHMS, ProofKey

URL = "http://localhost/protected"


class MemoryStore:
    """A shared store of proof ids, as two workers would share Redis."""

    def __init__(self) -> None:
        self.keys: dict[str, float] = {}

    async def claim(self, key: str, expires_at: float) -> bool:
        if key in self.keys:
            return False
        self.keys[key] = expires_at
        return True


@pytest.fixture(scope="module")
def keys() -> dict[str, ProofKey]:
    return {alg: ProofKey(alg) for alg in ALGORITHMS}


def make_app(**config: Any) -> Quart:
    app = Quart("dpop")
    app.config["JWT_SECRET_KEY"] = "dpop-tests-" + "k" * 40
    app.config.update(config)
    JWTManager(app)

    @app.get("/protected")
    @jwt_required()
    async def protected() -> dict[str, Any]:
        return {"sub": get_jwt()["sub"], "cnf": get_jwt().get("cnf")}

    return app


async def bound_token(app: Quart, key: ProofKey) -> str:
    async with app.app_context():
        return await create_access_token("alice", additional_claims={"cnf": {"jkt": key.jkt}})


def test_thumbprint_of_rfc_7638_example() -> None:
    # RFC 7638 section 3.1.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhD"
        "R1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v"
        "-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyr"
        "dkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqD"
        "Kgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_bound_token_with_a_proof_of_each_algorithm(
    keys: dict[str, ProofKey], alg: str
) -> None:
    app = make_app()
    key = keys[alg]
    token = await bound_token(app, key)
    client = app.test_client()
    response = await client.get(
        "/protected",
        headers={"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", URL, token)},
    )
    assert response.status_code == 200, await response.get_data()
    assert (await response.get_json())["cnf"] == {"jkt": key.jkt}


async def test_bound_token_as_bearer_is_refused(keys: dict[str, ProofKey]) -> None:
    app = make_app()
    key = keys["ES256"]
    token = await bound_token(app, key)
    response = await app.test_client().get(
        "/protected",
        headers={"Authorization": f"Bearer {token}", "DPoP": key.proof("GET", URL, token)},
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')
    assert (await response.get_json())["msg"] == (
        "DPoP-bound token must be sent with the DPoP scheme"
    )


async def test_bound_token_without_proof(keys: dict[str, ProofKey]) -> None:
    app = make_app()
    token = await bound_token(app, keys["ES256"])
    response = await app.test_client().get("/protected", headers={"Authorization": f"DPoP {token}"})
    assert response.status_code == 401
    assert 'error="invalid_dpop_proof"' in response.headers["WWW-Authenticate"]
    assert (await response.get_json())["msg"] == "Missing DPoP proof"


async def test_bearer_token_with_dpop_scheme_is_refused(keys: dict[str, ProofKey]) -> None:
    app = make_app()
    async with app.app_context():
        token = await create_access_token("alice")
    key = keys["ES256"]
    client = app.test_client()
    response = await client.get(
        "/protected",
        headers={"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", URL, token)},
    )
    assert response.status_code == 401
    assert (await response.get_json())["msg"] == "Token is not bound to a DPoP key"
    plain = await client.get("/protected", headers={"Authorization": f"Bearer {token}"})
    assert plain.status_code == 200


async def test_a_proof_is_accepted_once(keys: dict[str, ProofKey]) -> None:
    app = make_app()
    key = keys["EdDSA"]
    token = await bound_token(app, key)
    proof = key.proof("GET", URL, token)
    client = app.test_client()
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    assert (await client.get("/protected", headers=headers)).status_code == 200
    again = await client.get("/protected", headers=headers)
    assert again.status_code == 401
    assert (await again.get_json())["msg"] == "DPoP proof has been used before"


async def test_the_shared_store_refuses_a_proof_another_worker_accepted(
    keys: dict[str, ProofKey],
) -> None:
    store = MemoryStore()
    first, second = make_app(), make_app()
    for app in (first, second):
        init_dpop(app, DPoP(store=store))
    key = keys["ES256"]
    token = await bound_token(first, key)
    headers = {"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", URL, token)}
    assert (await first.test_client().get("/protected", headers=headers)).status_code == 200
    replay = await second.test_client().get("/protected", headers=headers)
    assert replay.status_code == 401
    assert len(store.keys) == 1


async def test_proof_of_another_key_is_refused(keys: dict[str, ProofKey]) -> None:
    app = make_app()
    token = await bound_token(app, keys["ES256"])
    other = keys["EdDSA"]
    response = await app.test_client().get(
        "/protected",
        headers={"Authorization": f"DPoP {token}", "DPoP": other.proof("GET", URL, token)},
    )
    assert response.status_code == 401
    assert (await response.get_json())["msg"] == "DPoP proof key does not match the token's key"


async def test_server_nonce_required(keys: dict[str, ProofKey]) -> None:
    app = make_app(DPOP_NONCE_REQUIRED=True, DPOP_NONCE_SECRET="n" * 32)
    key = keys["ES256"]
    token = await bound_token(app, key)
    client = app.test_client()
    response = await client.get(
        "/protected",
        headers={"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", URL, token)},
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('DPoP error="use_dpop_nonce"')
    nonce = response.headers["DPoP-Nonce"]
    ok = await client.get(
        "/protected",
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": key.proof("GET", URL, token, nonce=nonce),
        },
    )
    assert ok.status_code == 200
    forged = await client.get(
        "/protected",
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": key.proof("GET", URL, token, nonce=nonce[:-2] + "AA"),
        },
    )
    assert forged.status_code == 401
    assert get_dpop(app).nonce_valid(nonce)


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("HTTP://LocalHost:80/a/./b/../c?x=1#f", "http://localhost/a/c"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/%7euser/%2f", "https://example.com:8443/~user/%2F"),
        ("http://[::1]:8080/p", "http://[::1]:8080/p"),
    ],
)
def test_htu_normalisation(given: str, normal: str) -> None:
    assert normalize_htu(given) == normal


def _private_jwk(key: ProofKey) -> dict[str, Any]:
    from jwt.algorithms import ECAlgorithm

    return dict(json.loads(ECAlgorithm.to_jwk(key.private)))


# Every check of RFC 9449 section 4.3, as (name, how the proof is made, expected msg).
MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("two headers", {"twice": True}, "more than one DPoP header"),
    ("not a JWT", {"raw": "not-a-jwt"}, "not a JWT"),
    ("unsigned, no typ", {"raw": "eyJhbGciOiJub25lIn0.eyJ9.x"}, "typ must be dpop+jwt"),
    ("header not JSON", {"raw": "bm90LWpzb24.eyJ9.eA"}, "not a JWT"),
    ("typ missing", {"header": {"typ": None}}, "typ must be dpop+jwt"),
    ("typ JWT", {"header": {"typ": "JWT"}}, "typ must be dpop+jwt"),
    ("alg none (no signature)", {"alg": "none"}, "not a JWT"),
    ("alg HS256", {"alg": "HS256"}, "alg must be one of"),
    ("jwk missing", {"header": {"jwk": None}}, "missing jwk header"),
    ("jwk private", {"private": True}, "jwk holds a private key"),
    ("jwk of another key", {"other_jwk": True}, "bad signature"),
    ("jwk wrong type for alg", {"jwk_kty": "OKP"}, "does not fit alg"),
    ("bad signature", {"tamper": True}, "bad signature"),
    ("jti missing", {"drop": ("jti",)}, "missing or bad jti"),
    ("jti empty", {"claims": {"jti": ""}}, "missing or bad jti"),
    ("jti too long", {"claims": {"jti": "j" * 300}}, "missing or bad jti"),
    ("htm missing", {"drop": ("htm",)}, "htm does not match"),
    ("htm other", {"claims": {"htm": "POST"}}, "htm does not match"),
    ("htm lower case", {"claims": {"htm": "get"}}, "htm does not match"),
    ("htu missing", {"drop": ("htu",)}, "missing htu"),
    ("htu other path", {"claims": {"htu": "http://localhost/other"}}, "htu does not match"),
    ("htu other host", {"claims": {"htu": "http://evil.example/protected"}}, "htu does not"),
    ("htu other scheme", {"claims": {"htu": "https://localhost/protected"}}, "htu does not"),
    ("htu relative", {"claims": {"htu": "/protected"}}, "htu does not match"),
    ("iat missing", {"drop": ("iat",)}, "missing or bad iat"),
    ("iat text", {"claims": {"iat": "now"}}, "missing or bad iat"),
    ("iat too old", {"claims": {"iat": int(time.time()) - 3600}}, "outside the acceptable"),
    ("iat future", {"claims": {"iat": int(time.time()) + 3600}}, "outside the acceptable"),
    ("iat huge", {"claims": {"iat": 10**400}}, "missing or bad iat"),
    ("ath missing", {"drop": ("ath",)}, "ath does not match"),
    ("ath other token", {"claims": {"ath": access_token_hash("other")}}, "ath does not match"),
]


@pytest.mark.parametrize(("name", "how", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_proofs_are_refused(
    keys: dict[str, ProofKey], name: str, how: dict[str, Any], expected: str
) -> None:
    app = make_app()
    key = keys["ES256"]
    token = await bound_token(app, key)
    header = {k: v for k, v in (how.get("header") or {}).items()}
    if "raw" in how:
        proof = how["raw"]
    else:
        body = {
            "jti": "j-" + name,
            "htm": "GET",
            "htu": URL,
            "iat": int(time.time()),
            "ath": access_token_hash(token),
        }
        body.update(how.get("claims", {}))
        for dropped in how.get("drop", ()):
            body.pop(dropped)
        headers: dict[str, Any] = {"typ": "dpop+jwt", "jwk": key.jwk}
        if how.get("private"):
            headers["jwk"] = _private_jwk(key)
        if how.get("other_jwk"):
            headers["jwk"] = keys["ES256"].jwk if key is not keys["ES256"] else ProofKey().jwk
        if how.get("jwk_kty"):
            headers["jwk"] = keys["EdDSA"].jwk
        for k, v in header.items():
            if v is None:
                headers.pop(k)
            else:
                headers[k] = v
        alg = how.get("alg", "ES256")
        if alg == "none":
            proof = jwt.encode(body, "", algorithm="none", headers=headers)
        elif alg == "HS256":
            proof = jwt.encode(body, "s" * 32, algorithm="HS256", headers=headers)
        else:
            proof = jwt.encode(body, key.private, algorithm="ES256", headers=headers)
        if "typ" in header and header["typ"] is None:
            # PyJWT adds typ JWT by default: remove it from the encoded header.
            proof = _without_typ(proof, key, body, headers)
        if how.get("tamper"):
            head, payload, sig = proof.split(".")
            proof = f"{head}.{payload}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}"
    values = [proof, proof] if how.get("twice") else [proof]
    client = app.test_client()
    response = await client.get(
        "/protected",
        headers=[("Authorization", f"DPoP {token}")] + [("DPoP", v) for v in values],
    )
    assert response.status_code == 401, name
    assert expected in (await response.get_json())["msg"], name
    assert 'error="invalid_dpop_proof"' in response.headers["WWW-Authenticate"], name


def _without_typ(proof: str, key: ProofKey, body: dict[str, Any], headers: dict[str, Any]) -> str:
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "ES256", **headers}).encode())
    payload = b64(json.dumps(body).encode())
    der = key.private.sign(f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{head}.{payload}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def test_verify_proof_direct(keys: dict[str, ProofKey]) -> None:
    key = keys["PS256"]
    proof = verify_proof(
        key.proof("POST", "https://a.example/token"),
        method="POST",
        url="https://A.example:443/token?x=1",
    )
    assert proof.jkt == key.jkt
    assert cnf_claims(proof) == {"cnf": {"jkt": key.jkt}}
    with pytest.raises(DPoPError):
        verify_proof(
            key.proof("POST", "https://a.example/token"),
            method="POST",
            url="https://a.example/token",
            max_age=60,
            now=time.time() + 120,
        )
