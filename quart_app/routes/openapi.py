"""OpenAPI for the error answers too: the document says every status a client can get.

quart-schema documents only what a view declares: without these, /openapi.json would list
the success of each route and nothing else, and public routes would inherit the app-wide
bearer requirement. Both are checked by the schemathesis run in tests/security.

:class:`OpenAPIDocument` also gives every operation a tag (its blueprint) and a one-line
summary (the docstring's first paragraph), every answer a description (by status for the
``{"msg"}`` ones) and the headers every client may rely on: ``X-Request-ID`` on each
answer, ``Retry-After`` on 429 and 503. Every request and response body is a named
schema under ``components`` (quart-schema writes a view's own model inline, which a
client generator turns into an anonymous type), and a view that answers more methods
than a client needs lists only those (:func:`documented_methods`).
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from quart_schema import document_response, security_scheme
from quart_schema.openapi import OpenAPIProvider
from werkzeug.routing import Rule

from ..schemas import Message

F = TypeVar("F", bound=Callable[..., Any])

#: A token is missing, expired, revoked (401) or malformed, badly signed, of the wrong
#: type (422).
TOKEN_ERRORS = (401, 422)
#: The database is busy or unreachable (with Retry-After).
UNAVAILABLE = 503


def errors(*codes: int) -> Callable[[F], F]:
    """Document ``{"msg": ...}`` answers with these status codes."""

    def decorator(func: F) -> F:
        for code in codes:
            func = document_response(Message, code)(func)
        return func

    return decorator


def documented_methods(*methods: str, note: str) -> Callable[[F], F]:
    """Document only ``methods`` of a route that answers more (the rest alike): each
    operation says ``note`` and lists every method the route answers under
    ``x-accepted-methods``. HEAD, which quart-schema never lists, is documented as GET."""

    def decorator(func: F) -> F:
        setattr(func, _DOCUMENTED_METHODS, (tuple(m.upper() for m in methods), note))
        return func

    return decorator


def public(func: F) -> F:
    """No token needed (overrides the app-wide bearer requirement)."""
    return security_scheme([])(func)


def basic_or_body(func: F) -> F:
    """No token: credentials in the JSON body, or HTTP Basic (the ``basic`` scheme)."""
    return security_scheme([{}, {"basic": []}])(func)


#: Tag of each blueprint's operations, with what the tag groups.
TAGS = {
    "auth": ("auth", "Accounts and tokens: register, log in, refresh, log out."),
    "users": ("users", "Routes for a logged-in user."),
    "sessions": ("sessions", "Your sessions (one per login) and your security events."),
    "admin": ("admin", "Administration: users' sessions, disabling accounts, every event."),
    "meta": ("meta", "Health checks for load balancers, and the keys that verify tokens."),
    "observability": ("meta", ""),
    "gateway": ("gateway", "Forward authentication for nginx, Traefik and Envoy."),
    "oauth": ("oauth", "Introspection, revocation and metadata for other services."),
    "recovery": ("recovery", "Password reset by mail, and the account's email address."),
    "email": ("recovery", ""),
    "mfa": ("mfa", "Second factors: TOTP, recovery codes, and the login's second step."),
    "webauthn": ("webauthn", "Passkeys (WebAuthn): registration, login, listing."),
    "account": ("account", "What the /account page needs beyond the API."),
}
#: What a ``{"msg"}`` answer of each status means, whatever the route.
STATUS = {
    400: "Invalid request: the body is not JSON, or a field or query parameter is missing"
    " or invalid; `msg` names it. Or, before any view runs, the request is framed by both"
    " `Content-Length` and `Transfer-Encoding`, and the connection is closed.",
    401: "Not authenticated: bad username or password, or a token that is missing, expired"
    " or revoked; `msg` says which (Flask-JWT-Extended's texts).",
    403: "Not allowed for these credentials.",
    404: "Not found.",
    409: "Conflict: the username or email address is taken (without regard to case), or"
    " the second factor is in another state; `msg` says which.",
    413: "Request body larger than the configured limit (MAX_CONTENT_LENGTH).",
    415: "Unsupported media type: a JSON body must be sent as `application/json`.",
    422: "Malformed token, bad signature, or a token of the wrong type; `msg` says which.",
    429: "Too many requests from this address, or failed logins on this account; retry"
    " after `Retry-After` seconds.",
    503: "The database (or Redis) is unavailable or busy; retry after `Retry-After` seconds.",
}
REQUEST_ID = {
    "description": "This request's id (the client's X-Request-ID when it sent a sane one),"
    " also in the server's log line for it.",
    "schema": {"type": "string"},
}
RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 1},
}
#: What any operation answers to a request framed by both Content-Length and
#: Transfer-Encoding (quart_app/middleware/connection.py), before any view runs.
AMBIGUOUS_FRAMING = (
    "Refused before any view runs: the request is framed by both `Content-Length` and"
    " `Transfer-Encoding` (a request smuggling vector), and the connection is closed."
)


_DOCUMENTED_METHODS = "_documented_methods"
#: Where a named schema is referenced from.
COMPONENT = "#/components/schemas/"
#: HTTP methods in the order the document lists them.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class EmptyBody(BaseModel):
    """No body; what the answer says is in its headers."""


class OpenAPIDocument(OpenAPIProvider):
    """quart-schema's document, where an :class:`EmptyBody` answer has no content at all
    and its headers model documents response headers (quart-schema files those under
    ``content``, where no header belongs), completed as the module docstring says."""

    def schema(self) -> dict[str, Any]:
        self._named: dict[str, dict[str, Any]] = {}
        document: dict[str, Any] = super().schema()
        document.setdefault("servers", [SERVER])
        _complete_operations(document["paths"], document["components"]["schemas"])
        operations = [op for path in document["paths"].values() for op in path.values()]
        used = {tag for operation in operations for tag in operation.get("tags", ())}
        document["tags"] = [
            {"name": name, "description": text}
            for name, text in TAGS.values()
            if name in used and text
        ]
        return _markdown(document)  # type: ignore[no-any-return]

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        for name, definition in components.items():
            self._name(name, definition)
        func = self._app.view_functions[rule.endpoint]
        blueprint = rule.endpoint.rsplit(".", 1)[0] if "." in rule.endpoint else ""
        summary, description = _summary(func)
        for path in paths.values():
            for method, operation in list(path.items()):
                operation = copy.deepcopy(operation)  # quart-schema shares them per method
                operation.setdefault("tags", [TAGS.get(blueprint, ("other", ""))[0]])
                if summary:
                    operation["summary"] = summary
                    operation["description"] = description
                responses = operation["responses"]
                content = operation.get("requestBody", {}).get("content", {})
                bad = next((key for key in responses if str(key) == "400"), None)
                if "application/json" in content and bad is not None:
                    # Every JSON body is refused with 415 when not sent as JSON.
                    unsupported = 415 if isinstance(bad, int) else "415"
                    answer = {**copy.deepcopy(responses[bad]), "description": ""}
                    responses.setdefault(unsupported, answer)
                for status, answer in operation["responses"].items():
                    if not answer.get("description") or answer["description"] == _MESSAGE_DOC:
                        answer["description"] = STATUS.get(int(status), "Error; see `msg`.")
                    headers = answer.setdefault("headers", {})
                    headers.setdefault("X-Request-ID", REQUEST_ID)
                    if int(status) in (429, 503):
                        headers.setdefault("Retry-After", RETRY_AFTER)
                path[method] = operation
        only = getattr(func, _DOCUMENTED_METHODS, None)
        if only is not None:
            paths = {path: self._only(path, ops, rule, *only) for path, ops in paths.items()}
        return paths, components

    def build_request_body(
        self, model: type[Any], source: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        body, definitions = super().build_request_body(model, source)
        return self._by_name(model, body, definitions)

    def build_response_object(
        self, model: type[Any], headers_model: type[Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if model is not EmptyBody:
            answer, definitions = super().build_response_object(model, headers_model)
            return self._by_name(model, answer, definitions)
        response: dict[str, Any] = {"description": EmptyBody.__doc__}
        if headers_model is not None:
            fields = headers_model.model_fields
            response["headers"] = {
                (field.alias or name): {
                    "description": field.description or "",
                    "schema": {"type": "string"},
                }
                for name, field in fields.items()
            }
        return response, {}

    def _only(
        self, path: str, ops: dict[str, Any], rule: Rule, methods: tuple[str, ...], note: str
    ) -> dict[str, Any]:
        """The operations of ``methods`` only (HEAD as GET), each with ``note`` and every
        method the route answers."""
        answered = [m for m in METHODS if m in (rule.methods or ())]
        func = self._app.view_functions[rule.endpoint]
        kept: dict[str, Any] = {}
        for method in methods:
            operation = copy.deepcopy(ops.get(method.lower(), ops["get"]))
            operation_id = self.operation_id(method, path, func)
            if operation_id is not None:
                operation["operationId"] = operation_id
            operation["description"] = f"{note}\n\n{operation.get('description', '')}".strip()
            operation["x-accepted-methods"] = answered
            kept[method.lower()] = operation
        return kept

    def _by_name(
        self, model: type[Any], body: dict[str, Any], definitions: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``body`` with its model's schema moved to ``definitions`` under the model's name."""
        for media in body["content"].values():
            schema = media.get("schema")
            if schema is None or "$ref" in schema:
                continue
            name = model.__name__
            definitions = {**definitions, name: self._name(name, schema)}
            media["schema"] = {"$ref": f"{COMPONENT}{name}"}
        return body, definitions

    def _name(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Record ``schema`` as ``name``: two different schemas may not share a name."""
        known = self._named.setdefault(name, schema)
        if known != schema:
            raise ValueError(f"two different schemas are named {name!r} in the OpenAPI document")
        return schema


_MESSAGE_DOC = inspect.getdoc(Message)

#: The document's server: its paths are relative to wherever it is served from.
SERVER = {"url": "/", "description": "This server (where the document was fetched)."}
#: What an operation needs that the app-wide bearer requirement does not say.
NEEDS = {
    ("/token/refresh", "post"): "Needs a **refresh** token: `Authorization: Bearer"
    " <refresh_token>` (an access token is refused with 422 `Only refresh tokens are"
    " allowed`).",
}
#: Operations whose credentials are HTTP Basic (a client id and secret), not a token.
BASIC = {("/oauth/introspect", "post")}


def _complete_operations(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    for path, methods in paths.items():
        for method, operation in methods.items():
            note = NEEDS.get((path, method))
            if note and note not in operation.get("description", ""):
                operation["description"] = f"{note}\n\n{operation.get('description', '')}".strip()
            if (path, method) in BASIC:
                operation["security"] = [{"basic": []}]
            answers = operation.get("responses", {})
            codes = {str(code): code for code in answers}  # quart-schema's may be ints
            _add_ambiguous_framing(answers, codes.get("400"), schemas)
            if "422" in codes and "503" not in codes:
                # Every token check may find this worker without its revocations yet.
                unavailable = copy.deepcopy(answers[codes["422"]])
                unavailable["description"] = STATUS[503]
                unavailable.setdefault("headers", {})["Retry-After"] = RETRY_AFTER
                answers["503"] = unavailable


def _add_ambiguous_framing(answers: dict[Any, Any], status: Any, schemas: dict[str, Any]) -> None:
    """Every operation may answer 400 with a ``{"msg"}`` body (:data:`AMBIGUOUS_FRAMING`):
    added where the operation has no 400; where its 400 has a body of another kind, that
    body becomes a named choice of the two."""
    message = {"$ref": COMPONENT + "Message"}
    if status is None:
        answers["400"] = {
            "description": AMBIGUOUS_FRAMING,
            "content": {"application/json": {"schema": message}},
            "headers": {"X-Request-ID": REQUEST_ID},
        }
        return
    answer = answers[status]
    media = answer.setdefault("content", {}).setdefault("application/json", {})
    schema = media.get("schema", message)
    if schema == message or "$ref" not in schema:
        return
    own = schema["$ref"].removeprefix(COMPONENT)
    name = f"{own}OrMessage"
    schemas[name] = {
        "anyOf": [schema, message],
        "description": f"{own}, or a `msg` when refused before any view ran.",
    }
    media["schema"] = {"$ref": COMPONENT + name}
    answer["description"] = f"{answer.get('description', '')} {AMBIGUOUS_FRAMING}".strip()


def _markdown(value: Any) -> Any:
    """Docstrings are written in reST: ``code`` becomes Markdown's `code` in the document."""
    if isinstance(value, str):
        return re.sub(r"``([^`]+)``", r"`\1`", value)
    if isinstance(value, dict):
        return {key: _markdown(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_markdown(item) for item in value]
    return value


def _summary(func: Callable[..., Any]) -> tuple[str, str]:
    """The docstring's first paragraph as one line, and the rest."""
    doc = inspect.getdoc(func) or ""
    first, _, rest = doc.partition("\n\n")
    return re.sub(r"\s+", " ", first).strip(), rest.strip()
