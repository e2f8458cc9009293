"""The hostile-token corpus: every token an attacker (or a broken issuer) may send.

Each case is answered 401 or 422 with Flask-JWT-Extended's (PyJWT's) text, never 500
and never 200. Tokens are built byte by byte here, not with PyJWT, so that headers,
payloads and signatures can be as malformed as an attacker likes. Cases marked
"signed" carry a valid signature made with the test app's own secret: they test the
claim checks that run after the signature is accepted (a buggy or compromised issuer).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from quart import Quart

from quart_app import create_app
from tests.helpers.support import SECRET, make_config, send, started

NOT_ALLOWED = "The specified alg value is not allowed"
BAD_SIGNATURE = "Signature verification failed"
#: An unknown ``kid`` with asymmetric keys: refused before any signature check.
NO_KEY = ('No key matches the token\'s "kid" and "alg"', BAD_SIGNATURE)
EXPIRED = "Token has expired"
TOO_LARGE = "Token is too large"
HOSTS_HIT: list[str] = []  # filled by the jku/x5u trap server

# --- building tokens by hand -----------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def _now() -> int:
    """Now, read when a token is built: a long run outlives any time taken at collection."""
    return int(time.time())


def claims(**overrides: Any) -> dict[str, Any]:
    """A complete, valid access-token claim set for user 1; ``None`` drops a claim."""
    now = _now()
    base: dict[str, Any] = {
        "sub": "1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "0b6a8c1e-hostile",
        "type": "access",
        "fresh": False,
        "username": "alice",
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def hs(
    header: Any, payload: Any, key: bytes = SECRET.encode(), digest: Any = hashlib.sha256
) -> str:
    """An HMAC-signed token over exactly these header and payload bytes."""
    signing_input = f"{b64(raw(header))}.{b64(raw(payload))}"
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def unsigned(header: Any, payload: Any, signature: str = "") -> str:
    return f"{b64(raw(header))}.{b64(raw(payload))}.{signature}"


def rs256(header: Any, payload: Any, key: rsa.RSAPrivateKey) -> str:
    signing_input = f"{b64(raw(header))}.{b64(raw(payload))}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def es256(header: Any, payload: Any, key: ec.EllipticCurvePrivateKey) -> str:
    signing_input = f"{b64(raw(header))}.{b64(raw(payload))}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def good() -> str:
    """A valid token for the HS256 app: the base the mutation cases start from."""
    return hs({"alg": "HS256", "typ": "JWT"}, claims())


def segments() -> tuple[str, str, str]:
    header, payload, signature = good().split(".")
    return header, payload, signature


# --- keys (made once per run with `cryptography`) ----------------------------------------


@dataclass(frozen=True)
class Keys:
    rsa: RSAPrivateKey
    ec: EllipticCurvePrivateKey
    attacker_rsa: RSAPrivateKey
    attacker_ec: EllipticCurvePrivateKey

    @staticmethod
    def pem(key: RSAPrivateKey | EllipticCurvePrivateKey) -> bytes:
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @staticmethod
    def der(key: RSAPrivateKey | EllipticCurvePrivateKey) -> bytes:
        return key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @staticmethod
    def private_pem(key: RSAPrivateKey | EllipticCurvePrivateKey) -> str:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()


@cache
def keys() -> Keys:
    return Keys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        attacker_rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        attacker_ec=ec.generate_private_key(ec.SECP256R1()),
    )


def rsa_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "e": b64(numbers.e.to_bytes(3, "big")),
        "n": b64(numbers.n.to_bytes(256, "big")),
    }


def self_signed_cert(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


# --- the corpus --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[str], str]  # trap URL -> token
    status: int
    msg: str | tuple[str, ...]  # the exact text, one of several, or a prefix ending in "..."
    app: str = "hs"  # "hs" (HS256), "rs" (RS256) or "es" (ES256)
    endpoint: str = "/protected"
    everywhere: bool = True  # also refused by every other protected endpoint


def _alg_none_cases() -> Iterator[Case]:
    spellings = sorted({"".join(c) for c in itertools.product(*zip("none", "NONE", strict=True))})
    for alg in spellings:
        yield Case(
            f"alg-{alg}",
            partial(lambda _u, a: unsigned({"alg": a}, claims()), a=alg),
            422,
            NOT_ALLOWED,
        )
    yield Case(
        "alg-none-with-signature",
        lambda _u: unsigned({"alg": "none"}, claims(), segments()[2]),
        422,
        NOT_ALLOWED,
    )
    for kind in ("rs", "es"):
        yield Case(
            f"alg-none-{kind}-app",
            lambda _u: unsigned({"alg": "none"}, claims()),
            422,
            NOT_ALLOWED,
            kind,
        )
    yield Case(
        "alg-missing",
        lambda _u: hs({"typ": "JWT"}, claims()),
        422,
        (NOT_ALLOWED, "Algorithm not specified"),
    )
    yield Case("alg-null", lambda _u: hs({"alg": None}, claims()), 422, NOT_ALLOWED)
    yield Case("alg-empty", lambda _u: hs({"alg": ""}, claims()), 422, NOT_ALLOWED)
    yield Case("alg-list", lambda _u: hs({"alg": ["HS256"]}, claims()), 422, NOT_ALLOWED)
    # Spellings that decode to "none" or to the right name plus junk.
    yield Case(
        "alg-none-json-escaped",
        lambda _u: unsigned(b'{"alg":"\\u006eone"}', claims()),
        422,
        NOT_ALLOWED,
    )
    yield Case("alg-trailing-space", lambda _u: hs({"alg": "HS256 "}, claims()), 422, NOT_ALLOWED)
    yield Case("alg-lowercase-hs256", lambda _u: hs({"alg": "hs256"}, claims()), 422, NOT_ALLOWED)
    yield Case(
        "alg-HS512-not-configured",
        lambda _u: hs({"alg": "HS512"}, claims(), digest=hashlib.sha512),
        422,
        NOT_ALLOWED,
    )


def _confusion_cases() -> Iterator[Case]:
    """RS/ES -> HS: the public key (public by definition) used as the HMAC secret."""
    forms: dict[str, Callable[[Keys, str], bytes]] = {
        "pem": lambda k, kind: Keys.pem(k.rsa if kind == "rs" else k.ec),
        "pem-stripped": lambda k, kind: Keys.pem(k.rsa if kind == "rs" else k.ec).strip(),
        "der": lambda k, kind: Keys.der(k.rsa if kind == "rs" else k.ec),
    }
    for kind, (form, secret), (alg, digest) in itertools.product(
        ("rs", "es"),
        forms.items(),
        (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)),
    ):
        yield Case(
            f"confusion-{kind}-{alg}-{form}",
            partial(
                lambda _u, s, kd, a, d: hs({"alg": a, "typ": "JWT"}, claims(), s(keys(), kd), d),
                s=secret,
                kd=kind,
                a=alg,
                d=digest,
            ),
            422,
            NOT_ALLOWED,
            kind,
        )
    # Cross-family: an ES-signed token at the RS app and the other way round.
    yield Case(
        "es-token-at-rs-app",
        lambda _u: es256({"alg": "ES256"}, claims(), keys().ec),
        422,
        NOT_ALLOWED,
        "rs",
    )
    yield Case(
        "rs-token-at-es-app",
        lambda _u: rs256({"alg": "RS256"}, claims(), keys().rsa),
        422,
        NOT_ALLOWED,
        "es",
    )
    yield Case(
        "ps256-at-rs-app",
        lambda _u: rs256({"alg": "PS256"}, claims(), keys().rsa),
        422,
        NOT_ALLOWED,
        "rs",
    )


def _kid_cases() -> Iterator[Case]:
    injections = {
        "path-traversal": ("../../../../../../dev/null", b""),
        "path-etc-passwd": ("/etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n"),
        "sql-union": ("x' UNION SELECT 'attacker-secret' --", b"attacker-secret"),
        "sql-or": ("1' OR '1'='1", b""),
        "nul-byte": ("key\u0000../../secret", b""),
        "command": ("$(touch /tmp/pwned)", b""),
    }
    for name, (kid, secret) in injections.items():
        yield Case(
            f"kid-{name}",
            partial(lambda _u, k, s: hs({"alg": "HS256", "kid": k}, claims(), s), k=kid, s=secret),
            422,
            BAD_SIGNATURE,
        )
        yield Case(
            f"kid-{name}-rs-app",
            partial(
                lambda _u, k: rs256({"alg": "RS256", "kid": k}, claims(), keys().attacker_rsa),
                k=kid,
            ),
            422,
            NO_KEY,
            "rs",
        )
    yield Case(
        "kid-not-a-string",
        lambda _u: hs({"alg": "HS256", "kid": 7}, claims()),
        422,
        "Key ID header parameter must be a string",
    )
    yield Case(
        "kid-object",
        lambda _u: hs({"alg": "HS256", "kid": {"$ne": ""}}, claims()),
        422,
        "Key ID header parameter must be a string",
    )
    yield Case(
        "kid-4k",
        lambda _u: hs({"alg": "HS256", "kid": "k" * 4096}, claims(), b"x"),
        422,
        BAD_SIGNATURE,
    )


def _remote_key_cases() -> Iterator[Case]:
    """Headers that point at (or carry) a key: never fetched, never trusted."""
    attacker = keys().attacker_rsa
    yield Case(
        "jwk-embedded-rs-app",
        lambda _u: rs256({"alg": "RS256", "jwk": rsa_jwk(attacker)}, claims(), attacker),
        422,
        BAD_SIGNATURE,
        "rs",
    )
    yield Case(
        "jwk-embedded-oct-hs-app",
        lambda _u: hs(
            {"alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"attacker")}}, claims(), b"attacker"
        ),
        422,
        BAD_SIGNATURE,
    )
    for header in ("jku", "x5u"):
        yield Case(
            f"{header}-rs-app",
            partial(lambda url, h: rs256({"alg": "RS256", h: url}, claims(), attacker), h=header),
            422,
            BAD_SIGNATURE,
            "rs",
        )
        yield Case(
            f"{header}-hs-app",
            partial(lambda url, h: hs({"alg": "HS256", h: url}, claims(), b"attacker"), h=header),
            422,
            BAD_SIGNATURE,
        )
    yield Case(
        "x5c-self-signed-rs-app",
        lambda _u: rs256({"alg": "RS256", "x5c": [self_signed_cert(attacker)]}, claims(), attacker),
        422,
        BAD_SIGNATURE,
        "rs",
    )


def _crit_cases() -> Iterator[Case]:
    signed = {"alg": "HS256"}
    yield Case(
        "crit-unknown",
        lambda _u: hs({**signed, "crit": ["exp"], "exp": 1}, claims()),
        422,
        "Unsupported critical extension: exp",
    )
    yield Case(
        "crit-private",
        lambda _u: hs({**signed, "crit": ["x-must-understand"]}, claims()),
        422,
        "Unsupported critical extension: x-must-understand",
    )
    yield Case(
        "crit-empty",
        lambda _u: hs({**signed, "crit": []}, claims()),
        422,
        "Invalid 'crit' header: must be a non-empty list",
    )
    yield Case(
        "crit-string",
        lambda _u: hs({**signed, "crit": "b64"}, claims()),
        422,
        "Invalid 'crit' header: must be a non-empty list",
    )
    yield Case(
        "crit-non-string",
        lambda _u: hs({**signed, "crit": [1]}, claims()),
        422,
        "Invalid 'crit' header: values must be strings",
    )
    yield Case(
        "crit-b64-false",
        lambda _u: hs({**signed, "crit": ["b64"], "b64": False}, claims()),
        422,
        "Payload segment must be empty when 'b64' is false.",
    )


def _other_key_cases() -> Iterator[Case]:
    yield Case(
        "other-secret",
        lambda _u: hs({"alg": "HS256"}, claims(), b"another-secret-" + b"y" * 40),
        422,
        BAD_SIGNATURE,
    )
    yield Case("empty-secret", lambda _u: hs({"alg": "HS256"}, claims(), b""), 422, BAD_SIGNATURE)
    yield Case(
        "other-rsa-key",
        lambda _u: rs256({"alg": "RS256"}, claims(), keys().attacker_rsa),
        422,
        BAD_SIGNATURE,
        "rs",
    )
    yield Case(
        "other-ec-key",
        lambda _u: es256({"alg": "ES256"}, claims(), keys().attacker_ec),
        422,
        BAD_SIGNATURE,
        "es",
    )
    yield Case(
        "resigned-claims-swap",  # a real signature moved onto other claims
        lambda _u: f"{segments()[0]}.{b64(raw(claims(sub='2')))}.{segments()[2]}",
        422,
        BAD_SIGNATURE,
    )


def _mutilated_cases() -> Iterator[Case]:
    """Truncated and padded segments, and text that is not base64url at all."""
    mutations: dict[str, tuple[Callable[[str, str, str], str], str | tuple[str, ...]]] = {
        "two-segments": (lambda h, p, s: f"{h}.{p}", "Not enough segments"),
        "one-segment": (lambda h, p, s: h, "Not enough segments"),
        "four-segments": (lambda h, p, s: f"{h}.{p}.{s}.{s}", "Invalid payload padding"),
        "empty-signature": (lambda h, p, s: f"{h}.{p}.", BAD_SIGNATURE),
        "signature-minus-1": (
            lambda h, p, s: f"{h}.{p}.{s[:-1]}",
            ("Invalid crypto padding", BAD_SIGNATURE),  # depends on the last bits
        ),
        "signature-minus-2": (lambda h, p, s: f"{h}.{p}.{s[:-2]}", "Invalid crypto padding"),
        "signature-first-20": (lambda h, p, s: f"{h}.{p}.{s[:20]}", BAD_SIGNATURE),
        "header-minus-1": (lambda h, p, s: f"{h[:-1]}.{p}.{s}", "Invalid header padding"),
        "payload-minus-1": (
            lambda h, p, s: f"{h}.{p[:-1]}.{s}",
            ("Invalid payload padding", "Invalid payload string...", BAD_SIGNATURE),
        ),
        "signature-pad-3": (lambda h, p, s: f"{h}.{p}.{s}===", "Invalid crypto padding"),
        "header-pad-misplaced": (lambda h, p, s: f"{h}=.{p}.{s}", "Invalid header padding"),
        "payload-pad-inside": (
            lambda h, p, s: f"{h}.{p[:4]}={p[4:]}.{s}",
            "Invalid payload padding",
        ),
        "leading-dot": (
            lambda h, p, s: f".{h}.{p}.{s}",
            "Invalid header string: Expecting value: line 1 column 1 (char 0)",
        ),
        "all-empty": (
            lambda h, p, s: "..",
            "Invalid header string: Expecting value: line 1 column 1 (char 0)",
        ),
        "bang-signature": (lambda h, p, s: f"{h}.{p}.!!!!", "Invalid crypto padding"),
        "standard-b64-alphabet": (
            lambda h, p, s: f"{h}.{p}.{s.replace('-', '+').replace('_', '/')}+/",
            "Invalid crypto padding",
        ),
        "non-ascii": (
            lambda h, p, s: "\u00e9\u00e9\u00e9\u00e9.\u00e9.\u00e9",
            "Invalid header padding",
        ),
        "percent-encoded": (lambda h, p, s: f"{h}%2E{p}.{s}", "Not enough segments"),
        "dots-only": (
            lambda h, p, s: "....",
            "Invalid header string: Expecting value: line 1 column 1 (char 0)",
        ),
    }
    for name, (mutate, msg) in mutations.items():
        yield Case(f"segments-{name}", partial(lambda _u, m: m(*segments()), m=mutate), 422, msg)


def _payload_cases() -> Iterator[Case]:
    signed = {"alg": "HS256"}
    invalid_json = "Invalid payload string: Expecting value: line 1 column 1 (char 0)"
    not_object = "Invalid payload string: must be a json object"
    yield Case("payload-not-json", lambda _u: hs(signed, b"not json"), 422, invalid_json)
    yield Case("payload-empty", lambda _u: hs(signed, b""), 422, invalid_json)
    yield Case(
        "payload-not-utf8",
        lambda _u: hs(signed, b"\xff\xfe\x00"),
        422,
        "Invalid payload string...",
    )
    yield Case(
        "payload-json-string",
        lambda _u: hs(signed, json.dumps(json.dumps(claims())).encode()),
        422,
        not_object,
    )
    yield Case("payload-json-array", lambda _u: hs(signed, [claims()]), 422, not_object)
    yield Case("payload-json-number", lambda _u: hs(signed, b"1"), 422, not_object)
    yield Case("payload-json-null", lambda _u: hs(signed, b"null"), 422, not_object)
    yield Case(
        "payload-nested-token",
        lambda _u: hs(signed, {"token": claims()}),
        422,
        'Token is missing the "exp" claim',
    )
    yield Case(
        "payload-deep-nesting",
        lambda _u: hs(signed, b"[" * 3000 + b"]" * 3000),
        422,
        "Invalid payload string...",
    )
    yield Case(
        "header-not-json",
        lambda _u: hs(b"alg=HS256", claims()),
        422,
        "Invalid header string: Expecting value: line 1 column 1 (char 0)",
    )
    yield Case(
        "header-json-string",
        lambda _u: hs(json.dumps(json.dumps(signed)).encode(), claims()),
        422,
        "Invalid header string: must be a json object",
    )
    yield Case(
        "header-json-array",
        lambda _u: hs([signed], claims()),
        422,
        "Invalid header string: must be a json object",
    )


def _claim_cases() -> Iterator[Case]:
    h = {"alg": "HS256", "typ": "JWT"}
    not_int = "Expiration Time claim (exp) must be an integer."
    # sub: RFC 7519 and PyJWT say a string.
    for name, sub in {
        "int": 1,
        "float": 1.5,
        "null": None,
        "bool": True,
        "list": ["1"],
        "object": {"id": 1},
    }.items():
        build: Callable[[str], str]
        if sub is None:
            build = partial(
                lambda _u: hs(
                    h, b'{"sub":null,"exp":%d,"jti":"j","type":"access"}' % (_now() + 600)
                )
            )
        else:
            build = partial(lambda _u, s: hs(h, claims(sub=s)), s=sub)
        # PyJWT counts a null claim as missing; FJE's identity check may see it first.
        expected: str | tuple[str, ...] = (
            ("Subject must be a string", 'Token is missing the "sub" claim', "Missing claim: sub")
            if sub is None
            else "Subject must be a string"
        )
        yield Case(f"sub-{name}", build, 422, expected)
    # A string sub that is not the id of a user: the lookup fails cleanly.
    for name, subject in {
        "superscript-digit": "\u00b2",
        "arabic-indic-digits": "\u0661",
        "beyond-int64": "9" * 20,
        "5000-digits": "9" * 5000,
        "negative": "-1",
        "sql": "1 OR 1=1",
        "empty": "",
    }.items():
        yield Case(
            f"sub-{name}-at-me",
            partial(lambda _u, s: hs(h, claims(sub=s)), s=subject),
            401,
            f"Error loading the user {subject}",
            endpoint="/me",
            everywhere=False,
        )
    # exp
    yield Case("exp-float-past", lambda _u: hs(h, claims(exp=1.5)), 401, EXPIRED)
    yield Case("exp-negative", lambda _u: hs(h, claims(exp=-1)), 401, EXPIRED)
    yield Case("exp-zero", lambda _u: hs(h, claims(exp=0)), 401, EXPIRED)
    yield Case("exp-past", lambda _u: hs(h, claims(exp=_now() - 5)), 401, EXPIRED)
    yield Case(
        "exp-huge-float",
        lambda _u: hs(h, claims(exp=1e30)),
        422,
        "Expiration Time claim (exp) is out of range",
    )
    yield Case(
        "exp-huge-int",
        lambda _u: hs(h, claims(exp=10**400)),
        422,
        "Expiration Time claim (exp) is out of range",
    )
    yield Case(
        "exp-year-10000",
        lambda _u: hs(h, claims(exp=253402300800)),
        422,
        "Expiration Time claim (exp) is out of range",
    )
    yield Case(
        "exp-infinity",
        lambda _u: hs(h, b'{"sub":"1","exp":1e999,"jti":"j","type":"access"}'),
        422,
        not_int,
    )
    yield Case(
        "exp-nan",
        lambda _u: hs(h, b'{"sub":"1","exp":NaN,"jti":"j","type":"access"}'),
        422,
        not_int,
    )
    yield Case("exp-string-digits", lambda _u: hs(h, claims(exp=str(_now() + 600))), 422, not_int)
    yield Case("exp-string", lambda _u: hs(h, claims(exp="tomorrow")), 422, not_int)
    yield Case("exp-bool", lambda _u: hs(h, claims(exp=True)), 401, EXPIRED)  # True == 1
    yield Case("exp-list", lambda _u: hs(h, claims(exp=[_now() + 600])), 422, not_int)
    # nbf / iat
    yield Case(
        "nbf-future",
        lambda _u: hs(h, claims(nbf=_now() + 3600)),
        422,
        "The token is not yet valid (nbf)",
    )
    yield Case(
        "nbf-string",
        lambda _u: hs(h, claims(nbf="now")),
        422,
        "Not Before claim (nbf) must be an integer.",
    )
    yield Case(
        "nbf-huge",
        lambda _u: hs(h, claims(nbf=-(10**400))),
        422,
        "Not Before claim (nbf) is out of range",
    )
    yield Case(
        "iat-future",
        lambda _u: hs(h, claims(iat=_now() + 3600)),
        422,
        "The token is not yet valid (iat)",
    )
    yield Case(
        "iat-string",
        lambda _u: hs(h, claims(iat="now")),
        422,
        "Issued At claim (iat) must be an integer.",
    )
    # required claims (RFC 8725: stricter than FJE on purpose)
    for claim in ("exp", "jti", "type"):
        yield Case(
            f"missing-{claim}",
            partial(lambda _u, c: hs(h, claims(**{c: None})), c=claim),
            422,
            f'Token is missing the "{claim}" claim',
        )
    # FJE's own text for the identity claim (PyJWT's before the JWT extension matched it).
    yield Case(
        "missing-sub",
        lambda _u: hs(h, claims(sub=None)),
        422,
        ("Missing claim: sub", 'Token is missing the "sub" claim'),
    )
    yield Case("claims-empty-object", lambda _u: hs(h, {}), 422, 'Token is missing the "exp" claim')
    # wrong type
    yield Case(
        "type-refresh-as-access",
        lambda _u: hs(h, claims(type="refresh")),
        422,
        "Only non-refresh tokens are allowed",
        everywhere=False,
    )
    for name, kind in {
        "access": "access",
        "capitalised": "Refresh",
        "number": 1,
        "list": ["refresh"],
    }.items():
        yield Case(
            f"type-{name}-at-refresh",
            partial(lambda _u, k: hs(h, claims(type=k)), k=kind),
            422,
            "Only refresh tokens are allowed",
            endpoint="/token/refresh",
            everywhere=False,
        )
    yield Case(
        "fresh-string-at-password",
        lambda _u: hs(h, claims(fresh="true")),
        401,
        "Fresh token required",
        endpoint="/me/password",
        everywhere=False,
    )


def _duplicate_key_cases() -> Iterator[Case]:
    """Duplicate names: the lexically last one wins everywhere (RFC 7519 section 4)."""

    def payload() -> str:
        return json.dumps(claims())[:-1]

    yield Case(
        "duplicate-alg-last-none",
        lambda _u: hs(b'{"alg":"HS256","alg":"none"}', claims()),
        422,
        NOT_ALLOWED,
    )
    yield Case(
        "duplicate-type-last-refresh",
        lambda _u: hs({"alg": "HS256"}, (payload() + ',"type":"refresh"}').encode()),
        422,
        "Only non-refresh tokens are allowed",
        everywhere=False,
    )
    yield Case(
        "duplicate-type-last-access-at-refresh",
        lambda _u: hs(
            {"alg": "HS256"},
            (json.dumps(claims(type="refresh"))[:-1] + ',"type":"access"}').encode(),
        ),
        422,
        "Only refresh tokens are allowed",
        endpoint="/token/refresh",
        everywhere=False,
    )
    yield Case(
        "duplicate-sub-last-int",
        lambda _u: hs({"alg": "HS256"}, (payload() + ',"sub":1}').encode()),
        422,
        "Subject must be a string",
    )
    yield Case(
        "duplicate-exp-last-expired",
        lambda _u: hs({"alg": "HS256"}, (payload() + ',"exp":1}').encode()),
        401,
        EXPIRED,
    )


def _misc_cases() -> Iterator[Case]:
    signed = {"alg": "HS256"}
    yield Case(
        "b64-false-without-crit",
        lambda _u: hs({**signed, "b64": False}, claims()),
        422,
        (
            "The 'b64' header parameter requires 'b64' to be listed in 'crit'.",
            "Payload segment must be empty when 'b64' is false.",
        ),
    )
    yield Case(
        "jwe-five-segments",
        lambda _u: ".".join([b64(raw({"alg": "dir", "enc": "A256GCM"})), "", "aXY", "Y3Q", "dGFn"]),
        422,
        ("Invalid payload padding", NOT_ALLOWED, "Invalid header padding"),
    )


def _size_cases() -> Iterator[Case]:
    big = "A" * 100_000
    yield Case("100k-junk", lambda _u: big, 422, TOO_LARGE)
    yield Case("100k-header", lambda _u: hs({"alg": "HS256", "pad": big}, claims()), 422, TOO_LARGE)
    yield Case("100k-payload", lambda _u: hs({"alg": "HS256"}, claims(pad=big)), 422, TOO_LARGE)
    yield Case(
        "100k-signature", lambda _u: f"{segments()[0]}.{segments()[1]}.{big}", 422, TOO_LARGE
    )
    yield Case("100k-dots", lambda _u: "." * 100_000, 422, TOO_LARGE)


CORPUS: list[Case] = [
    *_alg_none_cases(),
    *_confusion_cases(),
    *_kid_cases(),
    *_remote_key_cases(),
    *_crit_cases(),
    *_other_key_cases(),
    *_mutilated_cases(),
    *_payload_cases(),
    *_claim_cases(),
    *_duplicate_key_cases(),
    *_misc_cases(),
    *_size_cases(),
]

#: Every protected endpoint, with its method; the corpus is sent to all of them.
ENDPOINTS = {
    "/protected": "GET",
    "/me": "GET",
    "/users": "GET",
    "/logout": "POST",
    "/token/refresh": "POST",
    "/me/password": "PUT",
}


def test_corpus_is_complete_and_unique() -> None:
    names = [case.name for case in CORPUS]
    assert len(names) == len(set(names))
    # 16 spellings of "none", and at least one case of each family the issue lists.
    assert sum(name.startswith("alg-") and name[4:].lower() == "none" for name in names) == 16
    for prefix in (
        "confusion-",
        "kid-",
        "jku-",
        "x5u-",
        "jwk-",
        "crit-",
        "other-",
        "segments-",
        "payload-",
        "sub-",
        "exp-",
        "nbf-",
        "missing-",
        "type-",
        "duplicate-",
        "100k-",
    ):
        assert any(name.startswith(prefix) for name in names), prefix


# --- the apps and the trap server ---------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")  # on the loop the module's apps serve on
async def trap() -> AsyncIterator[str]:
    """A loopback HTTP server that records any connection: jku/x5u must never reach it."""
    hits: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append(await reader.read(1024))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/.well-known/jwks.json"
        await asyncio.sleep(0)  # let a connection that was started be accepted
        assert hits == [], "a key URL from a token header was fetched"
    finally:
        server.close()
        await server.wait_closed()


def _config(kind: str, tmp_path: Path) -> dict[str, Any]:
    # The whole corpus goes to one app: the per-address limit of /token/refresh would
    # answer 429 before the token is read (the limits have tests of their own).
    if kind == "hs":
        return make_config(tmp_path, RATELIMIT_AUTH_LIMIT=100_000)
    private = keys().rsa if kind == "rs" else keys().ec
    return make_config(
        tmp_path,
        RATELIMIT_AUTH_LIMIT=100_000,
        JWT_ALGORITHM="RS256" if kind == "rs" else "ES256",
        JWT_PRIVATE_KEY=Keys.private_pem(private),
        JWT_PUBLIC_KEY=Keys.pem(private).decode(),
    )


def _matches(msg: Any, expected: str | tuple[str, ...]) -> bool:
    """``expected``: the exact text, a prefix ending in "...", or a tuple of those."""
    if isinstance(expected, tuple):
        return any(_matches(msg, one) for one in expected)
    if expected.endswith("..."):
        return isinstance(msg, str) and msg.startswith(expected[:-3])
    return bool(msg == expected)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def apps(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Quart]]:
    """One serving app per kind of key, shared by the corpus: a refused token changes
    nothing a later case could see."""
    async with contextlib.AsyncExitStack() as stack:
        serving = {}
        for kind in ("hs", "rs", "es"):
            app = create_app(_config(kind, tmp_path_factory.mktemp(f"hostile-{kind}")))
            await stack.enter_async_context(started(app))
            serving[kind] = app
        yield serving


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
async def test_hostile_token(case: Case, trap: str, apps: dict[str, Quart]) -> None:
    client = apps[case.app].test_client()
    token = case.build(trap)
    targets = ENDPOINTS if case.everywhere else {case.endpoint: ENDPOINTS[case.endpoint]}
    for path, method in targets.items():
        response = await send(client, path, method, headers={"Authorization": f"Bearer {token}"})
        body = await response.get_json()
        assert response.status_code in (401, 422), (path, response.status_code, body)
        assert set(body) == {"msg"}, (path, body)
        if path == case.endpoint:
            assert response.status_code == case.status, (path, body)
            assert _matches(body["msg"], case.msg), (path, body)
