"""Signing and verification keys: HS* secrets and RS/PS/ES/EdDSA key pairs, with rotation.

A :class:`Key` is bound to one key family and is only ever offered to algorithms of that
family, whatever a token's header says: an RSA public key is never used as an HMAC
secret, an HMAC secret never verifies an RS/ES/EdDSA token, and ``none`` is never
accepted (algorithm confusion, RFC 8725 section 2.1).

Asymmetric tokens carry ``kid`` (the RFC 7638 thumbprint of the public key) and are
verified with the key of that id. Generated keys, rotation and the settings that pick a
key set live in ``key_files``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import Algorithm, get_default_algorithms

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ES256": ec.SECP256R1,
    "ES384": ec.SECP384R1,
    "ES512": ec.SECP521R1,
}
OKP_ALGORITHMS = frozenset({"EdDSA"})
ASYMMETRIC_ALGORITHMS = RSA_ALGORITHMS | frozenset(EC_CURVES) | OKP_ALGORITHMS
SUPPORTED_ALGORITHMS = HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS

#: PyJWT's algorithm objects (``none`` left out on purpose).
ALGORITHMS: dict[str, Algorithm] = {
    name: obj for name, obj in get_default_algorithms().items() if name in SUPPORTED_ALGORITHMS
}

RSA_KEY_BITS = 2048


class UnknownKeyError(jwt.InvalidTokenError):
    """No accepted key matches the token's ``kid`` and ``alg``."""


def family(algorithm: str) -> str:
    """``hmac``, ``rsa``, ``ec`` or ``okp``; raises for anything else (``none`` included)."""
    if algorithm in HMAC_ALGORITHMS:
        return "hmac"
    if algorithm in RSA_ALGORITHMS:
        return "rsa"
    if algorithm in EC_CURVES:
        return "ec"
    if algorithm in OKP_ALGORITHMS:
        return "okp"
    raise ValueError(f"unsupported JWT algorithm {algorithm!r}")


