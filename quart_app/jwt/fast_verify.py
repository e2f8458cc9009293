"""A fast path for verifying well-formed tokens, with PyJWT as the judge of everything else.

``jwt.decode`` spends most of its time on work that is the same for every token of an
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

import binascii
import hmac
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .keys import ALGORITHMS, KeySet

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = (int, float)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# The last character of a canonical segment leaves its unused bits zero: 4 bits when the
# length is 2 mod 4, 2 bits when it is 3 mod 4 (PyJWT re-encodes and compares instead).
_CANONICAL_LAST = {
    0: frozenset(_ALPHABET),
    2: frozenset(_ALPHABET[::16]),
    3: frozenset(_ALPHABET[::4]),
}
_PADDING = {0: b"", 2: b"==", 3: b"="}
_HMAC_HASHES = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}


def _b64decode(segment: str) -> bytes | None:
    """Strict, canonical, unpadded base64url, or None."""
    rest = len(segment) % 4
    if rest == 1 or _SEGMENT.fullmatch(segment) is None or segment[-1] not in _CANONICAL_LAST[rest]:
        return None
    try:
        return binascii.a2b_base64(segment.encode().translate(_TO_STANDARD) + _PADDING[rest])
    except (binascii.Error, ValueError):
        return None


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
    #: Extra tolerance for ``iat``/``nbf`` in the future (hosts' clocks apart), not ``exp``.
    clock_skew: float = 0.0
    verify_sub: bool = True


def fast_verify(
    encoded: str,
    keys: KeySet,
    rules: Rules,
    allow_expired: bool = False,
    now: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(header, claims)`` if ``encoded`` is certainly valid at ``now`` (default: the
    real time); None means "ask PyJWT"."""
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
    digest = _HMAC_HASHES.get(alg)
    if digest is not None:
        # What HMACAlgorithm.verify does, with the one-shot C function.
        if not hmac.compare_digest(signature, hmac.digest(key, signing_input, digest)):
            return None
    elif not ALGORITHMS[alg].verify(signing_input, key, signature):
        return None
    try:
        claims = orjson.loads(payload_raw)
    except orjson.JSONDecodeError:
        return None
    moment = time.time() if now is None else now
    if type(claims) is not dict or not _claims_ok(claims, rules, allow_expired, moment):
        return None
    return header, claims


def _claims_ok(claims: dict[str, Any], rules: Rules, allow_expired: bool, now: float) -> bool:
    get = claims.get
    for name in rules.required:
        if get(name) is None:
            return False
    if rules.identity_claim_key not in claims:
        return False
    leeway = rules.leeway
    early = max(leeway, rules.clock_skew)
    if "iat" in claims:
        iat = claims["iat"]
        if not _time_claim(iat) or int(iat) > now + early:
            return False
    if "nbf" in claims:
        nbf = claims["nbf"]
        if not _time_claim(nbf) or int(nbf) > now + early:
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
