"""Claims-only routes, and the ASGI fast path that answers them below Quart.

A claims-only route is answered from the verified token's claims alone: no database, no
network, no request body. Declare one with :func:`claims_route`::

    @claims_route(app, "/whoami")
    def whoami(claims: Mapping[str, Any]) -> dict[str, Any]:
        return {"sub": claims["sub"]}

It is an ordinary Quart route (``jwt_required()`` semantics, every loader and error
handler applies) and, once :class:`ClaimsFastPath` wraps the app's ASGI callable, also a
fast one: a request whose answer is certain is served by the middleware without entering
Quart (contexts, tasks, hooks, routing, the response object) when

* its method is one the route accepts, it has no body and exactly one
  ``Authorization: Bearer <JWT>`` header;
* this worker verified that very token before (the manager's verified-token cache), it
  has not expired, it is an access token and the in-memory revocation mirror does not
  revoke it;
* no loader takes part in verification (blocklist, claims check, user lookup), tokens
  are read from headers only, and the app's own ``enabled`` condition holds.

Anything else (a first sight of a token, any error, a revoked token) goes to Quart
unchanged, which gives the exact Flask-JWT-Extended answers and fills the cache. The
middleware sends what Quart would send for the view's value: the same status, body and
headers, plus whatever the app adds to every response (its ``headers`` hook), and reports
each answer to its ``observe`` hook (logs, metrics).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from time import perf_counter
from typing import Any, TypeVar, cast

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)
from quart import Blueprint, Quart, current_app
from quart.blueprints import BlueprintSetupState

from .context import get_jwt
from .decorators import verify_jwt_in_request
from .dpop import get_dpop
from .extension import get_manager

ClaimsView = Callable[[Mapping[str, Any]], Any]
V = TypeVar("V", bound=ClaimsView)
#: Extra headers for every fast answer, e.g. a request id: ``headers(scope) -> [(name, value)]``.
HeadersHook = Callable[[HTTPScope], Iterable[tuple[bytes, bytes]]]
#: Called after each fast answer: ``observe(scope, rule, claims, status, seconds)``, where
#: ``rule`` is the Quart rule that would have answered (a metrics label of bounded count).
ObserveHook = Callable[[HTTPScope, str, Mapping[str, Any], int, float], None]

#: ``target(get_header, method, scheme, host, path, route) -> (htm, htu)``: what a DPoP
#: proof sent to the route must name (default: the request itself).
ProofTarget = Callable[[Callable[[str], "str | None"], str, str, str, str, str], tuple[str, str]]

REGISTRY_KEY = "quart_app.jwt.claims_routes"
_BEARER = re.compile(rb"(Bearer|DPoP) ([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")


@dataclass(frozen=True, slots=True)
class ClaimsResponse:
    """A claims view's answer other than a JSON body: a status, headers and raw bytes.

    ``content_type=None`` sends no ``Content-Type`` at all (an empty answer, as
    forward-auth gateways expect).
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimsRoute:
    path: str
    view: ClaimsView
    #: Methods the fast path may answer (upper case).
    methods: frozenset[str]
    #: Whether every path below ``path`` (``path/...``) is answered too.
    subpaths: bool = False
    #: What DPoP proofs must name here (None: the request itself).
    target: ProofTarget | None = None

    def rule(self, path: str) -> str:
        """The Quart rule serving ``path``: this one, or the one for the paths below it."""
        return self.path if path == self.path else f"{self.path.rstrip('/')}/<path:subpath>"


def claims_routes(app: Quart) -> dict[str, ClaimsRoute]:
    """This app's claims-only routes by path (filled as routes and blueprints register)."""
    routes: dict[str, ClaimsRoute] = app.extensions.setdefault(REGISTRY_KEY, {})
    return routes


def register_claims_route(
    app: Quart,
    path: str,
    view: ClaimsView,
    methods: Iterable[str] = ("GET",),
    subpaths: bool = False,
    target: ProofTarget | None = None,
) -> None:
    """Let the fast path answer ``path`` with ``view``; the Quart route must exist too and
    answer the same (:func:`claims_route` does both)."""
    _fixed(path)
    methods = frozenset(m.upper() for m in methods)
    claims_routes(app)[path] = ClaimsRoute(path, view, methods, subpaths, target)


def find_route(routes: Mapping[str, ClaimsRoute], path: str) -> ClaimsRoute | None:
    """The route answering ``path``: itself, or the nearest parent with ``subpaths``."""
    route = routes.get(path)
    if route is not None:
        return route
    while "/" in path[1:]:
        path = path[: path.rindex("/")]
        route = routes.get(path)
        if route is not None:
            return route if route.subpaths else None
    return None


