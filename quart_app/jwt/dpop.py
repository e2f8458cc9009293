"""DPoP (RFC 9449): access tokens bound to a key the client proves it holds.

A client sends, with each request, a ``DPoP`` header: a small JWT (the *proof*) signed by
its own key, whose header carries the public key (``jwk``) and whose claims name the
request (``htm``: method, ``htu``: URL), the moment (``iat``), a unique id (``jti``) and,
with an access token, that token's hash (``ath``). A token issued with a proof carries
``cnf.jkt``, the RFC 7638 thumbprint of the proof's key; from then on it is accepted only
as ``Authorization: DPoP <token>`` together with a fresh proof signed by that key. A
stolen token is worth nothing without the key.

This module is the extension's part and imports nothing of any service:

* :func:`verify_proof` checks one proof (RFC 9449 section 4.3) and returns its key's
  thumbprint; :func:`thumbprint`, :func:`access_token_hash` and :func:`normalize_htu`
  are the pieces it uses;
* :class:`DPoP` (one per app, :func:`get_dpop`) holds the settings, the replay window
  and the server nonces; ``jwt_required``, the fast path and forward authentication
  call :meth:`DPoP.check_request` for every token;
* the replay check keeps each accepted ``jti`` in a per-worker window and, when a
  :class:`ReplayStore` is given, records it there atomically too, so a proof is
  accepted once across every worker and host (the store is the app's: Redis, SQL...).

Settings (``app.config``): ``DPOP_NONCE_REQUIRED`` (default False),
``DPOP_PROOF_MAX_AGE`` (seconds, default 60; the manager's clock skew is added),
``DPOP_NONCE_SECRET`` (bytes or text shared by every worker and host that checks
nonces; default random per process), ``DPOP_PUBLIC_URL`` (scheme and host the ``htu``
of a proof is compared with; default the request's own).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import math
import re
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import quote, unquote, urlsplit

import jwt
from quart import Quart, Request

from .errors import JWTExtendedException
from .extension import EXTENSION_KEY as MANAGER_KEY
from .extension import get_manager

EXTENSION_KEY = "quart_app.jwt.dpop"
#: Proof signature algorithms accepted (RFC 9449 section 5.1: asymmetric only).
ALGORITHMS = ("ES256", "EdDSA", "RS256", "PS256")
PROOF_TYPE = "dpop+jwt"
SCHEME = "DPoP"
NONCE_HEADER = "DPoP-Nonce"
#: Where ``jwt_required`` leaves a proof it accepted (``g``), for a route issuing tokens.
PROOF_KEY = "_jwt_dpop_proof"
#: The members of each key type that make its RFC 7638 thumbprint.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
#: Members that only a private key has: a proof carrying one is refused.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_KEY_TYPES = {
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
}
_MIN_RSA_BITS = 2048
#: Longest proof accepted (an RSA-4096 proof is about 1.6 KB).
MAX_PROOF_LENGTH = 8192
_MAX_JTI_LENGTH = 256
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
#: Seconds a server nonce lives (one is accepted for up to two periods).
NONCE_PERIOD = 300


class DPoPError(JWTExtendedException):
    """A DPoP failure: answered 401 with ``msg`` and a ``WWW-Authenticate: DPoP`` challenge.

    ``error`` is the RFC 9449 code: ``invalid_token`` (the token cannot be used this
    way), ``invalid_dpop_proof`` (the proof is bad) or ``use_dpop_nonce`` (send the
    server's nonce, given in the ``DPoP-Nonce`` header).
    """

    def __init__(self, msg: str, error: str = "invalid_dpop_proof") -> None:
        super().__init__(msg)
        self.msg = msg
        self.error = error
        self.nonce: str | None = None


class ReplayStore(Protocol):
    """Where accepted proof ids are shared between workers and hosts."""

    async def claim(self, key: str, expires_at: float) -> bool:
        """Record ``key`` until ``expires_at`` unless recorded; True if this call did it
        (atomically: of two calls with one key, exactly one gets True)."""


@dataclass(frozen=True, slots=True)
class Proof:
    """A verified proof: its key's thumbprint, its id and when it was made."""

    jkt: str
    jti: str
    iat: float
    nonce: str | None = None

    @property
    def replay_key(self) -> str:
        """What the replay check records: bounded length, one per (key, jti)."""
        return hashlib.sha256(f"{self.jkt}\0{self.jti}".encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK (base64url, no padding)."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        raise DPoPError("Invalid DPoP proof: unsupported or incomplete jwk")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(token: str) -> str:
    """``ath``: base64url of the SHA-256 of the access token's ASCII bytes."""
    return _b64(hashlib.sha256(token.encode("ascii", "replace")).digest())


def _normalize_percent(text: str) -> str:
    """RFC 3986 6.2.2: percent-encodings in upper case; encoded unreserved bytes decoded."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(0)[1:], 16))
        return char if char in _UNRESERVED else match.group(0).upper()

    return _PERCENT.sub(fix, text)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4."""
    output: list[str] = []
    for segment in path.split("/")[1:] if path.startswith("/") else path.split("/"):
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    normalized = "/" + "/".join(output)
    if path.endswith(("/.", "/..")) and not normalized.endswith("/"):
        normalized += "/"
    return normalized


@functools.lru_cache(maxsize=4096)
def normalize_htu(url: str) -> str:
    """``url`` compared as RFC 9449 section 4.3 says: query and fragment dropped, then
    RFC 3986 syntax- and scheme-based normalisation (case of scheme and host, default
    port, percent-encoding, dot segments, empty path as ``/``). ValueError if not an
    absolute http(s) URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("not an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a URL with user information")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # ValueError for a port out of range
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _remove_dot_segments(_normalize_percent(parts.path or "/"))
    return f"{scheme}://{netloc}{path}"


def request_htu(scheme: str, host: str, path: str, base: str | None = None) -> str:
    """The normalised URL of a request: ``base`` (scheme and host) when configured, else
    the request's ``scheme`` and ``Host``; ``path`` as received (raw, percent-encoded)."""
    prefix = base.rstrip("/") if base else f"{scheme}://{host}"
    return normalize_htu(prefix + (path if path.startswith("/") else "/" + path))


class _HeaderCache:
    """Checked proof headers by their encoded text (a client sends the same header with
    every proof): ``(alg, public key, thumbprint)``. Loading an RSA or EC key from a JWK
    costs more than checking a signature with it; failures are never remembered."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[str, Any, str]] = OrderedDict()

    def get(self, segment: str) -> tuple[str, Any, str]:
        found = self._entries.get(segment)
        if found is not None:
            self._entries.move_to_end(segment)
            return found
        found = _check_header(segment)
        self._entries[segment] = found
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return found


def _json_segment(segment: str) -> Any:
    try:
        return json.loads(_b64decode(segment))
    except ValueError:
        raise DPoPError("Invalid DPoP proof: not a JWT") from None


def _check_header(segment: str) -> tuple[str, Any, str]:
    header = _json_segment(segment)
    if not isinstance(header, dict):
        raise DPoPError("Invalid DPoP proof: not a JWT")
    if header.get("typ") != PROOF_TYPE:
        raise DPoPError(f"Invalid DPoP proof: typ must be {PROOF_TYPE}")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise DPoPError(f"Invalid DPoP proof: alg must be one of {', '.join(ALGORITHMS)}")
    if "crit" in header:
        raise DPoPError("Invalid DPoP proof: unsupported crit header")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise DPoPError("Invalid DPoP proof: missing jwk header")
    if _PRIVATE_MEMBERS & jwk.keys():
        raise DPoPError("Invalid DPoP proof: jwk holds a private key")
    return alg, _load_key(jwk, alg), thumbprint(jwk)


def _load_key(jwk: Mapping[str, Any], alg: str) -> Any:
    kty, crv = _KEY_TYPES[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise DPoPError(f"Invalid DPoP proof: jwk does not fit alg {alg}")
    try:
        key = jwt.PyJWK(dict(jwk), algorithm=alg).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        raise DPoPError("Invalid DPoP proof: unusable jwk") from None
    if kty == "RSA" and getattr(key, "key_size", 0) < _MIN_RSA_BITS:
        raise DPoPError(f"Invalid DPoP proof: RSA keys need {_MIN_RSA_BITS} bits")
    return key


_header_cache = _HeaderCache()
#: PyJWT's signature algorithms (its own objects: signature formats, key checks).
_SIGNERS = {name: jwt.algorithms.get_default_algorithms()[name] for name in ALGORITHMS}


def _number(value: Any) -> bool:
    """A finite JSON number a clock can hold (no bool, no 10**400: never an OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, int):
        return abs(value) < 2**53
    return math.isfinite(value) and abs(value) < 2**53


def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    access_token: str | None = None,
    max_age: float = 60.0,
    skew: float = 0.0,
    now: float | None = None,
) -> Proof:
    """Check one proof as RFC 9449 section 4.3 says; return it, or raise :class:`DPoPError`.

    ``url`` is the request's URL (normalised here); ``access_token`` given means the proof
    must carry its ``ath``. ``iat`` may lie ``max_age + skew`` seconds in the past and
    ``skew`` in the future. Not checked here: the ``jti`` (see :class:`DPoP`), the nonce,
    and the binding to a token's ``cnf.jkt``.
    """
    if len(proof) > MAX_PROOF_LENGTH or not _JWT_SHAPE.fullmatch(proof):
        raise DPoPError("Invalid DPoP proof: not a JWT")
    head, payload, signature = proof.split(".")
    alg, key, jkt = _header_cache.get(head)
    # The shape was checked above: plain base64url, so PyJWT's per-character re-check of
    # every segment (a third of its decode time) is not needed; its verifier is used.
    try:
        valid = _SIGNERS[alg].verify(f"{head}.{payload}".encode(), key, _b64decode(signature))
    except ValueError:
        valid = False
    if not valid:
        raise DPoPError("Invalid DPoP proof: bad signature")
    claims = _json_segment(payload)
    if not isinstance(claims, dict):
        raise DPoPError("Invalid DPoP proof: not a JWT")
    jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
    if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_LENGTH:
        raise DPoPError("Invalid DPoP proof: missing or bad jti")
    if not isinstance(htm, str) or htm != method.upper():
        raise DPoPError("Invalid DPoP proof: htm does not match the request method")
    if not isinstance(htu, str):
        raise DPoPError("Invalid DPoP proof: missing htu")
    try:
        matches = normalize_htu(htu) == normalize_htu(url)
    except ValueError:
        matches = False
    if not matches:
        raise DPoPError("Invalid DPoP proof: htu does not match the request URL")
    if not _number(iat):
        raise DPoPError("Invalid DPoP proof: missing or bad iat")
    iat = float(cast(float, iat))
    now = time.time() if now is None else now
    if iat > now + skew or iat < now - max_age - skew:
        raise DPoPError("Invalid DPoP proof: iat is outside the acceptable window")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(
            ath, access_token_hash(access_token)
        ):
            raise DPoPError("Invalid DPoP proof: ath does not match the access token")
    nonce = claims.get("nonce")
    return Proof(jkt, jti, iat, nonce if isinstance(nonce, str) else None)


def bound_thumbprint(claims: Mapping[str, Any]) -> str | None:
    """The ``cnf.jkt`` a token is bound to, or None for a bearer token."""
    cnf = claims.get("cnf")
    if isinstance(cnf, Mapping):
        jkt = cnf.get("jkt")
        if isinstance(jkt, str):
            return jkt
        raise DPoPError("Token has a malformed cnf claim", "invalid_token")
    if cnf is not None:
        raise DPoPError("Token has a malformed cnf claim", "invalid_token")
    return None


def authorization_scheme(headers: Any, name: str = "Authorization") -> str | None:
    """The scheme of the (single) ``Authorization`` header, case as sent; None without one."""
    value = headers.get(name)
    if not value:
        return None
    return str(value).strip().split(maxsplit=1)[0] if value.strip() else None


def challenge(error: str | None = None, description: str | None = None) -> str:
    """``WWW-Authenticate`` for DPoP (RFC 9449 section 7.1), with the algorithms accepted."""
    algs = f'algs="{" ".join(ALGORITHMS)}"'
    if error is None:
        return f"{SCHEME} {algs}"
    text = f'{SCHEME} error="{error}"'
    if description:
        safe = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "'" for c in description)
        text += f', error_description="{safe}"'
    return f"{text}, {algs}"


