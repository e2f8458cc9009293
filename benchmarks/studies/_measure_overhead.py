"""Per-request cost of the request log and metrics on GET /protected (not a test).

    .venv/bin/python -m benchmarks.studies._measure_overhead 2>/dev/null
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) \
        .venv/bin/python -m benchmarks.studies._measure_overhead 2>/dev/null

Times are CPU time of this process (``time.process_time``), so other work on the machine
does not inflate them. Two measurements, each the median of interleaved rounds:

* hooks: the observability hooks alone, called directly in a request context as Quart
  calls them for a successful /protected (precise: no test-client noise);
* end to end: whole requests through Quart's test client, observability fully off
  (hooks removed) against each configuration.

Log lines go to stderr: send it to /dev/null (or a file) as in production.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from quart_app import create_app
from tests.helpers.support import make_config

QUART = {"FAST_PATH": False}  # through Quart and our hooks, as every request but the next
CONFIGS: dict[str, dict[str, Any]] = {
    "request id only": {**QUART, "ACCESS_LOG": False, "METRICS_ENABLED": False},
    "+ access log (json)": {**QUART, "ACCESS_LOG": True, "LOG_FORMAT": "json"},
    "+ metrics": {**QUART, "ACCESS_LOG": False, "METRICS_ENABLED": True, "METRICS_PUBLIC": True},
    "log + metrics": {
        **QUART,
        "ACCESS_LOG": True,
        "LOG_FORMAT": "json",
        "METRICS_ENABLED": True,
        "METRICS_PUBLIC": True,
    },
}
#: GET /protected with a token seen before is answered below Quart
#: (quart_app/middleware/claims_fast_path.py), which writes the same log line and metrics itself.
FAST: dict[str, dict[str, Any]] = {
    "fast path, all off": {"ACCESS_LOG": False, "METRICS_ENABLED": False},
    "fast path, log + metrics": {
        "ACCESS_LOG": True,
        "LOG_FORMAT": "json",
        "METRICS_ENABLED": True,
        "METRICS_PUBLIC": True,
    },
}


def strip_observability(app: Any) -> None:
    app.before_request_funcs[None] = [
        f for f in app.before_request_funcs[None] if f.__name__ != "start_request"
    ]
    app.after_request_funcs[None] = [
        f for f in app.after_request_funcs[None] if f.__name__ != "finish_request"
    ]


async def build(tmp: Path, name: str, overrides: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    app = create_app(make_config(tmp / name, **overrides))
    await app.startup()
    client = app.test_client()
    await client.post("/register", json={"username": "alice", "password": "correct-horse"})
    response = await client.post("/login", json={"username": "alice", "password": "correct-horse"})
    token = (await response.get_json())["access_token"]
    return app, {"Authorization": f"Bearer {token}"}


async def hook_cost(app: Any, headers: dict[str, str], n: int) -> float:
    """Seconds per request spent in start_request + finish_request."""
    (start,) = [f for f in app.before_request_funcs[None] if f.__name__ == "start_request"]
    (finish,) = [f for f in app.after_request_funcs[None] if f.__name__ == "finish_request"]
    from quart import g

    async with app.test_request_context("/protected", headers=headers):
        # What a real request leaves behind: the matched rule and verified claims.
        from quart import request

        request.url_rule = app.url_map._rules_by_endpoint["users.protected"][0]
        response = app.response_class("{}")
        began = time.process_time()
        for _ in range(n):
            await start()
            g._jwt_extended_jwt = {"sub": "1"}
            await finish(response)
        return (time.process_time() - began) / n


async def request_cost(app: Any, headers: dict[str, str], n: int) -> float:
    client = app.test_client()
    began = time.process_time()
    for _ in range(n):
        await client.get("/protected", headers=headers)
    return (time.process_time() - began) / n


async def main() -> None:
    rounds, n_hooks, n_requests = 7, 20000, 2000
    with tempfile.TemporaryDirectory() as tmp:
        apps = {name: await build(Path(tmp), name, cfg) for name, cfg in CONFIGS.items()}
        bare = await build(Path(tmp), "bare", {**QUART, "ACCESS_LOG": False})
        fast = {name: await build(Path(tmp), name, cfg) for name, cfg in FAST.items()}
        strip_observability(bare[0])
        hooks: dict[str, list[float]] = {name: [] for name in apps}
        ends: dict[str, list[float]] = {name: [] for name in [*apps, *fast, "off"]}
        for _ in range(rounds):
            for name, (app, headers) in apps.items():
                hooks[name].append(await hook_cost(app, headers, n_hooks))
            ends["off"].append(await request_cost(*bare, n_requests))
            for name, (app, headers) in [*apps.items(), *fast.items()]:
                ends[name].append(await request_cost(app, headers, n_requests))
        off = statistics.median(ends["off"])
        print(f"whole request, observability off: {off * 1e6:.1f} us", file=sys.stdout)
        for name in apps:
            hook = statistics.median(hooks[name]) * 1e6
            end = (statistics.median(ends[name]) - off) * 1e6
            print(f"{name:22s} hooks {hook:6.1f} us   end to end +{end:6.1f} us")
        fast_off = statistics.median(ends["fast path, all off"])
        fast_on = statistics.median(ends["fast path, log + metrics"])
        print(
            f"fast path: whole request {fast_off * 1e6:.1f} us, log + metrics"
            f" +{(fast_on - fast_off) * 1e6:.1f} us"
        )
        for app, _ in [*apps.values(), *fast.values(), bare]:
            await app.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
