"""``python -m quart_app.serving``: the supervisor, against live Hypercorn workers."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import pytest

from benchmarks.studies._recording import Recording, record
from quart_app.serving.listeners import listening_pids
from tests.helpers import held_start
from tests.helpers.live import ROOT, Server, free_port

pytestmark = pytest.mark.live

SERVE = [sys.executable, "-m", "quart_app.serving"]
CREDENTIALS = {"username": "alice", "password": "correct-horse"}
#: SIGTERMs sent under load by the no-loss test (the benchmark sends 10).
SIGTERM_ROUNDS = 3


def listening_sockets(port: int) -> list[str]:
    """The LISTEN sockets on ``port``, one line each (from ss)."""
    out = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def wait_for(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s")
        time.sleep(0.05)


def serving_workers(server: Server) -> list[int]:
    """Pids of the workers that logged "Running on" (once serving), in order."""
    return [int(p) for p in re.findall(r"\[(\d+)\] \[INFO\] Running on", log(server))]


def log(server: Server) -> str:
    return server.log_path.read_text(errors="replace")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0]
    except (OSError, IndexError):
        return "zombie"


def token_for(server: Server) -> str:
    assert httpx.post(f"{server.url}/register", json=CREDENTIALS, timeout=60).status_code == 201
    return str(
        httpx.post(f"{server.url}/login", json=CREDENTIALS, timeout=60).json()["access_token"]
    )


async def under_load(server: Server, token: str, action: Callable[[], object]) -> Recording:
    """Run ``action`` (in a thread) while 30 recording keep-alive clients ask /protected."""
    stop = asyncio.Event()
    recording = Recording()
    load = asyncio.create_task(
        record(
            "127.0.0.1",
            server.port,
            "/protected",
            stop,
            connections=30,
            headers={"Authorization": f"Bearer {token}"},
            recording=recording,
        )
    )
    deadline = time.monotonic() + 60
    while recording.answered < 60 and time.monotonic() < deadline:  # every connection busy
        await asyncio.sleep(0.05)
    await asyncio.to_thread(action)
    await asyncio.sleep(0.3)
    stop.set()
    return await load


def test_each_worker_has_its_own_socket_and_stops_cleanly(tmp_path: Path) -> None:
    with Server(tmp_path / "instance", workers=2, launcher=SERVE) as server:
        # Plain hypercorn shows one socket shared by its workers; here there is one each.
        wait_for(lambda: len(listening_sockets(server.port)) == 2)
        token = token_for(server)
        for _ in range(20):
            response = httpx.get(
                f"{server.url}/protected",
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            assert response.json() == {"logged_in_as": "alice"}
            assert "server" not in response.headers  # the stack is not named
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0


def test_plain_hypercorn_shares_one_socket(tmp_path: Path) -> None:
    """The contrast that makes the per-worker sockets worth having."""
    with Server(tmp_path / "instance", workers=2) as server:
        assert len(listening_sockets(server.port)) == 1


def test_a_killed_worker_is_logged_and_replaced_while_the_other_serves(tmp_path: Path) -> None:
    with Server(tmp_path / "instance", workers=2, launcher=SERVE) as server:
        wait_for(lambda: len(serving_workers(server)) == 2)
        victim, survivor = serving_workers(server)
        token = token_for(server)

        def kill() -> None:
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: len(serving_workers(server)) == 3)

        recording = asyncio.run(under_load(server, token, kill))
        assert f"worker {victim} died (killed by signal SIGKILL)" in log(server)
        replacement = serving_workers(server)[2]
        assert replacement not in (victim, survivor) and alive(survivor)
        # Only requests in flight on (or queued for) the killed worker can go unanswered;
        # nothing is refused (the other worker's socket listens throughout).
        assert recording.outcomes["refused"] == 0
        assert recording.lost <= 30
        assert recording.answered > 100
        for _ in range(10):  # the replacement serves too: new connections reach both sockets
            assert httpx.get(f"{server.url}/healthz", timeout=60).status_code == 200


def connection_owner(port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server side of the loopback connection from
    ``client_port`` to ``port`` (from /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.rsplit(":", 1)[1], 16) == port and int(remote.rsplit(":", 1)[1], 16) == (
            client_port
        ):
            inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return pid
    return None


def ask_on_new_connection(port: int, pids: list[int], timeout: float = 60.0) -> int | None:
    """GET /healthz on a new connection; the pid (of ``pids``) that answered it 200."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)  # raises TimeoutError after ``timeout`` s
            assert chunk, f"closed without an answer: {head!r}"
            head += chunk
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
        return connection_owner(port, sock.getsockname()[1], pids)


