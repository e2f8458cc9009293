"""Does the time /password/forgot takes tell whether the account exists?

Against a real server (Hypercorn, two workers) that mails through a real SMTP server
(aiosmtpd on loopback, started here), each of ``--tries`` pairs asks for a reset of a
registered account with a verified address and of an unknown username of the same
length, in random order, one after the other on one keep-alive connection, and keeps
the difference of the two answer times. Each registered account is asked for once (its
three-an-hour limit is not what is measured). Prints both medians, the median paired
difference with a bootstrap 95% interval, in how many pairs the registered account was
slower (about half when timing tells nothing), and how many reset mails arrived::

    .venv/bin/python -m benchmarks.studies._forgot_timing            # SQLite
    .venv/bin/python -m benchmarks.studies._forgot_timing --target quart-hypercorn-pg
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import secrets
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from benchmarks.servers import Server, free_port, target_specs
from benchmarks.studies._paired import print_pairs, time_pairs

PASSWORD = "correct horse battery"
TOKEN = re.compile(rb"token=([A-Za-z0-9_-]+)")


class Sink:
    """Counts the mails it receives, keeping the verification tokens."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.subjects: list[str] = []
        self.tokens: dict[str, str] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or envelope.content
        subject = next(
            (line[9:].decode() for line in content.splitlines() if line.startswith(b"Subject: ")),
            "",
        )
        with self.lock:
            self.subjects.append(subject)
            found = TOKEN.search(content)
            if found and subject == "Confirm your email address":
                self.tokens[envelope.rcpt_tos[0]] = found.group(1).decode()
        return "250 OK"

    def count(self, subject: str) -> int:
        with self.lock:
            return self.subjects.count(subject)


async def _wait(predicate: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("the mails did not arrive")
        await asyncio.sleep(0.1)


async def _measure(
    url: str, tries: int, sink: Sink, rng: random.Random, gap: float
) -> dict[str, float]:
    known = [f"known{n:04d}" for n in range(tries)]
    ghosts = [f"ghost{n:04d}" for n in range(tries)]
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        for start in range(0, tries, 8):
            batch = known[start : start + 8]
            created = await asyncio.gather(
                *(
                    http.post(
                        "/register",
                        json={"username": name, "password": PASSWORD, "email": f"{name}@x.test"},
                    )
                    for name in batch
                )
            )
            assert all(r.status_code == 201 for r in created), created[0].text
        await _wait(lambda: len(sink.tokens) == tries)
        for token in list(sink.tokens.values()):
            assert (await http.post("/email/verify", json={"token": token})).status_code == 200
        for n in range(10):  # warm up both paths
            await http.post("/password/forgot", json={"username": f"warmup{n:04d}"})
        # After each request, let the background work (for a registered account: a
        # transaction and a mail) finish before the next one is timed, or it lands on it.
        result = await time_pairs(
            known,
            ghosts,
            lambda username: http.post("/password/forgot", json={"username": username}),
            status=202,
            rng=rng,
            gap=gap,
        )
    await _wait(lambda: sink.count("Reset your password") >= tries)
    return {**result, "mails": sink.count("Reset your password")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=200, help="pairs (default 200)")
    parser.add_argument("--target", default="quart-hypercorn", help="a benchmarks target key")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--gap",
        type=float,
        default=0.1,
        help="seconds between two requests (0: back to back, the background work of one"
        " then overlaps the next)",
    )
    args = parser.parse_args()
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    spec = target_specs()[args.target]
    env = {
        **spec.env,
        "SMTP_URL": f"smtp://127.0.0.1:{port}",
        "EMAIL_VERIFY_URL": "https://app.test/verify?token={token}",
        "PASSWORD_RESET_URL": "https://app.test/reset?token={token}",
        "MAIL_POLL_INTERVAL": "0.5",
        "RATELIMIT_AUTH_LIMIT": "100000",
    }
    spec = replace(spec, env=env)
    rng = random.Random(args.seed)
    try:
        with tempfile.TemporaryDirectory(prefix="forgot-timing-") as workdir:
            server = Server(spec, Path(workdir), secrets.token_hex(32))
            server.start()
            try:
                result = asyncio.run(_measure(server.base_url, args.tries, sink, rng, args.gap))
            finally:
                server.stop()
    finally:
        controller.stop()
    print(f"{spec.label}: {args.tries} pairs of POST /password/forgot, {args.gap:g} s apart")
    print_pairs(result, args.tries, "registered account (verified address)")
    print(f"  reset mails received by the SMTP server: {int(result['mails'])}")


if __name__ == "__main__":
    main()
