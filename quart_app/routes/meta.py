"""Liveness/readiness and the public keys."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from quart import Blueprint, current_app
from quart_schema import document_response

from ..errors import AppError
from ..jwt import get_manager
from ..schemas import JWKS, Health
from ..services import services
from .openapi import errors, public

bp = Blueprint("meta", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
@public
@document_response(Health)
@document_response(Health, 503)
async def healthz() -> tuple[dict[str, Any], int]:
    """200 when the database answers, 503 otherwise (for load balancers)."""
    try:
        await asyncio.wait_for(services().db.ping(), timeout=2.0)
    except Exception as error:
        log.warning("health check failed: %s", error)
        return {"status": "unavailable", "msg": "Database unavailable"}, 503
    return {"status": "ok"}, 200


@bp.get("/.well-known/jwks.json")
@public
@errors(404)
@document_response(JWKS)
async def jwks() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Every public key still accepted, newest first (asymmetric algorithms only)."""
    key_set = get_manager(current_app).jwks()
    if not key_set["keys"]:
        raise AppError(404, "No public keys: tokens are signed with a shared secret (HS*)")
    return key_set, 200, {"Cache-Control": "public, max-age=60"}
