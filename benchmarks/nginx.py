"""A private nginx in front of an app: nginx ``auth_request`` asks the app's /auth/verify.

Its own prefix, config, pid and logs in a work directory, listening on loopback ports
only, started in the foreground (``daemon off``) so stopping the process stops it all.
The config includes the recipe files that docs/gateways.md documents (``deploy/nginx/``), so
what is tested and measured is what users copy:

* ``/api/...``: protected by ``auth_request``; the "protected upstream" is a second
  nginx server that echoes the ``X-Auth-*`` headers it received;
* anything else: passed to the app as it is (``/register``, ``/login``, ``/healthz``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "deploy" / "nginx"
#: What the protected upstream answers: the verified claims nginx handed to it.
ECHO = (
    "subject=$http_x_auth_subject username=$http_x_auth_username"
    " token_id=$http_x_auth_token_id expires=$http_x_auth_expires"
)


def nginx_binary() -> str | None:
    """Debian's nginx (``apt-get install nginx``) or any nginx on PATH; None if absent."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nginx:
    """nginx on ``127.0.0.1:port``, verifying through ``backend`` (``host:port``)."""

    def __init__(self, workdir: Path, backend: str, *, workers: int = 1) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        self.binary = binary
        self.prefix = workdir
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        self.workers = workers
        self.port = free_port()
        self.upstream_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.prefix / "error.log"
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(self.config())
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        p = self.prefix
        # As root, nginx would switch its workers to "nobody", who cannot enter the
        # (private) work directory; a non-root user's nginx ignores the directive.
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "".join(
            f"  {kind}_temp_path {p / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""{user}worker_processes {self.workers};
daemon off;
pid {p / "nginx.pid"};
error_log {self.log_path} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp}  upstream quart_app_auth {{ server {self.backend}; keepalive 64; }}
  upstream app {{ server {self.backend}; keepalive 16; }}
  upstream protected_upstream {{ server 127.0.0.1:{self.upstream_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{self.port} backlog=4096;
    include {RECIPES / "auth-location.conf"};
    location /api/ {{
      include {RECIPES / "auth-request.conf"};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://protected_upstream;
    }}
    location / {{
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://app;
    }}
  }}
  server {{
    listen 127.0.0.1:{self.upstream_port};
    location / {{
      default_type text/plain;
      return 200 "{ECHO}\\n";
    }}
  }}
}}
"""

    def check(self) -> str:
        """``nginx -t`` on the config; its output (raises when the config is refused)."""
        result = subprocess.run(
            [self.binary, "-t", "-p", str(self.prefix), "-c", str(self.conf)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"nginx -t refused the config:\n{result.stderr}")
        return result.stderr

    def start(self, timeout: float = 30.0) -> None:
        self.check()
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.prefix), "-c", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited at start-up: {self.log_tail()}")
            if all(_listening(port) for port in (self.port, self.upstream_port)):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen within {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def cpu_seconds(self) -> float:
        """CPU time used so far by nginx (master and workers)."""
        import psutil

        if self.proc is None:
            return 0.0
        total = 0.0
        with contextlib.suppress(psutil.Error):
            master = psutil.Process(self.proc.pid)
            for proc in (master, *master.children(recursive=True)):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=5)

    def __enter__(self) -> Nginx:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
