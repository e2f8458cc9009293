"""Forward authentication for gateways: ``/auth/verify`` (nginx, Traefik, Envoy)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field
from quart import Blueprint
from quart_schema import document_response

from ..jwt.claims_routes import ClaimsResponse
from ..jwt.forward_auth import forward_auth_route, subject_headers
from .openapi import EmptyBody, documented_methods, errors

bp = Blueprint("gateway", __name__)


class SubjectHeadersDoc(BaseModel):
    subject: str = Field(alias="X-Auth-Subject", description="The token's subject (sub)")
    username: str = Field(alias="X-Auth-Username", description="The username claim")
    token_id: str = Field(alias="X-Auth-Token-Id", description="The token's id (jti)")
    expires: str = Field(alias="X-Auth-Expires", description="exp, in integer seconds")


@forward_auth_route(bp, "/auth/verify", endpoint="verify")
@documented_methods(
    "GET",
    "HEAD",
    note="A gateway forwards the method of the request it checks: every method (GET, HEAD,"
    " POST, PUT, PATCH, DELETE, OPTIONS, listed in `x-accepted-methods`) and every path"
    " below this one (`/auth/verify/...`) is answered alike. Only GET and HEAD are listed"
    " as operations.",
)
@errors(401)
@document_response(EmptyBody, 200, SubjectHeadersDoc)
def verify(claims: Mapping[str, Any]) -> ClaimsResponse:
    """Whether the request's access token is good, for a gateway's forward auth.

    200 with an empty body and the headers ``X-Auth-Subject``,
    ``X-Auth-Username``, ``X-Auth-Token-Id`` and ``X-Auth-Expires``; every failure is 401
    with the ``msg`` and an RFC 6750 ``WWW-Authenticate`` challenge.
    """
    return subject_headers(claims)