class NewConnections:
    """Clients opening one new connection per request (GET /healthz, Connection: close)
    in a thread, filing each by when it was opened and how it ended."""

    def __init__(self, port: int, clients: int = 6) -> None:
        self.port = port
        self.clients = clients
        self.results: list[tuple[float, str]] = []  # (monotonic time opened, outcome)
        self.opening: dict[int, float] = {}  # client -> when its open request was opened
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _one(self) -> str:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except ConnectionRefusedError:
            return "refused"
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), timeout=120)
        except ConnectionResetError:
            return "reset"
        except TimeoutError:
            return "unanswered"
        finally:
            writer.close()
        return "ok" if answer.startswith(b"HTTP/1.1 200") else "reset"

    async def _client(self, client: int) -> None:
        while not self.stop.is_set():
            opened = self.opening[client] = time.monotonic()
            outcome = await self._one()
            del self.opening[client]
            self.results.append((opened, outcome))

    def waiting(self, start: float, end: float) -> int:
        """How many requests opened between ``start`` and ``end`` have no outcome yet."""
        return sum(1 for opened in list(self.opening.values()) if start <= opened <= end)

    async def _run(self) -> None:
        await asyncio.gather(*(self._client(client) for client in range(self.clients)))

    def __enter__(self) -> NewConnections:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=180)


def test_new_connections_go_to_the_serving_worker_while_a_replacement_starts(
    tmp_path: Path,
) -> None:
    """A worker's death neither refuses nor delays new connections: from the reap on they
    go to the worker that serves (steering), the replacement held in start-up meanwhile."""
    gate = tmp_path / "hold-new-workers"
    env = {"HOLD_WORKERS": str(gate), "PYTHONPATH": str(ROOT)}
    launcher = [sys.executable, "-c", held_start.LAUNCH]
    with Server(tmp_path / "instance", workers=2, launcher=launcher, env=env) as server:
        wait_for(lambda: len(serving_workers(server)) == 2)
        victim, survivor = serving_workers(server)
        with NewConnections(server.port) as load:
            wait_for(lambda: sum(1 for _, outcome in load.results if outcome == "ok") >= 50)
            gate.touch()  # the replacement waits in start-up until the gate is gone
            try:
                killed_at = time.monotonic()
                os.kill(victim, signal.SIGKILL)
                wait_for(lambda: not alive(victim), timeout=30)
                dead_at = time.monotonic()
                wait_for(lambda: f"worker {victim} died" in log(server))
                steered_at = time.monotonic()  # the steering was in place before that line
                wait_for(lambda: len(re.findall(r"worker \d+ started \(slot", log(server))) == 3)
                replacement = int(re.findall(r"worker (\d+) started \(slot", log(server))[-1])
                assert replacement not in (victim, survivor)
                # Every new connection now reaches the survivor, none waits for the
                # replacement (held: a connection queued for it would get no answer).
                owners = [ask_on_new_connection(server.port, [survivor]) for _ in range(30)]
                assert owners == [survivor] * 30
                # Those that reached the dead worker's socket before the steering are
                # handed to the survivor: none waits for the replacement.
                wait_for(lambda: load.waiting(killed_at, steered_at) == 0)
                assert len(serving_workers(server)) == 2  # the replacement still held
            finally:
                gate.unlink(missing_ok=True)
            wait_for(lambda: replacement in serving_workers(server))
            wait_for(lambda: "every slot serves" in log(server))
            # Then new connections reach both workers again.
            seen: set[int | None] = set()
            for _ in range(200):
                seen.add(ask_on_new_connection(server.port, [survivor, replacement]))
                if seen >= {survivor, replacement}:
                    break
            assert seen >= {survivor, replacement}, seen
    after = [outcome for opened, outcome in load.results if opened >= dead_at]
    assert after and set(after) == {"ok"}, collections.Counter(after)
    assert len(load.results) > len(after) > 0


