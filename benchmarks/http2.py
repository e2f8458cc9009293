"""HTTP/2 next to HTTP/1.1, both over TLS, with h2load (Debian's nghttp2-client).

``python -m quart_app.serving`` with hypercorn.toml, 2 workers and a ``quart-app
dev-cert`` pair; h2load asks GET /protected with one HS256 token over 64 connections:
HTTP/2 (ALPN h2, 10 streams in flight per connection) and HTTP/1.1 (``--h1``, one
request at a time per connection), one after the other in the same run.

``python -m benchmarks.http2`` runs it alone; ``make bench`` runs it as the
``http2-tls`` scenario (registered in benchmarks/scenarios.py).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import jwt

from benchmarks.servers import QUART_BENCH_ENV, REPO, Server, TargetSpec

TARGET = "quart-serve"
PATH = "/protected"
CONNECTIONS = 64
STREAMS = 10
_RPS = re.compile(r"finished in ([\d.]+)s, ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, \d+ started, (\d+) done, \d+ succeeded, \d+ failed,"
    r" (\d+) errored, (\d+) timeout"
)
_MEAN = re.compile(r"time for request:\s+\S+\s+(\S+)\s+(\S+)")


def h2load_path() -> str | None:
    return shutil.which("h2load")


def token(secret: str) -> str:
    now = int(time.time())
    claims = {"sub": "1", "username": "bench", "type": "access", "fresh": False}
    claims.update({"iat": now, "nbf": now, "exp": now + 3600, "jti": uuid.uuid4().hex})
    return jwt.encode(claims, secret, algorithm="HS256")


class TlsServer(Server):
    """``python -m quart_app.serving`` over TLS with a fresh self-signed pair."""

    def __init__(self, workdir: Path, secret: str) -> None:
        folder = workdir / "quart-serve-tls"
        self.cert, self.key = folder / "dev-cert.pem", folder / "dev-key.pem"
        argv: tuple[str, ...] = (sys.executable, "-m", "quart_app.serving")
        argv += ("--config", "hypercorn.toml")
        argv += ("--bind", "127.0.0.1:{port}", "--certfile", str(self.cert))
        argv += ("--keyfile", str(self.key), "quart_app.asgi:app")
        spec = TargetSpec("quart-serve-tls", "quart_app serve, TLS", "quart", argv)
        super().__init__(
            TargetSpec(spec.key, spec.label, spec.kind, spec.argv, dict(QUART_BENCH_ENV)),
            workdir,
            secret,
        )
        self.base_url = f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        from quart_app.serving.devcert import write_dev_cert

        write_dev_cert(self.cert, self.key, force=True)
        env = {
            **os.environ,
            "JWT_SECRET_KEY": self.secret,
            "INSTANCE_PATH": str(self.instance),
            **self.spec.env,
        }
        argv = [arg.replace("{port}", str(self.port)) for arg in self.spec.argv]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, process_group=0
            )
        context = ssl.create_default_context(cafile=str(self.cert))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.key} exited at start-up:\n{self.log_tail()}")
            try:
                url = self.base_url + "/healthz"
                with urllib.request.urlopen(url, timeout=1, context=context) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.spec.key} did not answer /healthz in {timeout:.0f}s")


def run_h2load(url: str, bearer: str, seconds: float, *, http1: bool) -> dict[str, Any]:
    """One h2load run; req/s, requests done and succeeded, mean and max latency (ms)."""
    path = h2load_path()
    if path is None:
        raise RuntimeError("h2load is not installed (apt-get install nghttp2-client)")
    args = [path, "-c", str(CONNECTIONS), "-t", "1", "-D", f"{seconds:g}"]
    args += ["--warm-up-time", "1", "-H", f"authorization: Bearer {bearer}"]
    args += ["--h1", "-m", "1"] if http1 else ["-m", str(STREAMS)]
    proc = subprocess.run(
        [*args, url], capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    out = proc.stdout
    rps, requests, mean = _RPS.search(out), _REQUESTS.search(out), _MEAN.search(out)
    if proc.returncode != 0 or not (rps and requests):
        raise RuntimeError(f"h2load failed ({proc.returncode}): {(out + proc.stderr)[-500:]}")
    return {
        "rps": float(rps.group(2)),
        "seconds": float(rps.group(1)),
        "total": int(requests.group(1)),
        "done": int(requests.group(2)),
        # Not h2load's "succeeded": it counts an HTTP/1.1 status line without a reason
        # phrase (Hypercorn sends "HTTP/1.1 200 ", which RFC 9112 allows) as failed.
        "errors": int(requests.group(3)) + int(requests.group(4)),
        "mean_ms": _ms(mean.group(2)) if mean else 0.0,
        "max_ms": _ms(mean.group(1)) if mean else 0.0,
    }


def _ms(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def _record(scenario: str, variant: str, rnd: int, result: dict[str, Any]) -> Any:
    from benchmarks.report import Record

    return Record(
        scenario=scenario,
        target="quart-serve-tls",
        variant=variant,
        round=rnd,
        tool="h2load",
        connections=CONNECTIONS,
        seconds=result["seconds"],
        requests=result["done"],
        rps=result["rps"],
        p50_ms=result["mean_ms"],  # h2load reports no percentiles: its mean
        p99_ms=result["max_ms"],  # and its maximum
        errors=result["errors"],
        extra={"latency": f"mean {result['mean_ms']:.1f} ms, max {result['max_ms']:.1f} ms"},
    )


def _runner_measure(runner: Any, scenario: Any, variant: Any, server: Any, rnd: int) -> list[Any]:
    """Both protocols on one TLS server, started for the round and stopped after it."""
    seconds = 3.0 if runner.opts.smoke else float(runner.opts.seconds)
    tls = TlsServer(Path(tempfile.mkdtemp(dir=runner.workdir)), server.secret)
    tls.start()
    try:
        bearer = token(server.secret)
        url = tls.base_url + PATH
        h2 = run_h2load(url, bearer, seconds, http1=False)
        h1 = run_h2load(url, bearer, seconds, http1=True)
    finally:
        tls.stop()
    return [
        _record(scenario.key, f"HTTP/2, {STREAMS} streams per connection", rnd, h2),
        _record(scenario.key, "HTTP/1.1 (keep-alive)", rnd, h1),
    ]


def scenarios(opts: Any) -> list[Any]:
    """The ``http2-tls`` scenario (the runner's registration hook)."""
    from benchmarks.scenarios import Scenario, Variant

    return [
        Scenario(
            "http2-tls",
            "HTTP/2 vs HTTP/1.1 over TLS, 64 connections",
            f"h2load, 64 connections, GET {PATH} with one HS256 token, over TLS to python -m"
            f" quart_app.serving (2 workers): HTTP/2 with {STREAMS} streams in flight per"
            " connection, then HTTP/1.1 (--h1); latency columns are h2load's mean and max;"
            " errors are h2load's errored + timed out requests",
            "custom",
            (Variant(TARGET, "HTTP/2 and HTTP/1.1 over TLS", PATH),),
            CONNECTIONS,
            measure=_runner_measure,
        )
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    secret = "s" * 64
    with tempfile.TemporaryDirectory(prefix="bench-http2-") as tmp:
        tls = TlsServer(Path(tmp), secret)
        tls.start()
        try:
            url = tls.base_url + PATH
            h2 = run_h2load(url, token(secret), args.seconds, http1=False)
            h1 = run_h2load(url, token(secret), args.seconds, http1=True)
        finally:
            tls.stop()
    print("| protocol | req/s | mean | max | errors |")
    print("|---|---:|---:|---:|---:|")
    for name, r in ((f"HTTP/2 ({STREAMS} streams/conn)", h2), ("HTTP/1.1", h1)):
        failed = r["errors"]
        latency = f"{r['mean_ms']:.1f} ms | {r['max_ms']:.1f} ms"
        print(f"| {name} | {r['rps']:,.0f} | {latency} | {failed} |")
    print(f"HTTP/2 / HTTP/1.1: {h2['rps'] / h1['rps']:.2f}x")


if __name__ == "__main__":
    main()
