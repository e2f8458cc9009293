"""The gateway scenario: nginx ``auth_request`` asks a verifier about every request.

Three verifiers behind the same nginx set-up (``benchmarks/nginx.py``, docs/gateways.md's recipe
files, one nginx worker), each protecting the same upstream (an nginx ``return 200``):

* ``nginx-quart``: quart_app's ``/auth/verify`` under Hypercorn with hypercorn.toml (the
  claims fast path answers tokens seen before);
* ``nginx-flask``: the Flask baseline's equivalent (Flask-JWT-Extended, gunicorn, 2 workers);
* ``nginx-ceiling``: the same Hypercorn set-up answering ``/auth/verify`` without any
  verification (``benchmarks/peers/verify_ceiling.py``): what the server costs by itself.

The scenario is :func:`scenarios` (named in ``benchmarks.scenarios.MODULES``); the runner
knows the targets from :func:`gateway_specs`, starts them through :func:`make_server` and
measures ``GET /api/resource`` through nginx like any other ``get`` scenario; CPU per
request counts nginx and the verifier together. nginx comes from Debian's package
(``apt-get install nginx``); without it the scenario is skipped, saying so.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.nginx import Nginx, nginx_binary
from benchmarks.servers import BIN, QUART_BENCH_ENV, Server, TargetSpec, target_specs

PATH = "/api/resource"
CEILING_APP = "benchmarks.peers.verify_ceiling:create_app()"
#: nginx-fronted target -> the verifier behind it.
BACKENDS = {
    "nginx-quart": "quart-hypercorn",
    "nginx-flask": "flask-gunicorn",
    "nginx-ceiling": "quart-ceiling-hypercorn",
}


def gateway_specs() -> dict[str, TargetSpec]:
    """The verifier behind the ceiling, and the three nginx-fronted targets."""
    bind = "127.0.0.1:{port}"
    ceiling = TargetSpec(
        "quart-ceiling-hypercorn",
        "quart_app, /auth/verify answering 200 unverified, hypercorn.toml",
        "quart",
        (str(BIN / "hypercorn"), "--config", "hypercorn.toml", "--bind", bind, CEILING_APP),
        dict(QUART_BENCH_ENV),
    )
    backends = {**target_specs(), ceiling.key: ceiling}
    nginx = nginx_binary() or "/usr/sbin/nginx"
    fronts = {
        key: TargetSpec(
            key,
            f"nginx auth_request -> {backends[backend].label}",
            backends[backend].kind,
            (nginx,),
            optional=True,  # skipped, saying so, where nginx is not installed
        )
        for key, backend in BACKENDS.items()
    }
    return {ceiling.key: ceiling, **fronts}


class FrontedServer(Server):
    """A verifier (a :class:`Server`) with a private nginx in front of it."""

    def __init__(self, spec: TargetSpec, workdir: Path, secret: str) -> None:
        super().__init__(spec, workdir, secret)
        specs = {**target_specs(), **gateway_specs()}
        self.verifier = Server(specs[BACKENDS[spec.key]], workdir / spec.key, secret)
        self.nginx: Nginx | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.verifier.start(timeout)
        self.nginx = Nginx(self.instance / "nginx", f"127.0.0.1:{self.verifier.port}")
        self.nginx.start()
        self.port = self.nginx.port
        self.base_url = self.nginx.base_url

    def log_tail(self, lines: int = 30) -> str:
        nginx = self.nginx.log_tail(lines) if self.nginx is not None else ""
        return f"{self.verifier.log_tail(lines)}\n--- nginx ---\n{nginx}"

    def pids(self) -> tuple[int | None, list[int]]:
        return self.verifier.pids()

    def cpu_seconds(self) -> float:
        nginx = self.nginx.cpu_seconds() if self.nginx is not None else 0.0
        return self.verifier.cpu_seconds() + nginx

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
            self.nginx = None
        self.verifier.stop()
        self.cleanup_error = self.verifier.cleanup_error
        with contextlib.suppress(OSError):
            shutil.rmtree(self.instance / "nginx")


def scenarios(opts: Any) -> list[Any]:
    """The ``gateway-64`` scenario (the runner's registration hook)."""
    from benchmarks.scenarios import Scenario, Variant

    return [
        Scenario(
            "gateway-64",
            "nginx auth_request -> /auth/verify, 64 connections",
            f"{opts.tool}, 64 connections to nginx (one worker, deploy/nginx recipes), GET"
            f" {PATH} guarded by auth_request to each verifier; the ceiling answers"
            " /auth/verify unverified on the same Hypercorn set-up; CPU counts nginx too",
            "get",
            tuple(Variant(key, PATH, PATH) for key in BACKENDS),
            64,
        )
    ]


def gateway_checks(
    get: Callable[[str, str, str], Any], verdict: Callable[[bool], str]
) -> list[tuple[str, str, str]]:
    """The scenario's goals: at least 3x the Flask verifier, 0.9x the ceiling (req/s)."""
    quart, flask, ceiling = (get("gateway-64", key, PATH) for key in BACKENDS)
    checks: list[tuple[str, str, str]] = []
    for other, name, goal in ((flask, "the Flask verifier", 3.0), (ceiling, "the ceiling", 0.9)):
        if quart and other and other.rps:
            ratio = quart.rps / other.rps
            checks.append(
                (
                    f"nginx auth_request: quart_app ≥ {goal:g}x {name} (req/s)",
                    f"{ratio:.2f}x ({quart.rps:,.0f} vs {other.rps:,.0f} req/s)",
                    verdict(ratio >= goal),
                )
            )
    return checks


def make_server(spec: TargetSpec, workdir: Path, secret: str) -> Server:
    """The server for ``spec``: nginx-fronted for the gateway targets, else as usual."""
    if spec.key in BACKENDS:
        return FrontedServer(spec, workdir, secret)
    return Server(spec, workdir, secret)


if __name__ == "__main__":  # python -m benchmarks.gateway: the scenario alone
    from benchmarks.run import main

    sys.exit(main(["--scenarios", "gateway-64", *sys.argv[1:]]))