def _fixed(path: str) -> None:
    if "<" in path:
        raise ValueError(f"a claims-only route is a fixed path, not a pattern: {path!r}")


async def _verified_access_claims() -> Mapping[str, Any]:
    await verify_jwt_in_request()
    return get_jwt()


def claims_route(
    target: Quart | Blueprint,
    rule: str,
    *,
    methods: Iterable[str] = ("GET",),
    verify: Callable[[], Awaitable[Mapping[str, Any]]] | None = None,
    subpaths: bool = False,
    proof_target: ProofTarget | None = None,
    **options: Any,
) -> Callable[[V], V]:
    """Declare a route answered by ``view(claims)`` alone, on an app or a blueprint.

    ``view`` returns a JSON-serialisable value (sent as the app's JSON response) or a
    :class:`ClaimsResponse`. ``verify`` checks the request and returns its claims
    (default: ``jwt_required()``'s checks for an access token). With ``subpaths`` every
    path below ``rule`` is the same route (``rule/anything``). ``options`` go to
    ``add_url_rule`` (``endpoint=``...). The view itself is returned unchanged, so the
    decorator stacks with documentation decorators applied below it.
    """
    _fixed(rule)
    methods = tuple(m.upper() for m in methods)
    check = verify or _verified_access_claims

    def decorator(view: V) -> V:
        @wraps(view)
        async def endpoint(**_: Any) -> Any:
            return await to_response(current_app, view(await check()))

        options.setdefault("endpoint", view.__name__)
        target.add_url_rule(rule, view_func=endpoint, methods=list(methods), **options)
        if subpaths:

            async def below(**_: Any) -> Any:
                return await endpoint()

            named = {**options, "endpoint": f"{options['endpoint']}_subpath"}
            target.add_url_rule(
                f"{rule.rstrip('/')}/<path:subpath>",
                view_func=_undocumented(below),
                methods=list(methods),
                **named,
            )
        if isinstance(target, Blueprint):

            def record(state: BlueprintSetupState) -> None:
                prefix = state.url_prefix
                path = f"{prefix.rstrip('/')}/{rule.lstrip('/')}" if prefix else rule
                register_claims_route(
                    cast(Quart, state.app), path, view, methods, subpaths, proof_target
                )

            target.record(record)
        else:
            register_claims_route(target, rule, view, methods, subpaths, proof_target)
        return view

    return decorator


def _undocumented(func: Callable[..., Any]) -> Callable[..., Any]:
    """Keep a route out of quart-schema's OpenAPI document, when quart-schema is there."""
    try:  # quart-schema is optional: the extension runs without it
        from quart_schema import hide
    except ImportError:
        return func
    return hide(func)


def _json_body(app: Quart, value: Any) -> bytes:
    """What ``app.json.response(value)`` puts in its body, without a Response object."""
    provider = app.json
    compact = getattr(provider, "compact", None)
    if (compact is None and app.debug) or compact is False:
        text = provider.dumps(value, indent=2)
    else:
        text = provider.dumps(value, separators=(",", ":"))
    return f"{text}\n".encode()