class DPoP:
    """One app's DPoP checks: settings, the replay window, server nonces."""

    def __init__(
        self,
        *,
        store: ReplayStore | None = None,
        max_age: float = 60.0,
        skew: float = 0.0,
        nonce_required: bool = False,
        nonce_secret: bytes | None = None,
        public_url: str | None = None,
        window: int = 100_000,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.max_age = max_age
        self.skew = skew
        self.nonce_required = nonce_required
        self.nonce_secret = nonce_secret or secrets.token_bytes(32)
        self.public_url = public_url.rstrip("/") if public_url else None
        self.window = window
        #: What "now" is for proofs' ``iat`` and nonces. None given: ``time.time``, or the
        #: clock of the app's JWT manager (:func:`init_dpop`, :func:`get_dpop`).
        self.clock: Callable[[], float] = clock or time.time
        self._own_clock = clock is not None
        # replay key -> until when this worker remembers it (insertion order ~ expiry order).
        self._seen: OrderedDict[str, float] = OrderedDict()

    def adopt_clock(self, clock: Callable[[], float]) -> None:
        """Use ``clock`` unless this object was made with a clock of its own."""
        if not self._own_clock:
            self.clock = clock

    @classmethod
    def from_config(cls, config: Mapping[str, Any], skew: float = 0.0) -> DPoP:
        secret = config.get("DPOP_NONCE_SECRET")
        return cls(
            max_age=float(config.get("DPOP_PROOF_MAX_AGE", 60.0)),
            skew=skew,
            nonce_required=bool(config.get("DPOP_NONCE_REQUIRED", False)),
            nonce_secret=secret.encode() if isinstance(secret, str) else secret,
            public_url=config.get("DPOP_PUBLIC_URL"),
        )

    # -- nonces (RFC 9449 section 8) ------------------------------------------------------

    def nonce(self, now: float | None = None) -> str:
        """A server nonce: the period it was made in and a MAC of it (no state kept)."""
        period = int((self.clock() if now is None else now) // NONCE_PERIOD)
        data = struct.pack(">Q", period)
        return _b64(data + hmac.new(self.nonce_secret, data, "sha256").digest()[:16])

    def nonce_valid(self, nonce: str | None, now: float | None = None) -> bool:
        if not nonce or len(nonce) > 64:
            return False
        try:
            raw = _b64decode(nonce)
        except ValueError:
            return False
        if len(raw) != 24:
            return False
        data, mac = raw[:8], raw[8:]
        if not hmac.compare_digest(hmac.new(self.nonce_secret, data, "sha256").digest()[:16], mac):
            return False
        period = int(struct.unpack(">Q", data)[0])
        current = int((self.clock() if now is None else now) // NONCE_PERIOD)
        return current - 1 <= period <= current

    # -- proofs ---------------------------------------------------------------------------

    def htu(self, scheme: str, host: str, path: str) -> str:
        return request_htu(scheme, host, path, self.public_url)

    def request_url(self, request: Request) -> str:
        """The URL a proof's ``htu`` must name for ``request`` (ws/wss count as http/https)."""
        scheme = {"ws": "http", "wss": "https"}.get(request.scheme, request.scheme)
        return self.htu(scheme, request.host, _raw_path(request))

    def verify(
        self, proof_headers: list[str], method: str, url: str, access_token: str | None
    ) -> Proof:
        """Check the request's ``DPoP`` header values (exactly one) without the replay
        check; DPoPError otherwise (``use_dpop_nonce`` with a fresh nonce attached)."""
        if not proof_headers:
            raise DPoPError("Missing DPoP proof")
        if len(proof_headers) != 1:
            raise DPoPError("Invalid DPoP proof: more than one DPoP header")
        proof = verify_proof(
            proof_headers[0].strip(),
            method=method,
            url=url,
            access_token=access_token,
            max_age=self.max_age,
            skew=self.skew,
            now=self.clock(),
        )
        if self.nonce_required and not self.nonce_valid(proof.nonce):
            error = DPoPError("DPoP proof must carry the server's nonce", "use_dpop_nonce")
            error.nonce = self.nonce()
            raise error
        return proof

    def seen_here(self, proof: Proof) -> bool:
        """Whether this worker accepted the proof before (no I/O)."""
        return proof.replay_key in self._seen

    async def accept_once(self, proof: Proof) -> None:
        """Accept ``proof``'s jti once: this worker's window, then the shared store."""
        now = self.clock()
        key = proof.replay_key
        seen = self._seen
        while seen:  # forget what expired (oldest first)
            oldest, until = next(iter(seen.items()))
            if until > now and len(seen) < self.window:
                break
            del seen[oldest]
        if key in seen:
            raise DPoPError("DPoP proof has been used before")
        expires_at = proof.iat + self.max_age + 2 * self.skew + 1
        seen[key] = expires_at
        if self.store is None:
            return
        try:
            claimed = await self.store.claim(key, expires_at)
        except BaseException:
            seen.pop(key, None)  # undecided: a retry must reach the store again
            raise
        if not claimed:
            raise DPoPError("DPoP proof has been used before")

    async def check(
        self,
        *,
        scheme: str | None,
        proof_headers: list[str],
        method: str,
        url: str,
        encoded: str,
        claims: Mapping[str, Any],
    ) -> Proof | None:
        """The DPoP rules for one presented access token (its ``claims`` verified).

        A bound token needs the ``DPoP`` scheme and a proof of its key; a bearer token
        sent with the ``DPoP`` scheme is refused too (the client believes it is bound).
        """
        jkt = bound_thumbprint(claims)
        is_dpop = scheme is not None and scheme.lower() == "dpop"
        # A refresh token goes to a token endpoint, whose proofs carry no ath (section 5).
        refresh = claims.get("type") == "refresh"
        if jkt is None:
            if is_dpop:
                raise DPoPError("Token is not bound to a DPoP key", "invalid_token")
            return None
        if not is_dpop and not refresh:
            raise DPoPError("DPoP-bound token must be sent with the DPoP scheme", "invalid_token")
        proof = self.verify(proof_headers, method, url, None if refresh else encoded)
        if not hmac.compare_digest(proof.jkt, jkt):
            raise DPoPError("DPoP proof key does not match the token's key")
        await self.accept_once(proof)
        return proof

    async def check_request(
        self,
        request: Request,
        encoded: str,
        claims: Mapping[str, Any],
        header: str = "Authorization",
        target: Callable[[], tuple[str, str]] | None = None,
    ) -> Proof | None:
        """:meth:`check` for a Quart request (or a WebSocket handshake); the proof names
        the method and URL ``target()`` gives (default: the request's own)."""
        scheme = authorization_scheme(request.headers, header)
        if "cnf" not in claims and (scheme is None or scheme.lower() != "dpop"):
            return None  # a bearer token sent as one: nothing to check
        if target is None:
            method, url = _method(request), self.request_url(request)
        else:
            method, url = target()
        return await self.check(
            scheme=scheme,
            proof_headers=request.headers.getlist("DPoP"),
            method=method,
            url=url,
            encoded=encoded,
            claims=claims,
        )

    async def binding(self, request: Request) -> Proof | None:
        """For a route that issues tokens: the request's proof (no ``ath``), checked and
        used up, or None when it sent none."""
        values = request.headers.getlist("DPoP")
        if not values:
            return None
        proof = self.verify(values, _method(request), self.request_url(request), None)
        await self.accept_once(proof)
        return proof


Header = Callable[[str], "str | None"]


def forwarded_target(
    get: Header, method: str, scheme: str, host: str, path: str, route: str
) -> tuple[str, str]:
    """``(htm, htu)`` of the request a gateway asks about (forward authentication):
    ``X-Forwarded-Method``/``X-Original-Method``, ``X-Forwarded-Proto``,
    ``X-Forwarded-Host`` and ``X-Original-URI`` (nginx) or ``X-Forwarded-Uri`` (Traefik);
    without those, the request's own, and a path below ``route`` (Envoy's ext_authz
    appends the client's path) stands for the client's path. ``get`` reads a header by
    its lower-case name."""

    def first(name: str) -> str | None:
        value = get(name)
        return value.split(",", 1)[0].strip() or None if value else None

    htm = first("x-forwarded-method") or first("x-original-method") or method
    proto = first("x-forwarded-proto") or scheme
    where = first("x-forwarded-host") or host
    uri = get("x-original-uri") or get("x-forwarded-uri")
    if not uri:
        prefix = route.rstrip("/")
        uri = path[len(prefix) :] if path.startswith(prefix + "/") else path
    return htm.upper(), request_htu(proto.lower(), where, uri.strip().split("?", 1)[0])


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1").split("?", 1)[0]
    return quote(unquote(request.path), safe="/%:@!$&'()*+,;=-._~")


def _method(request: Any) -> str:
    method = getattr(request, "method", None)
    return str(method) if method else "GET"  # a WebSocket handshake is a GET


async def check_sent_token(
    sent_with: tuple[Any, str] | None,
    encoded: str,
    claims: Mapping[str, Any],
    target: Callable[[], tuple[str, str]] | None = None,
) -> Proof | None:
    """``jwt_required``'s DPoP step: ``sent_with`` is the request (or WebSocket) and where
    the token was found; None (a token in a WebSocket message) refuses a bound token.
    ``target`` gives the method and URL the proof must name, when not the request's own
    (forward authentication: :func:`forwarded_target`)."""
    from quart import current_app

    if sent_with is None:
        if bound_thumbprint(claims) is not None:
            raise DPoPError("DPoP-bound token must be sent with the DPoP scheme", "invalid_token")
        return None
    request, location = sent_with
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    dpop = get_dpop(app)
    if location != "headers":
        if bound_thumbprint(claims) is not None:
            raise DPoPError("DPoP-bound token must be sent with the DPoP scheme", "invalid_token")
        return None
    header = get_manager(app).config.header_name
    proof = await dpop.check_request(request, encoded, claims, header, target)
    if proof is not None:
        from quart import g

        setattr(g, PROOF_KEY, proof)
    return proof


async def dpop_error_response(error: DPoPError) -> Any:
    """401 with the JSON ``msg`` and the ``WWW-Authenticate: DPoP`` challenge (and a fresh
    ``DPoP-Nonce`` when the proof lacked the server's nonce)."""
    from quart import current_app, jsonify

    key = get_manager(current_app).config.error_msg_key
    response = jsonify({key: error.msg})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = challenge(error.error, error.msg)
    response.headers["Cache-Control"] = "no-store"
    if error.nonce is not None:
        response.headers[NONCE_HEADER] = error.nonce
    return response


def cnf_claims(proof: Proof | None) -> dict[str, Any]:
    """The claims that bind a new token to ``proof``'s key (none without a proof)."""
    return {} if proof is None else {"cnf": {"jkt": proof.jkt}}


def init_dpop(app: Quart, dpop: DPoP) -> DPoP:
    """Use ``dpop`` for this app's checks (else :func:`get_dpop` makes one from settings);
    without a clock of its own it follows the app's JWT manager clock."""
    manager = app.extensions.get(MANAGER_KEY)
    if manager is not None:
        dpop.adopt_clock(manager.now)
    app.extensions[EXTENSION_KEY] = dpop
    return dpop


def get_dpop(app: Quart) -> DPoP:
    """The app's :class:`DPoP`, made from its settings on first use when none was given."""
    found = app.extensions.get(EXTENSION_KEY)
    if found is None:
        manager = get_manager(app)
        found = DPoP.from_config(app.config, skew=float(getattr(manager, "clock_skew", 0.0)))
        found.adopt_clock(manager.now)
        app.extensions[EXTENSION_KEY] = found
    return cast(DPoP, found)
