"""``GET /account``: the account page a deployment's users get on day one.

Served by the service itself from files installed with it (no CDN), with no inline
script and a Content-Security-Policy that allows nothing from elsewhere: log in
(password, then a code when asked, or a passkey), see and end sessions, turn TOTP on
(the QR code of its otpauth URI is rendered here, by segno, as an SVG data URI), see the
recovery codes once, add and remove passkeys, see recent security events. The page
holds its tokens in memory only (a reload logs out).
"""

from __future__ import annotations

import base64
from pathlib import Path

import segno
from pydantic import BaseModel, Field
from quart import Blueprint, Response, send_from_directory
from quart_schema import document_response, hide, validate_request
from werkzeug.exceptions import NotFound

from ...jwt import jwt_required
from ...schemas import Strict
from ..openapi import TOKEN_ERRORS, errors

bp = Blueprint("account", __name__)

HERE = Path(__file__).parent
ASSETS = {"account.js", "account.css"}
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


@bp.get("/account")
@hide
async def page() -> Response:
    response = await send_from_directory(HERE, "account.html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/account/static/<name>")
@hide
async def static(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound()
    response = await send_from_directory(HERE, name)
    response.cache_control.no_cache = True
    return response


class QrIn(Strict):
    text: str = Field(min_length=1, max_length=1024, examples=["otpauth://totp/..."])


class QrOut(BaseModel):
    data_uri: str = Field(description="The QR code as an SVG data: URI, for an <img>.")


@bp.post("/account/qr")
@errors(400, *TOKEN_ERRORS, 413)
@jwt_required()
@validate_request(QrIn)
@document_response(QrOut)
async def qr(data: QrIn) -> dict[str, str]:
    """Render ``text`` (the otpauth URI of a TOTP enrolment) as a QR code, here rather
    than by a third-party service that would see the secret."""
    code = segno.make(data.text, error="m")
    svg = code.svg_inline(scale=5, border=2, dark="#000", light="#fff")
    encoded = base64.b64encode(svg.encode()).decode()
    return {"data_uri": f"data:image/svg+xml;base64,{encoded}"}
