"""DPoP binding for the routes that issue tokens (RFC 9449 section 5).

Every route that hands out tokens calls :func:`dpop_binding` once: a request with a
``DPoP`` proof gets tokens bound to the proof's key (``cnf.jkt`` in the access and the
refresh token, ``"token_type": "DPoP"``), one without gets bearer tokens as before. A
refresh token that is bound already was checked with its proof by ``jwt_required``: that
same proof is reused here (it was used up once, it is not checked twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quart import current_app, g, request

from ..errors import AppError
from ..jwt.dpop import PROOF_KEY, DPoPError, Proof, cnf_claims, get_dpop


@dataclass(frozen=True, slots=True)
class Binding:
    """What a token-issuing route adds: the claims of both tokens, and the token_type."""

    claims: dict[str, Any] = field(default_factory=dict)
    token_type: str = "Bearer"
    proof: Proof | None = None


async def request_binding() -> Binding:
    """The request's proof as a :class:`Binding`; DPoPError for a bad proof."""
    proof: Proof | None = getattr(g, PROOF_KEY, None)
    if proof is None:
        proof = await get_dpop(current_app).binding(request)
    if proof is None:
        return Binding()
    return Binding(cnf_claims(proof), "DPoP", proof)


async def dpop_binding() -> Binding:
    """:func:`request_binding` for the JSON routes: a bad proof is a 400 with its ``msg``
    (and ``DPoP-Nonce`` when the server's nonce was missing)."""
    try:
        return await request_binding()
    except DPoPError as error:
        headers = {"DPoP-Nonce": error.nonce} if error.nonce else {}
        raise AppError(400, error.msg, headers) from None
