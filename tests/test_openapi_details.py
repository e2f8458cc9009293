"""/openapi.json as a client generator reads it: a server, Markdown text, what each token
route needs and may answer, every method /auth/verify answers."""

from __future__ import annotations

import json
from typing import Any

from support import Client


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