def render(app: Quart, value: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A view's value as ``(status, headers, body)``, exactly as Quart would send it."""
    if isinstance(value, ClaimsResponse):
        headers = [
            (name.lower().encode(), v.encode("latin-1")) for name, v in value.headers.items()
        ]
        if value.content_type is not None:
            headers.insert(0, (b"content-type", value.content_type.encode("latin-1")))
        body = value.body
        status = value.status
    else:
        mimetype = str(getattr(app.json, "mimetype", "application/json"))
        headers = [(b"content-type", mimetype.encode("latin-1"))]
        body = _json_body(app, value)
        status = 200
    headers.append((b"content-length", str(len(body)).encode()))
    return status, headers, body


async def to_response(app: Quart, value: Any) -> Any:
    """A view's value as Quart's response (the fast path sends the same bytes)."""
    if not isinstance(value, ClaimsResponse):
        return await app.make_response(value)
    response = app.response_class(value.body, status=value.status, headers=dict(value.headers))
    if value.content_type is None:
        del response.headers["Content-Type"]
    else:
        response.headers["Content-Type"] = value.content_type
    return response


class ClaimsFastPath:
    """ASGI middleware serving :func:`claims_route` routes for cached tokens (module doc)."""

    def __init__(
        self,
        app: ASGIFramework,
        quart_app: Quart,
        *,
        enabled: Callable[[], bool] | None = None,
        headers: HeadersHook | None = None,
        observe: ObserveHook | None = None,
    ) -> None:
        self.app = app
        self.quart_app = quart_app
        self.routes = claims_routes(quart_app)
        self._enabled = enabled
        self._headers = headers
        self._observe = observe
        self._ready: bool | None = None
        self._ready_for = -1

    def usable(self) -> bool:
        """Decided on the first request, again after a ``JWT_*`` setting or a loader changed."""
        manager = get_manager(self.quart_app)
        try:
            generation = manager.generation
            if self._ready is None or generation != self._ready_for:
                self._ready_for = generation
                config = manager.config
                self._ready = bool(
                    (self._enabled is None or self._enabled())
                    and tuple(config.token_location) == ("headers",)
                    and config.header_name == "Authorization"
                    and config.header_type == "Bearer"
                    and config.verified_cache_size
                    and not manager.has_custom_checks
                )
        except RuntimeError:
            # A bad setting: Quart's path raises it where FJE would.
            self._ready = False
        return self._ready

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            route = find_route(self.routes, scope["path"])
            if route is not None and scope["method"] in route.methods and self.usable():
                started = perf_counter()
                found = self._claims(scope)
                if found is not None and (
                    found[2] is None or await self._proof_holds(scope, route, *found)
                ):
                    await self._answer(scope, send, route, found[0], started)
                    return
        await self.app(scope, receive, send)

    def _claims(self, scope: HTTPScope) -> tuple[Mapping[str, Any], str, list[str] | None] | None:
        """The claims of a request whose answer is certain (but for a DPoP proof, whose
        values come third: None for a bearer token), or None: let Quart answer."""
        token: bytes | None = None
        proofs: list[str] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                if token is not None:
                    return None
                token = value
            elif name == b"dpop":
                proofs.append(value.decode("latin-1"))
            elif (name == b"content-length" and value.strip() != b"0") or (
                name == b"transfer-encoding"
            ):
                return None
        match = _BEARER.fullmatch(token.strip()) if token is not None else None
        if match is None:
            return None
        manager = get_manager(self.quart_app)
        encoded = match.group(2).decode("ascii")
        verified = manager.cached(encoded)
        if verified is None:
            return None
        claims = verified[1]
        if claims.get("type") == "refresh":
            return None
        # A bound token needs the DPoP scheme and a bearer token the Bearer one: Quart
        # answers any mismatch (and a malformed cnf) with its challenge.
        is_dpop = match.group(1) == b"DPoP"
        cnf = claims.get("cnf")
        if is_dpop != (cnf is not None) or (is_dpop and not isinstance(cnf, Mapping)):
            return None
        revocations = manager.revocations
        if revocations is not None and revocations.is_revoked(
            claims, manager.config.identity_claim_key
        ):
            return None
        return claims, encoded, proofs if is_dpop else None

    async def _proof_holds(
        self,
        scope: HTTPScope,
        route: ClaimsRoute,
        claims: Mapping[str, Any],
        encoded: str,
        proofs: list[str] | None,
    ) -> bool:
        """The DPoP proof of a bound token, checked and used up (False: let Quart answer;
        a replay then gets Quart's refusal, as the proof id is recorded already)."""
        dpop = get_dpop(self.quart_app)
        headers = scope["headers"]

        def get(name: str) -> str | None:
            wanted = name.encode("latin-1")
            for key, value in headers:
                if key == wanted:
                    return value.decode("latin-1")
            return None

        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1").split("?", 1)[0]
        host = get("host") or ""
        try:
            if route.target is None:
                method, url = scope["method"], dpop.htu(scope["scheme"], host, path)
            else:
                method, url = route.target(
                    get, scope["method"], scope["scheme"], host, path, route.path
                )
            proof = dpop.verify(proofs or [], method, url, encoded)
            if proof.jkt != claims["cnf"].get("jkt"):
                return False
            await dpop.accept_once(proof)
        except Exception:  # a refusal or a store failure: Quart answers either
            return False
        return True

    async def _answer(
        self,
        scope: HTTPScope,
        send: ASGISendCallable,
        route: ClaimsRoute,
        claims: Mapping[str, Any],
        started: float,
    ) -> None:
        status, headers, body = render(self.quart_app, route.view(claims))
        if scope["method"] == "HEAD":
            body = b""  # as Quart: the headers of a GET, no body
        if self._headers is not None:
            headers.extend(self._headers(scope))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": headers,
                "trailers": False,
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
        if self._observe is not None:
            rule = route.rule(scope["path"])
            self._observe(scope, rule, claims, status, perf_counter() - started)
