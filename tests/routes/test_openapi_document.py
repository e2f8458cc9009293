"""/openapi.json tells a client everything it can get back, in words, and bad JSON is named."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.helpers.support import Client


async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return await response.get_json()  # type: ignore[no-any-return]


def operations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    ]


async def test_every_operation_has_a_summary_a_tag_and_described_answers(
    client: Client,
) -> None:
    doc = await document(client)
    declared = {tag["name"] for tag in doc["tags"]}
    assert declared >= {"auth", "users", "meta"}
    assert all(tag["description"] for tag in doc["tags"])
    for name, op in operations(doc):
        assert op.get("summary"), name
        assert "\n" not in op["summary"], name
        assert op.get("tags") and set(op["tags"]) <= declared, name
        for status, answer in op["responses"].items():
            assert answer.get("description"), (name, status)
            assert "X-Request-ID" in answer.get("headers", {}), (name, status)
            if status in ("429", "503"):
                assert answer["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert (await client.get("/me")).status_code == 401  # /me is documented, and real
    me = doc["paths"]["/me"]["get"]
    assert me["summary"].startswith("The token's user")
    login = doc["paths"]["/login"]["post"]
    assert login["responses"]["401"]["description"].startswith("Not authenticated")


async def test_http_basic_is_declared_where_it_is_taken(client: Client) -> None:
    doc = await document(client)
    assert doc["components"]["securitySchemes"]["basic"] == {"scheme": "basic", "type": "http"}
    assert doc["paths"]["/login"]["post"]["security"] == [{}, {"basic": []}]
    others = [name for name, op in operations(doc) if {"basic": []} in op.get("security", [])]
    # Login takes it besides the JSON body; introspection takes only it (a client's id
    # and secret).
    assert sorted(others) == ["POST /login", "POST /oauth/introspect"]
    assert doc["paths"]["/oauth/introspect"]["post"]["security"] == [{"basic": []}]


async def test_the_document_names_no_source_files(client: Client) -> None:
    text = json.dumps(await document(client))
    assert not re.search(r"[\w/]+\.py\b", text), re.findall(r"[\w/]+\.py\b", text)


async def test_invalid_json_says_what_is_wrong_and_where(client: Client) -> None:
    cases = {
        b'{"username": "al': "unexpected end of data at line 1, column 17",
        b'{"username": "alice",}': "trailing comma is not allowed at line 1, column 21",
        b'{"username":\n  nope}': "at line 2, column 3",
        b"\xff": "not UTF-8 (byte 0xff at 0)",
    }
    for path in ("/register", "/login"):
        for body, says in cases.items():
            response = await client.post(
                path, data=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 400
            msg = (await response.get_json())["msg"]
            assert msg.startswith("Request body is not valid JSON: "), msg
            assert says in msg, (path, body, msg)
