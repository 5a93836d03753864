"""``--service nginx``: a real nginx (Debian package ``nginx``) in front of the pods.

nginx is configured as most Gunicorn deployments have it (and as ingress controllers
generate it): an ``upstream`` with keep-alive (``keepalive 32``, ``proxy_http_version 1.1``,
``proxy_set_header Connection ""``), the default ``proxy_next_upstream`` (``error timeout``:
a failed GET goes to the next pod, a failed POST is a 502) and the default
``max_fails=1 fail_timeout=10s`` per server. It follows the endpoints the way an ingress
controller does: after the propagation delay it rewrites the upstream list and runs
``nginx -s reload`` (the old nginx workers finish their requests and close their idle
upstream connections; new workers start with an empty pool). In the drill its clients get
no keep-alive from nginx (a reload would close their idle connections under them, an
artifact of following endpoints by reloading, see :class:`NginxService`).

:class:`Nginx` is the process alone (also used by the tests and ``benchmarks/nginx.py``):
started on 127.0.0.1 with every path (config, pid, logs, temp files) under one work
directory, ``daemon off`` in its own session, reloaded with ``-s reload``, stopped by the
caller. Its access log records each request's status and upstream statuses (a retried
request shows ``502, 200``), its error log names each upstream failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .balancer import Endpoint, Service
from .pods import ProcessGroups, free_port

__all__ = ["Nginx", "NginxService", "Request", "find_nginx", "upstream_failures"]

_CONFIG = """\
worker_processes 1;
{user}events {{
    worker_connections 4096;
}}
http {{
    log_format zdt '$msec $request_method $request_uri $status "$upstream_status" '
                   '"$upstream_addr"';
    access_log {dir}/access.log zdt;
    client_body_temp_path {dir}/tmp-client;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fastcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    upstream pods {{
{servers}
        keepalive 32;
        keepalive_timeout {idle_ms}ms;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        keepalive_timeout {client_keepalive};
        location / {{
            proxy_pass http://pods;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""

#: What nginx's error log says when an upstream connection failed under a request.
_FAILURE = re.compile(
    r"upstream prematurely closed|reset by peer|no live upstreams|Connection refused|"
    r"upstream timed out|Broken pipe"
)


def find_nginx() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


@dataclass(frozen=True)
class Request:
    """One line of the access log."""

    at: float
    method: str
    uri: str
    status: int
    upstream_status: str  # "200", "502, 200" (retried), "-" (no upstream tried)

    @property
    def upstream_failed(self) -> bool:
        """An upstream attempt failed, whether or not nginx retried it on another pod."""
        return self.status >= 500 or "," in self.upstream_status


class Nginx:
    """A real nginx on 127.0.0.1 proxying to ``backends`` (ports) with upstream keep-alive."""

    def __init__(
        self,
        work_dir: Path,
        *,
        upstream_idle_seconds: float = 60.0,
        port: int = 0,
        groups: ProcessGroups | None = None,
        client_keepalive: bool = True,
    ) -> None:
        binary = find_nginx()
        if binary is None:
            raise FileNotFoundError("nginx is not installed (apt-get install -y nginx)")
        self.binary = binary
        self.dir = work_dir.resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.upstream_idle_seconds = upstream_idle_seconds
        self.port = port
        self.groups = groups
        self.client_keepalive = client_keepalive
        self.config = self.dir / "nginx.conf"
        self.access_log = self.dir / "access.log"
        self.error_log = self.dir / "error.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.backends: list[int] = []

    def _cmd(self, *extra: str) -> list[str]:
        glob = f"daemon off; master_process on; pid {self.dir}/nginx.pid;"
        return [self.binary, "-p", str(self.dir), "-e", str(self.error_log), "-c",
                str(self.config), "-g", glob, *extra]  # fmt: skip

    def _write(self, backends: Iterable[int]) -> None:
        self.backends = list(backends)
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in self.backends)
        if not servers:  # nginx needs one server: none routable means 502, as no endpoint
            servers = "        server 127.0.0.1:9 down;"
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers reach work_dir
        self.config.write_text(
            _CONFIG.format(
                user=user,
                dir=self.dir,
                servers=servers,
                idle_ms=round(self.upstream_idle_seconds * 1000),
                port=self.port,
                client_keepalive="75s" if self.client_keepalive else "0",
            )
        )

    def start(self, backends: Iterable[int], timeout: float = 10) -> int:
        """Start nginx in front of ``backends``; returns its port once it accepts."""
        self.port = self.port or free_port()
        self._write(backends)
        check = subprocess.run(self._cmd("-t"), capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"nginx rejected its config {self.config}: {check.stderr.strip()}")
        log = open(self.dir / "nginx.out", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            self._cmd(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if self.groups is not None:
            self.groups.add(self.proc)
        deadline = time.monotonic() + timeout
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return self.port
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not start; see {self.error_log}")
            time.sleep(0.05)  # start-up poll against the deadline above

    def workers(self) -> set[int]:
        """The pids of nginx's worker processes (children of its master)."""
        if self.proc is None:
            return set()
        out = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    fields = stat.rsplit(")", 1)[1].split()
                    if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                        out.add(int(entry))
        return out

    def reload(self, backends: Iterable[int], timeout: float = 10) -> None:
        """Rewrite the upstream list and ``nginx -s reload``; returns once a new worker runs."""
        before = self.workers()
        self._write(backends)
        subprocess.run(self._cmd("-s", "reload"), capture_output=True, check=True)
        deadline = time.monotonic() + timeout
        while not (self.workers() - before):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not reload; see {self.error_log}")
            time.sleep(0.02)  # reload poll against the deadline above

    def stop(self) -> None:
        """Quick stop (SIGTERM), then kill whatever is left of its session."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def requests(self) -> list[Request]:
        """Every request in the access log so far."""
        out: list[Request] = []
        if not self.access_log.exists():
            return out
        for line in self.access_log.read_text(errors="replace").splitlines():
            m = re.match(r'(\S+) (\S+) (\S+) (\d+) "([^"]*)"', line)
            if m:
                at, method, uri, status, upstream = m.groups()
                out.append(Request(float(at), method, uri, int(status), upstream))
        return out

    def error_lines(self) -> list[str]:
        """The error log's lines about failed upstream connections."""
        if not self.error_log.exists():
            return []
        return [
            line
            for line in self.error_log.read_text(errors="replace").splitlines()
            if _FAILURE.search(line)
        ]

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def upstream_failures(nginx: Nginx) -> dict[str, int]:
    """How many requests met a failed upstream attempt, by what the client saw."""
    out = {"answered_5xx": 0, "retried": 0}
    for r in nginx.requests():
        if r.status >= 500:
            out["answered_5xx"] += 1
        elif r.upstream_failed:
            out["retried"] += 1
    return out


class NginxService(Service):
    """The drill's Service as a real nginx that follows the endpoints like an ingress."""

    def __init__(
        self,
        event_log: Any,
        *,
        groups: ProcessGroups,
        work_dir: Path,
        upstream_idle_seconds: float = 60.0,
        **kw: Any,
    ) -> None:
        super().__init__("l7", event_log, upstream_idle_seconds=upstream_idle_seconds, **kw)
        self.mode = "nginx"
        # Clients get no keep-alive from this nginx: each reload (one per endpoint change)
        # closes the old workers' idle client connections, and a client reusing one at
        # that moment fails, with no pod involved. Ingress controllers avoid reloads for
        # endpoint changes (ingress-nginx updates a Lua balancer); the upstream side, what
        # the drill is about, keeps its keep-alive pool.
        self.nginx = Nginx(
            work_dir / "nginx",
            upstream_idle_seconds=upstream_idle_seconds,
            groups=groups,
            client_keepalive=False,
        )

    def start(self) -> int:
        self._thread.start()  # the loop runs the propagation timers
        try:
            self.port = self.nginx.start([])
        except FileNotFoundError:
            raise ValueError("--service nginx needs nginx: apt-get install -y nginx") from None
        except RuntimeError as exc:
            raise ValueError(str(exc)) from None
        return self.port

    def stop(self) -> None:
        self.nginx.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _apply(self, ep: Endpoint, add: bool) -> None:
        wanted = [e.port for e in self.endpoints if e != ep] + ([ep.port] if add else [])
        try:
            self.nginx.reload(wanted)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            self.event_log.record(ep.name, "nginx-error", str(exc))
        super()._apply(ep, add)

    def failures(self) -> dict[str, int]:
        return upstream_failures(self.nginx)
