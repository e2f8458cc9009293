"""Token verification: the fast path, PyJWT's full decode, the verified-token cache, and
the checks that follow decoding in FJE's order (revocation, claims, user lookup)."""

from __future__ import annotations

import time
from typing import Any

import jwt

from . import tokens
from .errors import RevokedTokenError, UserClaimsVerificationError, UserLookupError
from .keys import UnknownKeyError, family
from .loaders import Loaders, call
from .revocation import RevocationList, RevocationsUnknown
from .verifier import fast_verify
from .view import Claims


class Verification(Loaders):
    """``decode`` and the checks after it."""

    def __init__(self) -> None:
        super().__init__()
        #: The in-memory revocation mirror checked on every request (None: no built-in check).
        self.revocations: RevocationList | None = None

    async def _decode_key_for(self, encoded: str) -> tuple[Any, tuple[str, ...]]:
        """The key to verify ``encoded`` with, and the algorithms it may be used with.

        Structural errors surface first, with PyJWT's texts, as in FJE. A key from the
        ``decode_key_loader`` is only offered to the algorithms of the token's family, a
        key of the key set only to its own family (see ``keys``): never algorithm confusion.
        """
        claims = tokens.unverified_claims(encoded)
        header = tokens.unverified_header(encoded)
        algorithms = self.config.decode_algorithms
        if self._decode_key is None:
            keys = self.keys
            try:
                key, alg = keys.verification_key(header, algorithms)
            except UnknownKeyError:
                if not await keys.refetch(header):  # a JWKS that may have rotated
                    raise
                key, alg = keys.verification_key(header, algorithms)
            return key, (alg,)
        token_alg = header.get("alg")
        if not isinstance(token_alg, str) or token_alg not in algorithms:
            raise jwt.InvalidAlgorithmError("The specified alg value is not allowed")
        same_family = tuple(a for a in algorithms if family(a) == family(token_alg))
        return await call(self._decode_key, header, claims), same_family

    # -- decode ---------------------------------------------------------------------

    async def decode(self, encoded: str, allow_expired: bool = False) -> tuple[Claims, Claims]:
        """Verify ``encoded``; return ``(header, claims)``. Raises PyJWT's errors.

        Tokens verified before are answered from a bounded per-worker cache until their
        ``exp`` (a signature cannot change its verdict); revocation is checked by the
        caller on every request, cached or not. Well-formed tokens take the fast path
        (``verifier``); anything else gets PyJWT's full decode and its error texts.
        """
        config = self.config  # first: a changed setting drops the cache
        cached = self._verified.get(encoded)
        if cached is not None:
            header, claims, exp = cached
            if exp is None or allow_expired or exp > time.time() - config.leeway:
                # Copies: a view that edits get_jwt() must not edit the cached entry.
                return dict(header), dict(claims)
            del self._verified[encoded]
            raise _expired(dict(header), dict(claims))
        fast = (
            fast_verify(encoded, self.keys, self.rules, allow_expired)
            if self._decode_key is None
            else None
        )
        if fast is not None:
            header, claims = fast
        else:
            header, claims = await self._full_decode(encoded, allow_expired)
        tokens.fill_defaults(claims)
        tokens.check_numeric_dates(claims)
        exp = claims.get("exp")
        # Not with a decode_key_loader: the key it returns may change (FJE asks it each time).
        cache_size = config.verified_cache_size if self._decode_key is None else 0
        if cache_size and not allow_expired and (exp is None or type(exp) in (int, float)):
            verified = self._verified
            if len(verified) >= cache_size:
                # Drop the oldest entry (dicts keep insertion order).
                del verified[next(iter(verified))]
            verified[encoded] = (dict(header), dict(claims), exp)
        return header, claims

    async def _full_decode(self, encoded: str, allow_expired: bool) -> tuple[Claims, Claims]:
        config = self.config
        key, algorithms = await self._decode_key_for(encoded)

        def run(allow_expired: bool) -> tuple[Claims, Claims]:
            return tokens.decode_complete(
                encoded,
                key=key,
                algorithms=algorithms,
                audience=config.decode_audience,
                issuer=config.decode_issuer,
                leeway=config.leeway,
                clock_skew=self.clock_skew,
                required_claims=config.required_claims,
                identity_claim_key=config.identity_claim_key,
                verify_sub=config.verify_sub,
                allow_expired=allow_expired,
            )

        try:
            return run(allow_expired)
        except jwt.ExpiredSignatureError as error:
            # As FJE: the expired_token_loader gets the expired token's header and claims.
            header, claims = run(True)
            tokens.fill_defaults(claims)
            raise _expired(header, claims) from error

    def cached(self, encoded: str) -> tuple[Claims, Claims] | None:
        """``(header, claims)`` of a token this worker verified before and that has not
        expired, without copying (callers must not modify them); None otherwise."""
        config = self.config  # first: a changed setting drops the cache
        cached = self._verified.get(encoded)
        if cached is None:
            return None
        header, claims, exp = cached
        if exp is not None and exp <= time.time() - config.leeway:
            return None
        return header, claims

    # -- checks after decoding (FJE's order) -----------------------------------------

    async def check_revoked(self, header: Claims, claims: Claims) -> None:
        revocations = self.revocations
        if revocations is not None and not revocations.complete:
            raise RevocationsUnknown()
        if revocations is not None and revocations.is_revoked(
            claims, self.config.identity_claim_key
        ):
            raise RevokedTokenError(header, claims)
        blocklist = self._token_in_blocklist
        if blocklist is not None:
            types = self.config.blocklist_types  # FJE 3.x settings; None in 4.x
            if (types is None or claims.get("type") in types) and await call(
                blocklist, header, claims
            ):
                raise RevokedTokenError(header, claims)

    async def check_custom(self, header: Claims, claims: Claims) -> None:
        if self._token_verification is not None and not await call(
            self._token_verification, header, claims
        ):
            raise UserClaimsVerificationError("User claims verification failed", header, claims)

    async def load_user(self, header: Claims, claims: Claims) -> Any:
        if self._user_lookup is None:
            return None
        user = await call(self._user_lookup, header, claims)
        if user is None:
            identity = claims.get(self.config.identity_claim_key)
            raise UserLookupError(f"Error loading the user {identity}", header, claims)
        return user


def _expired(header: Claims, claims: Claims) -> jwt.ExpiredSignatureError:
    error = jwt.ExpiredSignatureError("Signature has expired")
    error.jwt_header = header  # type: ignore[attr-defined]
    error.jwt_data = claims  # type: ignore[attr-defined]
    return error
