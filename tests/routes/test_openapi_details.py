"""/openapi.json as a client generator reads it: a server, Markdown text, what each token
route needs and may answer, a named schema for every body, /auth/verify listed once per
use with every method it answers."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import BaseModel
from quart import Quart
from quart_schema import QuartSchema, validate_request

from quart_app.routes.openapi import OpenAPIDocument
from tests.helpers.support import Client, send


async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return await response.get_json()  # type: ignore[no-any-return]


async def test_the_document_has_a_server_and_no_rest_markup(client: Client) -> None:
    doc = await document(client)
    assert doc["servers"] == [
        {"url": "/", "description": "This server (where the document was fetched)."}
    ]
    text = json.dumps(doc)
    assert "``" not in text
    assert "`REFRESH_REUSE_GRACE_SECONDS`" in doc["paths"]["/token/refresh"]["post"]["description"]


async def test_refresh_says_it_needs_a_refresh_token(client: Client) -> None:
    refresh = (await document(client))["paths"]["/token/refresh"]["post"]
    assert refresh["description"].startswith("Needs a **refresh** token")
    pair_route = await client.post("/token/refresh", headers={"Authorization": "Bearer x.y.z"})
    assert pair_route.status_code == 422  # the route is real


async def test_every_token_route_declares_503_with_retry_after(client: Client) -> None:
    doc = await document(client)
    token_routes = [
        (path, method, op)
        for path, methods in doc["paths"].items()
        for method, op in methods.items()
        if "422" in op["responses"]
    ]
    assert len(token_routes) > 5
    for path, method, op in token_routes:
        answer = op["responses"].get("503")
        assert answer is not None, (method, path)
        assert answer["headers"]["Retry-After"]["schema"]["type"] == "integer"


async def test_auth_verify_lists_head(client: Client) -> None:
    verify = (await document(client))["paths"]["/auth/verify"]
    assert "head" in verify and "get" in verify
    assert (await client.head("/auth/verify")).status_code == 401  # it answers HEAD


def references(value: Any) -> set[str]:
    """Every component name ``value`` refers to (``#/components/schemas/<name>``)."""
    if isinstance(value, dict):
        found = {
            ref.removeprefix("#/components/schemas/")
            for key, ref in value.items()
            if key == "$ref" and isinstance(ref, str)
        }
        return found.union(*(references(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(references(item) for item in value))
    return set()


async def test_every_body_is_a_named_schema(client: Client) -> None:
    doc = await document(client)
    schemas = doc["components"]["schemas"]
    bodies = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            places = [("request", op.get("requestBody", {})), *op["responses"].items()]
            for where, part in places:
                for media, content in part.get("content", {}).items():
                    bodies.append((method, path, where, media, content["schema"]))
    assert len(bodies) > 150
    for *place, schema in bodies:
        # A reference and nothing else: a generated client gets a type with this name.
        assert list(schema) == ["$ref"], place
        assert schema["$ref"].startswith("#/components/schemas/"), place
        assert schema["$ref"].removeprefix("#/components/schemas/") in schemas, place
    login = doc["paths"]["/login"]["post"]
    assert login["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Credentials"
    }
    assert login["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TokenPair"
    }
    assert schemas["Message"]["required"] == ["msg"]


async def test_every_component_is_used_and_every_reference_resolves(client: Client) -> None:
    doc = await document(client)
    schemas = doc["components"]["schemas"]
    assert references(doc) <= set(schemas)
    reached, todo = set(), references(doc["paths"])
    while todo:
        name = todo.pop()
        reached.add(name)
        todo |= references(schemas[name]) - reached
    assert reached == set(schemas)


def test_two_different_schemas_may_not_share_a_name() -> None:
    app = Quart(__name__)
    QuartSchema(app, openapi_provider_class=OpenAPIDocument)

    def named(field: str) -> type[BaseModel]:
        return type("Body", (BaseModel,), {"__annotations__": {field: str}})

    @app.post("/a")
    @validate_request(named("a"))
    async def a(data: Any) -> str:
        return ""

    @app.post("/b")
    @validate_request(named("b"))
    async def b(data: Any) -> str:
        return ""

    with pytest.raises(ValueError, match="two different schemas are named 'Body'"):
        OpenAPIDocument(app, app.extensions["QUART_SCHEMA"]).schema()


async def test_auth_verify_is_listed_once_per_use_and_says_every_method(
    client: Client,
) -> None:
    verify = (await document(client))["paths"]["/auth/verify"]
    assert sorted(verify) == ["get", "head"]
    accepted = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    assert [op["operationId"] for op in verify.values()] == ["get_verify", "head_verify"]
    for op in verify.values():
        assert op["x-accepted-methods"] == accepted
        assert all(method in op["description"] for method in accepted)
        assert "`/auth/verify/...`" in op["description"]
    # What the document says is what the route does.
    for method in accepted:
        for path in ("/auth/verify", "/auth/verify/api/items"):
            response = await send(client, path, method)
            assert response.status_code == 401, (method, path)
            assert response.headers["WWW-Authenticate"] == "Bearer"
    assert (await send(client, "/auth/verify", "TRACE")).status_code == 405


async def test_every_operation_documents_the_refusal_of_ambiguous_framing(client: Client) -> None:
    """Every route refuses a request framed by both Content-Length and Transfer-Encoding
    before its view runs (a request smuggling vector): each operation lists that 400."""
    doc = await document(client)
    operations = [
        (path, method, operation)
        for path, methods in doc["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) > 20
    framing = {"Content-Length": "0", "Transfer-Encoding": "chunked"}
    for path, method, operation in operations:
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        response = await send(client, concrete, method.upper(), data=b"", headers=framing)
        assert response.status_code == 400, (method, path)
        answer = operation["responses"].get("400")
        assert answer is not None, (method, path)
        named = answer["content"]["application/json"]["schema"]["$ref"]
        schema = doc["components"]["schemas"][named.removeprefix("#/components/schemas/")]
        message = {"$ref": "#/components/schemas/Message"}
        assert named == message["$ref"] or message in schema["anyOf"], (method, path)
        assert "Transfer-Encoding" in answer["description"], (method, path)