def _key_family(private_or_public: Any) -> str:
    if isinstance(private_or_public, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa"
    if isinstance(private_or_public, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "ec"
    okp = (
        ed25519.Ed25519PrivateKey,
        ed25519.Ed25519PublicKey,
        ed448.Ed448PrivateKey,
        ed448.Ed448PublicKey,
    )
    if isinstance(private_or_public, okp):
        return "okp"
    raise ValueError(f"unsupported key type {type(private_or_public).__name__}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(public_key: Any) -> dict[str, Any]:
    """The public JWK of an RSA, EC or OKP public key (no private members)."""
    kind = _key_family(public_key)
    if kind == "rsa":
        return ALGORITHMS["RS256"].to_jwk(public_key, as_dict=True)
    if kind == "ec":
        return ALGORITHMS["ES256"].to_jwk(public_key, as_dict=True)
    return ALGORITHMS["EdDSA"].to_jwk(public_key, as_dict=True)


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the ``kid`` of a public key."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


class Key:
    """One key: what it signs with, what it verifies, and until when it is accepted."""

    def __init__(
        self,
        algorithm: str,
        *,
        private: Any = None,
        public: Any = None,
        secret: bytes | None = None,
        kid: str | None = None,
        created_at: float = 0.0,
        expires_at: float | None = None,
    ) -> None:
        self.algorithm = algorithm
        self.family = family(algorithm)
        self.created_at = created_at
        #: After this time the key verifies nothing (None: no limit).
        self.expires_at = expires_at
        if self.family == "hmac":
            if not secret:
                raise ValueError("an HMAC key needs a non-empty secret")
            self.signing_key: Any = secret
            self.verifying_key: Any = secret
            self.kid = kid
            self.jwk: dict[str, Any] | None = None
        else:
            if public is None and private is not None:
                public = private.public_key()
            if public is None:
                raise ValueError(f"{algorithm} needs a public or a private key")
            if _key_family(public) != self.family:
                raise ValueError(f"a {type(public).__name__} cannot be used with {algorithm}")
            if private is not None and _key_family(private) != self.family:
                raise ValueError(f"a {type(private).__name__} cannot be used with {algorithm}")
            self.signing_key = private
            self.verifying_key = public
            jwk = public_jwk(public)
            self.kid = kid or thumbprint(jwk)
            # RFC 7517 4.3: "use" and "key_ops" should not both be present.
            jwk.pop("key_ops", None)
            self.jwk = {**jwk, "kid": self.kid, "alg": algorithm, "use": "sig"}
        # algorithm -> the key prepared by PyJWT for it, or None when it does not fit.
        self._prepared: dict[str, Any] = {}
        if self.prepared(algorithm) is None:
            raise ValueError(f"this key cannot be used with {algorithm}")

    @property
    def can_sign(self) -> bool:
        return self.signing_key is not None

    def prepared(self, algorithm: str) -> Any:
        """The verification key prepared for ``algorithm``, or None if it is not of this key's
        family (so a public key can never reach the HMAC code, nor a secret the RSA code)."""
        try:
            return self._prepared[algorithm]
        except KeyError:
            pass
        prepared: Any = None
        if algorithm in ALGORITHMS and family(algorithm) == self.family:
            try:
                prepared = ALGORITHMS[algorithm].prepare_key(self.verifying_key)
            except (jwt.InvalidKeyError, TypeError, ValueError):
                prepared = None
        self._prepared[algorithm] = prepared
        return prepared

    def accepted(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at

    def __repr__(self) -> str:
        return f"Key({self.algorithm}, kid={self.kid!r})"


class KeySet:
    """The keys of one app: the one that signs, and every key still accepted."""

    def __init__(self, keys: Iterable[Key] = (), clock: Callable[[], float] | None = None) -> None:
        self._keys: list[Key] = []
        self._by_kid: dict[str, Key] = {}
        #: What "now" is for keys' activation and retirement. None given: ``time.time``,
        #: or the clock of the manager whose keys this set becomes (:meth:`adopt_clock`).
        self.clock: Callable[[], float] = clock or time.time
        self._own_clock = clock is not None
        self._set(keys)

    def adopt_clock(self, clock: Callable[[], float]) -> None:
        """Use ``clock`` unless this set was made with a clock of its own."""
        if not self._own_clock:
            self.clock = clock

    def _set(self, keys: Iterable[Key]) -> None:
        self._keys = sorted(keys, key=lambda k: k.created_at)
        self._by_kid = {key.kid: key for key in self._keys if key.kid is not None}

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        algorithm: str,
        secret: str | bytes | None = None,
        private_key: Any = None,
        public_key: Any = None,
        decode_algorithms: Sequence[str] = (),
    ) -> KeySet:
        """FJE's settings: ``JWT_SECRET_KEY`` for HS*, ``JWT_PRIVATE_KEY``/``JWT_PUBLIC_KEY``
        (PEM text or key objects) for the others. Missing material is only an error when
        a token is signed or verified with it."""
        keys: list[Key] = []
        wanted = {algorithm, *decode_algorithms}
        if secret and wanted & HMAC_ALGORITHMS:
            raw = secret.encode() if isinstance(secret, str) else bytes(secret)
            hs = algorithm if algorithm in HMAC_ALGORITHMS else min(wanted & HMAC_ALGORITHMS)
            keys.append(Key(hs, secret=raw))
        if (private_key or public_key) and wanted & ASYMMETRIC_ALGORITHMS:
            asym = (
                algorithm
                if algorithm in ASYMMETRIC_ALGORITHMS
                else sorted(wanted & ASYMMETRIC_ALGORITHMS)[0]
            )
            private = load_private_key(private_key) if private_key else None
            public = load_public_key(public_key) if public_key else None
            keys.append(Key(asym, private=private, public=public))
        return cls(keys)

    @classmethod
    def from_private_keys(cls, pairs: Iterable[tuple[Any, str]]) -> KeySet:
        """Keys from ``(private key, algorithm)`` pairs, the last one signing."""
        now = time.time()  # an order of creation only: none of them expires
        return cls(
            Key(alg, private=private, created_at=now + i * 1e-6)
            for i, (private, alg) in enumerate(pairs)
        )

    # -- use -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Pick up keys added or removed elsewhere (a no-op for a fixed set)."""

    def keys(self) -> list[Key]:
        return list(self._keys)

    async def refetch(self, header: Mapping[str, Any]) -> bool:
        """For a token whose key is unknown: look for new keys elsewhere (a JWKS, see
        ``jwks``); True if it is worth asking ``verification_key`` again."""
        return False

    def signing_key(self, algorithm: str) -> Key:
        """The newest key that can sign with ``algorithm``."""
        self.refresh()
        for key in reversed(self._keys):
            if key.can_sign and key.prepared(algorithm) is not None:
                return key
        if algorithm in HMAC_ALGORITHMS:
            raise RuntimeError(
                f"JWT_SECRET_KEY or SECRET_KEY must be set when using symmetric algorithm"
                f' "{algorithm}"'
            )
        raise RuntimeError(
            f'JWT_PRIVATE_KEY must be set to use asymmetric cryptography algorithm "{algorithm}"'
        )

    def verification_key(
        self, header: Mapping[str, Any], allowed: Sequence[str] | frozenset[str]
    ) -> tuple[Any, str]:
        """``(prepared key, algorithm)`` for a token with this (unverified) ``header``.

        ``alg`` must be in ``allowed``; the key must be of that algorithm's family; for
        asymmetric algorithms the ``kid`` picks the key (without ``kid``, the only key of
        that algorithm, for tokens from FJE-style single-key set-ups).
        """
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in allowed or alg not in ALGORITHMS:
            raise jwt.InvalidAlgorithmError("The specified alg value is not allowed")
        now = self.clock()
        if alg in HMAC_ALGORITHMS:
            # As FJE: an HMAC token is checked against the secret whatever its kid says.
            for key in reversed(self._keys):
                prepared = key.prepared(alg)
                if prepared is not None and key.accepted(now):
                    return prepared, alg
            # HS* allowed but no secret: nothing can verify it (signing still fails loudly).
            raise UnknownKeyError(f"No key to verify an {alg} token")
        kid = header.get("kid")
        if kid is None:
            candidates = [k for k in self._keys if k.prepared(alg) is not None and k.accepted(now)]
            if len(candidates) == 1:
                return candidates[0].prepared(alg), alg
            if not candidates:
                raise UnknownKeyError(f"No key to verify an {alg} token")
            raise UnknownKeyError('Token has no "kid" header to choose a key with')
        found = self._by_kid.get(kid) if isinstance(kid, str) else None
        if found is None:
            self.refresh()
            found = self._by_kid.get(kid) if isinstance(kid, str) else None
        prepared = found.prepared(alg) if found is not None and found.accepted(now) else None
        if prepared is None:
            raise UnknownKeyError('No key matches the token\'s "kid" and "alg"')
        return prepared, alg

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public keys still accepted, as a JWK Set (RFC 7517), newest first."""
        self.refresh()
        now = self.clock()
        return {
            "keys": [
                dict(k.jwk) for k in reversed(self._keys) if k.jwk is not None and k.accepted(now)
            ]
        }


# -- PEM ---------------------------------------------------------------------------------


def load_private_key(value: Any) -> Any:
    """A private key object from PEM text/bytes (or a key object, returned as is)."""
    if isinstance(value, str | bytes):
        data = value.encode() if isinstance(value, str) else value
        return serialization.load_pem_private_key(data, password=None)
    return value


def load_public_key(value: Any) -> Any:
    """A public key object from PEM text/bytes (or a key object, returned as is)."""
    if isinstance(value, str | bytes):
        data = value.encode() if isinstance(value, str) else value
        return serialization.load_pem_public_key(data)
    return value


def private_pem(private_key: Any) -> bytes:
    return private_key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(public_key: Any) -> bytes:
    return public_key.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_private_key(algorithm: str) -> Any:
    """A new private key for ``algorithm`` (RSA 2048, the algorithm's EC curve, Ed25519)."""
    kind = family(algorithm)
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    if kind == "ec":
        return ec.generate_private_key(EC_CURVES[algorithm]())
    if kind == "okp":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"{algorithm} uses a shared secret, not a generated key pair")
