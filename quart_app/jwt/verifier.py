"""A fast path for verifying well-formed tokens, with PyJWT as the judge of everything else.

``jwt.decode`` spends most of its ~90 µs on work that is the same for every token of an
app: preparing (and re-validating) the key, checking base64 one character at a time in
Python, ``json.loads`` with encoding detection. :func:`fast_verify` does the same checks
with the key prepared once, a regex, and orjson, and it only ever *accepts*: a token it
has any doubt about (bad format, unknown key, failed signature, a claim out of range, a
value of an unexpected type) makes it return None, and the caller then runs the full
PyJWT decode, which raises PyJWT's own error. It is therefore never laxer than PyJWT
(each check below mirrors one in ``jwt.api_jws``/``jwt.api_jwt``, or is stricter), and
error texts stay PyJWT's.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .keys import ALGORITHMS, KeySet

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = (int, float)


def _b64decode(segment: str) -> bytes | None:
    """Strict, canonical, unpadded base64url, or None."""
    if len(segment) % 4 == 1 or _SEGMENT.fullmatch(segment) is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    # Reject non-zero padding bits (PyJWT does: it re-encodes and compares).
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment.encode():
        return None
    return raw


def _time_claim(value: Any) -> bool:
    return type(value) in _NUMBER


@dataclass(frozen=True, slots=True)
class Rules:
    """What a token must satisfy (the decode settings of one app)."""

    algorithms: frozenset[str]
    required: tuple[str, ...]
    identity_claim_key: str
    audience: str | Sequence[str] | None = None
    issuer: str | None = None
    leeway: float = 0.0
    verify_sub: bool = True


def fast_verify(
    encoded: str, keys: KeySet, rules: Rules, allow_expired: bool = False
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(header, claims)`` if ``encoded`` is certainly valid; None means "ask PyJWT"."""
    parts = encoded.split(".")
    if len(parts) != 3:
        return None
    header_seg, payload_seg, signature_seg = parts
    header_raw = _b64decode(header_seg)
    payload_raw = _b64decode(payload_seg)
    signature = _b64decode(signature_seg)
    if header_raw is None or payload_raw is None or signature is None:
        return None
    try:
        header = orjson.loads(header_raw)
    except orjson.JSONDecodeError:
        return None
    if type(header) is not dict or "crit" in header or "b64" in header:
        return None
    kid = header.get("kid")
    if kid is not None and type(kid) is not str:
        return None
    try:
        key, alg = keys.verification_key(header, rules.algorithms)
    except Exception:
        return None
    signing_input = encoded[: len(header_seg) + 1 + len(payload_seg)].encode()
    if not ALGORITHMS[alg].verify(signing_input, key, signature):
        return None
    try:
        claims = orjson.loads(payload_raw)
    except orjson.JSONDecodeError:
        return None
    if type(claims) is not dict or not _claims_ok(claims, rules, allow_expired):
        return None
    return header, claims


def _claims_ok(claims: dict[str, Any], rules: Rules, allow_expired: bool) -> bool:
    get = claims.get
    for name in rules.required:
        if get(name) is None:
            return False
    if rules.identity_claim_key not in claims:
        return False
    now = time.time()
    leeway = rules.leeway
    if "iat" in claims:
        iat = claims["iat"]
        if not _time_claim(iat) or int(iat) > now + leeway:
            return False
    if "nbf" in claims:
        nbf = claims["nbf"]
        if not _time_claim(nbf) or int(nbf) > now + leeway:
            return False
    if "exp" in claims:
        exp = claims["exp"]
        if not _time_claim(exp) or (not allow_expired and int(exp) <= now - leeway):
            return False
    if rules.issuer is not None and get("iss") != rules.issuer:
        return False
    if rules.audience is not None and not _audience_ok(get("aud"), rules.audience):
        return False
    if rules.verify_sub and "sub" in claims and type(claims["sub"]) is not str:
        return False
    return "jti" not in claims or type(claims["jti"]) is str


def _audience_ok(claim: Any, audience: str | Collection[str]) -> bool:
    if type(claim) is str:
        claim = [claim]
    if type(claim) is not list or not claim or any(type(c) is not str for c in claim):
        return False
    wanted = [audience] if isinstance(audience, str) else audience
    return any(a in claim for a in wanted)