def test_workers_exit_when_the_master_is_killed(tmp_path: Path) -> None:
    server = Server(tmp_path / "instance", workers=2, launcher=SERVE)
    server.start()
    try:
        wait_for(lambda: len(serving_workers(server)) == 2)
        workers = serving_workers(server)
        assert server.process is not None
        server.process.kill()
        server.process.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in workers), timeout=60)
        wait_for(lambda: not listening_pids(server.port), timeout=10)
        # Nothing holds the port: a new server starts on it, alone.
        with Server(tmp_path / "instance2", workers=1, port=server.port, launcher=SERVE) as again:
            assert httpx.get(f"{again.url}/healthz", timeout=60).status_code == 200
    finally:
        server.stop()


def second_server(port: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INSTANCE_PATH": str(tmp_path / "second")}
    return subprocess.run(
        [*SERVE, "--config", "hypercorn.toml", "--bind", f"127.0.0.1:{port}", "quart_app.asgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_server_on_the_same_port_fails_at_once(tmp_path: Path) -> None:
    with Server(tmp_path / "instance", workers=2, launcher=SERVE) as server:
        assert server.process is not None
        second = second_server(server.port, tmp_path)
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"127.0.0.1:{server.port} is already in use" in lines[0]
        assert f"another quart_app/Hypercorn server (pid {server.process.pid}" in lines[0]
        assert httpx.get(f"{server.url}/healthz", timeout=60).status_code == 200


def test_a_port_held_with_so_reuseport_by_anything_else_is_named(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        second = second_server(port, tmp_path)
    assert second.returncode == 1
    assert f"held by another program (pid {os.getpid()}" in second.stderr


@pytest.mark.usefixtures("http1_parser")
@pytest.mark.serial  # a drain against 30 clients on a machine it has to itself
def test_sigterm_under_load_leaves_no_request_unanswered(tmp_path: Path) -> None:
    """Every request written on an open connection gets its response, and the close is
    announced; new connections are refused once the server stops accepting."""
    for round_ in range(SIGTERM_ROUNDS):
        server = Server(tmp_path / f"instance{round_}", workers=2, launcher=SERVE)
        server.start()
        try:
            token = token_for(server)
            process = server.process
            assert process is not None

            def stop(process: subprocess.Popen[bytes] = process) -> None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)

            recording = asyncio.run(under_load(server, token, stop))
        finally:
            server.stop()
        assert process.returncode == 0
        assert recording.answered > 100
        assert recording.lost == 0, recording.outcomes
        assert recording.outcomes["reset_new"] == 0, recording.outcomes
        assert recording.closes_announced >= 1


def test_sigterm_to_the_whole_process_group_waits_for_the_workers(tmp_path: Path) -> None:
    """Ctrl-C, ``timeout`` and systemd's stop signal every process of the server at once,
    the preloaded process that forks the workers included; when it ends first, it reports
    every worker as ended (255) while they still drain. The master waits for the workers
    themselves: every request is answered, and none outlives the master."""
    server = Server(tmp_path / "instance", workers=2, launcher=SERVE, own_group=True)
    server.start()
    try:
        wait_for(lambda: len(serving_workers(server)) == 2)
        workers = serving_workers(server)
        token = token_for(server)
        process = server.process
        assert process is not None

        still_running: list[int] = []

        def stop(process: subprocess.Popen[bytes] = process) -> None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
            still_running.extend(pid for pid in workers if alive(pid))

        recording = asyncio.run(under_load(server, token, stop))
    finally:
        server.stop()
    assert process.returncode == 0
    assert still_running == [], f"workers outlived the master: {still_running}"
    assert recording.answered > 100
    assert recording.lost == 0, recording.outcomes
    assert "exit status 255" not in log(server)


@pytest.mark.usefixtures("http1_parser")
def test_sighup_reloads_with_new_workers_and_no_failed_request(tmp_path: Path) -> None:
    config = tmp_path / "hypercorn.toml"
    config.write_text((ROOT / "hypercorn.toml").read_text())
    server = Server(tmp_path / "instance", workers=2, launcher=SERVE)
    server.args[server.args.index("--config") + 1] = str(config)
    with server:
        wait_for(lambda: len(serving_workers(server)) == 2)
        old = serving_workers(server)
        token = token_for(server)
        assert "server" not in httpx.get(f"{server.url}/healthz", timeout=60).headers
        # The reload reads the configuration file again.
        config.write_text(config.read_text().replace("include_server_header = false", ""))
        assert server.process is not None
        process = server.process

        def reload() -> None:
            process.send_signal(signal.SIGHUP)
            wait_for(lambda: len(serving_workers(server)) == 4)
            wait_for(lambda: not any(alive(pid) for pid in old))

        recording = asyncio.run(under_load(server, token, reload))
        failures = {k: v for k, v in recording.outcomes.items() if k not in {"ok"}}
        assert failures == {}, recording.outcomes
        assert recording.answered > 100
        assert "reload: new workers serve; draining 2 old worker(s)" in log(server)
        assert (
            httpx.get(f"{server.url}/healthz", timeout=60).headers["server"].startswith("hypercorn")
        )
        assert process.poll() is None


def test_a_hung_worker_is_killed_and_replaced(tmp_path: Path) -> None:
    env = {"WORKER_TIMEOUT": "2"}
    with Server(tmp_path / "instance", workers=2, launcher=SERVE, env=env) as server:
        wait_for(lambda: len(serving_workers(server)) == 2)
        hung = serving_workers(server)[0]
        os.kill(hung, signal.SIGSTOP)  # its event loop stops ticking
        try:
            wait_for(lambda: len(serving_workers(server)) == 3)
        finally:
            if alive(hung):
                os.kill(hung, signal.SIGCONT)
        text = log(server)
        assert f"worker {hung} timed out; killing it" in text
        assert f"worker {hung} died (killed by signal SIGKILL)" in text
        assert httpx.get(f"{server.url}/healthz", timeout=60).status_code == 200


def test_a_bad_setting_stops_start_up_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "INSTANCE_PATH": str(tmp_path / "i"), "WORKER_TIMEOUT": "soon"}
    port = free_port()
    result = subprocess.run(
        [*SERVE, "--config", "hypercorn.toml", "--bind", f"127.0.0.1:{port}", "quart_app.asgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "Error: WORKER_TIMEOUT must be a number (float), not 'soon'"
    ]


def test_a_worker_that_cannot_start_stops_the_server_without_a_restart_loop(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "INSTANCE_PATH": str(tmp_path / "i")}
    port = free_port()
    result = subprocess.run(
        [
            *SERVE,
            *("--config", "hypercorn.toml", "--bind", f"127.0.0.1:{port}", "--workers", "2"),
            "quart_app.no_such_module:app",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("started (slot") == 2  # never restarted
    assert "worker failed to start: " in result.stderr
    assert "could not start (exit status 3); stopping the server" in result.stderr


def test_workers_that_keep_dying_stop_the_server_with_a_message(tmp_path: Path) -> None:
    server = Server(tmp_path / "instance", workers=1, launcher=SERVE)
    server.start()
    try:
        assert server.process is not None
        for deaths in range(1, 6):
            wait_for(partial(lambda n: len(serving_workers(server)) == n, n=deaths), timeout=120)
            os.kill(serving_workers(server)[-1], signal.SIGKILL)
        assert server.process.wait(timeout=120) == 1
        assert "workers died 5 times within 60 s" in log(server)
        assert "next start in" in log(server)  # backed off before giving up
    finally:
        server.stop()


def test_the_supervisor_logs_in_the_apps_format(tmp_path: Path) -> None:
    """One format in the stream: with LOG_FORMAT=json the supervisor's lines are JSON
    objects like the app's, not Hypercorn-style text."""
    env = {"LOG_FORMAT": "json"}
    with Server(tmp_path / "instance", workers=2, launcher=SERVE, env=env) as server:
        wait_for(lambda: len(serving_workers(server)) == 2)
    lines = [json.loads(line) for line in log(server).splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["logger"] == "quart_app.serve"]
    assert any(line["msg"].startswith("supervisor ") for line in mine), lines[:5]
    assert any(line["msg"].startswith("worker ") for line in mine)
    apps = [line for line in lines if line["logger"] != "quart_app.serve"]
    core = {"ts", "level", "logger", "msg", "request_id", "pid"}
    assert apps and all(core <= set(line) for line in [*mine, *apps])
