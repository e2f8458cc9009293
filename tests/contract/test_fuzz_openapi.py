"""schemathesis against our own /openapi.json, in process (ASGI), every operation.

Positive and negative data (schema-valid bodies and queries, and deliberately wrong
ones), each answer checked for: no 5xx, a documented status code, a documented content
type, a body matching the documented schema, documented headers. Protected operations
get a freshly minted valid token, so the fuzzer reaches the code behind the token check
(the hostile-token corpus covers the check itself). The number of examples per
operation and kind of data is ``FUZZ_EXAMPLES``: 100 by default (``make test``), 25 in the
edit loop (``make check``).
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from quart_app import create_app
from quart_app.jwt.revocation import FAMILY_CLAIM
from tests.helpers.support import SECRET, make_config

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
#: Requests sent, per "METHOD /path status" (printed at the end: ``pytest -s``).
SENT: Counter[str] = Counter()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    """The app's own OpenAPI document, loaded in process; the app serves until the end."""
    # A per-address limit a little under what the run sends to /login, /register and
    # /token/refresh: most examples reach the views, the last ones check the 429s.
    app = create_app(make_config(Path(tmp_path_factory.mktemp("fuzz")), RATELIMIT_AUTH_LIMIT=150))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # Quart types its ASGI call with its own scope TypedDicts, schemathesis with plain dicts.
    with asgi.get_client(app) as client:  # type: ignore[arg-type]  # user 1, whom the minted tokens name
        created = client.post("/register", json={"username": "fuzz", "password": "correct-horse-9"})
        assert created.status_code == 201, created.text
    try:
        yield schema
    finally:
        asgi.shutdown_lifespans()
        total = sum(SENT.values())
        print(f"\nschemathesis: {total} requests, {len(SENT)} (operation, status) pairs")
        for key, count in sorted(SENT.items()):
            print(f"  {count:5d}  {key}")


def mint(token_type: str) -> str:
    now = int(time.time())
    claims = {
        "sub": "1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "type": token_type,
        "fresh": True,
        "username": "fuzz",
        FAMILY_CLAIM: uuid.uuid4().hex,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def send(case: schemathesis.Case[Any]) -> None:
    operation = case.operation
    headers = {}
    if operation.definition.raw.get("security") != []:
        kind = "refresh" if operation.path == "/token/refresh" else "access"
        headers["Authorization"] = f"Bearer {mint(kind)}"
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    SENT[f"{operation.method.upper()} {operation.path} {response.status_code}"] += 1


#: The operations are dealt round-robin into this many tests, so that they run side by side
#: (pytest-xdist); each operation gets both modes in one test, positive first, on one app,
#: as in a run of them all in one test.
SHARDS = 8


# schemathesis' own pytest integration (``schema.parametrize()``) reads a private
# attribute pytest 9 no longer has, so the operations are driven with plain hypothesis.
@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_operation_conforms_to_the_openapi_document(
    api: schemathesis.BaseSchema, shard: int
) -> None:
    operations = []
    for result in api.get_all_operations():
        assert isinstance(result, Ok), result  # an operation the document cannot describe
        operations.append(result.ok())
    assert len(operations) >= 10, "the document lost operations"
    operations.sort(key=lambda operation: (operation.path, operation.method))
    for operation in operations[shard::SHARDS]:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(operation, mode)


def fuzz_operation(
    operation: schemathesis.APIOperation[Any, Any, Any, Any], mode: GenerationMode
) -> None:
    """EXAMPLES cases of ``mode`` data for ``operation``, each answer checked."""
    before = sum(SENT.values())

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        database=None,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: schemathesis.Case[Any]) -> None:
        send(case)

    try:
        fuzz()
    except Unsatisfiable:
        # Nothing to make invalid (no parameters, no body): positive runs cover it.
        assert mode is GenerationMode.NEGATIVE, operation.path
        return
    except Exception as error:
        error.add_note(f"{mode.value} data for {operation.method.upper()} {operation.path}")
        raise
    assert sum(SENT.values()) > before, f"nothing sent to {operation.path}"
