"""``--service haproxy``: a real HTTP proxy (HAProxy, Debian package ``haproxy``) as the Service.

HAProxy runs in HTTP mode with keep-alive to clients and pooled keep-alive connections to
the pods (``http-reuse safe``), ``retries 0`` and no health checks: like the ``l7`` model,
it routes to the endpoints it was told about. Endpoint changes reach it through its
runtime API (``set server ... state ready|maint``) after the same random propagation
delay as the other models. One ``server-template`` slot per pod.

``--service haproxy-retry`` is the same proxy with ``retries 3`` and ``option redispatch``:
a connection a pod refuses (no request sent yet, so any method is safe to retry) goes to
another pod. A connection that was accepted and then reset after the request went out is
not retried: that is what a drain must never cause.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from .balancer import Endpoint, Service
from .pods import ProcessGroups, free_port

_CONFIG = """\
global
    stats socket {sock} mode 600 level admin
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    retries {retries}
{redispatch}frontend drill
    bind 127.0.0.1:{port}
    default_backend pods
backend pods
    balance random
    http-reuse safe
    server-template pod 1-{slots} 127.0.0.1:9 disabled
"""


class HAProxyService(Service):
    def __init__(
        self,
        event_log: Any,
        *,
        groups: ProcessGroups,
        work_dir: Path,
        slots: int = 64,
        retries: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__("l7", event_log, **kw)
        self.mode = "haproxy-retry" if retries else "haproxy"
        self.retries = retries
        self.groups = groups
        self.work_dir = work_dir
        self.slots = slots
        self._slot: dict[str, int] = {}
        self._sock = work_dir / "haproxy.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
        if haproxy is None:
            raise ValueError("--service haproxy needs HAProxy: apt-get install -y haproxy")
        self._thread.start()  # the loop runs the propagation timers
        self.port = free_port()
        config = self.work_dir / "haproxy.cfg"
        config.write_text(
            _CONFIG.format(
                sock=self._sock,
                port=self.port,
                slots=self.slots,
                retries=3 if self.retries else 0,
                # retry-on's default, conn-failure: only connections refused or failed before
                # the request was sent are retried, on another pod.
                redispatch="    option redispatch\n" if self.retries else "",
            )
        )
        log = open(self.work_dir / "haproxy.log", "ab")  # noqa: SIM115 - owned by the process
        self._proc = subprocess.Popen(
            [haproxy, "-db", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.groups.add(self._proc)
        deadline = time.monotonic() + 10
        while True:
            try:
                self._runtime("show info")
                return self.port
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise ValueError(
                        f"HAProxy did not start; see {self.work_dir / 'haproxy.log'}"
                    ) from None
            time.sleep(0.05)  # start-up poll against the deadline above

    def stop(self) -> None:
        if self._proc is not None:
            self.groups.kill_group(self._proc.pid)
            self._proc.wait(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _runtime(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(self._sock))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def _apply(self, ep: Endpoint, add: bool) -> None:
        slot = self._slot.setdefault(ep.name, len(self._slot) + 1)
        if slot > self.slots:
            raise RuntimeError(f"more than {self.slots} pods: raise HAProxyService.slots")
        server = f"pods/pod{slot}"
        if add:
            command = (
                f"set server {server} addr 127.0.0.1 port {ep.port}; "
                f"set server {server} state ready"
            )
        else:
            command = f"set server {server} state maint"
        try:
            self._runtime(command)
        except OSError as exc:
            self.event_log.record(ep.name, "haproxy-error", str(exc))
        super()._apply(ep, add)
