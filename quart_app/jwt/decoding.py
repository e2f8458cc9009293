"""Verifying a token for a manager: the fast verifier, PyJWT's full decode, the
verified-token cache, and the checks that follow decoding in FJE's order (revocation,
the verification loader, the user lookup). Functions of the manager, which calls them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jwt

from . import tokens
from .default_callbacks import call
from .errors import RevokedTokenError, UserClaimsVerificationError, UserLookupError
from .extension import Claims
from .fast_verify import fast_verify
from .keys import UnknownKeyError, family
from .revocation import RevocationsUnknown

if TYPE_CHECKING:  # annotations only: the manager imports this module
    from .manager import JWTManager


async def _decode_key_for(manager: JWTManager, encoded: str) -> tuple[Any, tuple[str, ...]]:
    """The key to verify ``encoded`` with, and the algorithms it may be used with.

    Structural errors surface first, with PyJWT's texts, as in FJE. A key from the
    ``decode_key_loader`` is only offered to the algorithms of the token's family, a
    key of the key set only to its own family (see ``keys``): never algorithm confusion.
    """
    claims = tokens.unverified_claims(encoded)
    header = tokens.unverified_header(encoded)
    algorithms = manager.config.decode_algorithms
    if manager.callbacks.decode_key is None:
        keys = manager.keys
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
    return await call(manager.callbacks.decode_key, header, claims), same_family


async def decode(
    manager: JWTManager, encoded: str, allow_expired: bool = False
) -> tuple[Claims, Claims]:
    """Verify ``encoded``; return ``(header, claims)``. Raises PyJWT's errors.

    Tokens verified before are answered from a bounded per-worker cache until their
    ``exp`` (a signature cannot change its verdict); revocation is checked by the
    caller on every request, cached or not. Well-formed tokens take the fast path
    (``verifier``); anything else gets PyJWT's full decode and its error texts.
    """
    config = manager.config  # first: a changed setting drops the cache
    now = manager.now()
    cached = manager.verified_tokens.get(encoded)
    if cached is not None:
        header, claims, exp = cached
        if exp is None or allow_expired or exp > now - config.leeway:
            # Copies: a view that edits get_jwt() must not edit the cached entry.
            return dict(header), dict(claims)
        del manager.verified_tokens[encoded]
        raise _expired(dict(header), dict(claims))
    fast = (
        fast_verify(encoded, manager.keys, manager.rules, allow_expired, now)
        if manager.callbacks.decode_key is None
        else None
    )
    if fast is not None:
        header, claims = fast
    else:
        header, claims = await _full_decode(manager, encoded, allow_expired)
    tokens.fill_defaults(claims)
    tokens.check_numeric_dates(claims)
    exp = claims.get("exp")
    # Not with a decode_key_loader: the key it returns may change (FJE asks it each time).
    cache_size = config.verified_cache_size if manager.callbacks.decode_key is None else 0
    if cache_size and not allow_expired and (exp is None or type(exp) in (int, float)):
        verified = manager.verified_tokens
        if len(verified) >= cache_size:
            # Drop the oldest entry (dicts keep insertion order).
            del verified[next(iter(verified))]
        verified[encoded] = (dict(header), dict(claims), exp)
    return header, claims


async def _full_decode(
    manager: JWTManager, encoded: str, allow_expired: bool
) -> tuple[Claims, Claims]:
    config = manager.config
    key, algorithms = await _decode_key_for(manager, encoded)

    def run(allow_expired: bool) -> tuple[Claims, Claims]:
        return tokens.decode_complete(
            encoded,
            key=key,
            algorithms=algorithms,
            audience=config.decode_audience,
            issuer=config.decode_issuer,
            leeway=config.leeway,
            clock_skew=manager.clock_skew,
            required_claims=config.required_claims,
            identity_claim_key=config.identity_claim_key,
            verify_sub=config.verify_sub,
            allow_expired=allow_expired,
            now=manager.now(),  # after the key was found (maybe fetched)
        )

    try:
        return run(allow_expired)
    except jwt.ExpiredSignatureError as error:
        # As FJE: the expired_token_loader gets the expired token's header and claims.
        header, claims = run(True)
        tokens.fill_defaults(claims)
        raise _expired(header, claims) from error


def cached(manager: JWTManager, encoded: str) -> tuple[Claims, Claims] | None:
    """``(header, claims)`` of a token this worker verified before and that has not
    expired, without copying (callers must not modify them); None otherwise."""
    config = manager.config  # first: a changed setting drops the cache
    cached = manager.verified_tokens.get(encoded)
    if cached is None:
        return None
    header, claims, exp = cached
    if exp is not None and exp <= manager.now() - config.leeway:
        return None
    return header, claims


async def check_revoked(manager: JWTManager, header: Claims, claims: Claims) -> None:
    revocations = manager.revocations
    if revocations is not None and not revocations.complete:
        raise RevocationsUnknown()
    if revocations is not None and revocations.is_revoked(
        claims, manager.config.identity_claim_key
    ):
        raise RevokedTokenError(header, claims)
    blocklist = manager.callbacks.token_in_blocklist
    if blocklist is not None:
        types = manager.config.blocklist_types  # FJE 3.x settings; None in 4.x
        if (types is None or claims.get("type") in types) and await call(blocklist, header, claims):
            raise RevokedTokenError(header, claims)


async def check_custom(manager: JWTManager, header: Claims, claims: Claims) -> None:
    if manager.callbacks.token_verification is not None and not await call(
        manager.callbacks.token_verification, header, claims
    ):
        raise UserClaimsVerificationError("User claims verification failed", header, claims)


async def load_user(manager: JWTManager, header: Claims, claims: Claims) -> Any:
    if manager.callbacks.user_lookup is None:
        return None
    user = await call(manager.callbacks.user_lookup, header, claims)
    if user is None:
        identity = claims.get(manager.config.identity_claim_key)
        raise UserLookupError(f"Error loading the user {identity}", header, claims)
    return user


def _expired(header: Claims, claims: Claims) -> jwt.ExpiredSignatureError:
    error = jwt.ExpiredSignatureError("Signature has expired")
    error.jwt_header = header  # type: ignore[attr-defined]
    error.jwt_data = claims  # type: ignore[attr-defined]
    return error
