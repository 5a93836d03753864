"""The probe listener: liveness, readiness and startup answered from shared memory.

Why a separate process: with every worker thread busy on slow requests, a probe sent to
the app's port waits in the same queue as the traffic. The kubelet gives a probe 1 s by
default, so a pod that is merely busy looks dead and gets restarted, which turns load
into an outage. This listener does not compete with the worker pool: the master forks
it in ``when_ready`` (before any worker, while the master has a single thread) when
``ZDT_PROBE_BIND`` is set, and it answers from the state every process shares:

* ``PREFIX/live``: 200 unless the master's loop, or every worker, has not reported a
  heartbeat for ``ZDT_HEARTBEAT_TIMEOUT_SECONDS`` (a really stuck process). It never
  looks at a dependency. 200 from SIGTERM on: the kubelet does not restart a
  terminating pod, and a master busy in Gunicorn's graceful stop runs no loop.
* ``PREFIX/ready``: 503 before the master is ready and from SIGTERM on (the drain flip,
  never cached); otherwise the freshest check results a worker published (each worker
  runs its readiness checks in the background, see :mod:`gunicorn_zdt.probes`).
  ``?verbose`` and ``?exclude=NAME`` as on the app's port; reasons are never shown.
* ``PREFIX/startup``: 200 once any worker's checks passed, then for good.

It is single-threaded and non-blocking (one ``selectors`` loop), reads only shared
memory, holds no other file descriptor (in particular not the app's listening sockets,
so Gunicorn's graceful stop really closes them), ignores the signals meant for the
master, and dies with it (``PR_SET_PDEATHSIG``, plus a ``getppid`` check every loop).
Stdlib only.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import state

__all__ = ["Listener", "ProbeConfig", "answer", "respond"]

MAX_REQUEST_BYTES = 8192  # request line + headers; more is refused with 431/414
MAX_QUERY_FIELDS = 64
MAX_CONNECTIONS = 256
CLIENT_SECONDS = 2.0  # a client that sent no full request by then is dropped (slowloris)

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class ProbeConfig:
    prefix: str  # ZDT_PROBE_PREFIX
    heartbeat_timeout: float  # ZDT_HEARTBEAT_TIMEOUT_SECONDS (or Gunicorn's timeout)
    master_pid: int


class Listener:
    """One non-blocking loop: accept, read one request, answer, close."""

    def __init__(self, sock: socket.socket, shared: state.SharedState, config: ProbeConfig):
        self.sock = sock
        self.shared = shared
        self.config = config
        self.started = time.monotonic()
        self.selector = selectors.DefaultSelector()
        self.clients: dict[socket.socket, tuple[bytearray, float]] = {}
        self.answered: set[socket.socket] = set()  # lingering: discard input until EOF

    def serve(self) -> None:
        self.selector.register(self.sock, selectors.EVENT_READ)
        while os.getppid() == self.config.master_pid:
            for key, _ in self.selector.select(timeout=0.5):
                if key.fileobj is self.sock:
                    self._accept()
                else:
                    self._read(key.fileobj)  # type: ignore[arg-type]
            self._expire(time.monotonic())

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. EMFILE, ECONNABORTED: try again on the next event
                return
            if len(self.clients) >= MAX_CONNECTIONS:
                conn.close()
                continue
            conn.setblocking(False)
            self.clients[conn] = (bytearray(), time.monotonic() + CLIENT_SECONDS)
            self.selector.register(conn, selectors.EVENT_READ)

    def _read(self, conn: socket.socket) -> None:
        buf, _ = self.clients[conn]
        try:
            chunk = conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(conn)
            return
        if conn in self.answered:
            return
        buf += chunk
        if b"\r\n\r\n" in buf or b"\n\n" in buf or len(buf) > MAX_REQUEST_BYTES:
            status, headers, body = respond(bytes(buf), self.shared, self.config, self.started)
            self._send(conn, _render(status, headers, body))
            # Closing with unread input would reset the connection and lose the answer:
            # half-close, then discard what the client still sends until it closes.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
            self.answered.add(conn)
            buf.clear()

    def _send(self, conn: socket.socket, data: bytes) -> None:
        with contextlib.suppress(OSError):  # a small answer on a fresh socket fits its buffer
            conn.send(data)

    def _close(self, conn: socket.socket) -> None:
        self.clients.pop(conn, None)
        self.answered.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        conn.close()

    def _expire(self, now: float) -> None:
        for conn, (_, deadline) in list(self.clients.items()):
            if now > deadline:
                self._close(conn)


def _render(status: int, headers: dict[str, str], body: bytes) -> bytes:
    head = [f"HTTP/1.1 {status} {_REASONS[status]}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def respond(
    raw: bytes, shared: state.SharedState, config: ProbeConfig, started: float
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body for one raw request; never raises on bad input."""
    line, newline, _ = raw.partition(b"\n")
    method = "GET"
    if not newline and len(raw) > MAX_REQUEST_BYTES:
        status, body = 414, {"status": "request line too long", "limit_bytes": MAX_REQUEST_BYTES}
    elif len(raw) > MAX_REQUEST_BYTES:
        status, body = 431, {"status": "headers too large", "limit_bytes": MAX_REQUEST_BYTES}
    else:
        parts = line.strip().split(b" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith(b"HTTP/"):
            status, body = 400, {"status": "malformed request line"}
        else:
            method = parts[0].decode("ascii", "replace").upper()
            status, body = answer(
                method, parts[1].decode("latin-1"), shared, config, started, time.monotonic()
            )
    data = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(data)),
        "Cache-Control": "no-store",
        "Connection": "close",
    }
    if status == 405:
        headers["Allow"] = "GET, HEAD"
    return status, headers, b"" if method == "HEAD" else data


def answer(
    method: str,
    target: str,
    shared: state.SharedState,
    config: ProbeConfig,
    started: float,
    now: float,
) -> tuple[int, dict[str, Any]]:
    """The probe logic, on a parsed request: (status, JSON body)."""
    url = urlsplit(target)
    path = unquote(url.path).rstrip("/")
    probes = {
        f"{config.prefix}/live": _live,
        f"{config.prefix}/ready": _ready,
        f"{config.prefix}/startup": _startup,
    }
    probe = probes.get(path)
    if probe is None:
        return 404, {"status": "not found", "endpoints": sorted(probes)}
    if method not in ("GET", "HEAD"):
        return 405, {"status": "method not allowed", "allow": ["GET", "HEAD"]}
    try:
        query = parse_qs(
            url.query, keep_blank_values=True, errors="replace", max_num_fields=MAX_QUERY_FIELDS
        )
    except ValueError:
        return 400, {"status": f"too many query parameters (limit {MAX_QUERY_FIELDS})"}
    return probe(shared, config, query, started, now)


def _live(
    shared: state.SharedState, config: ProbeConfig, query: dict, started: float, now: float
) -> tuple[int, dict[str, Any]]:
    limit = config.heartbeat_timeout
    master_age = now - (shared.master_beat or started)
    beats = [s.beat for s in shared.slots() if s.beat > 0]
    workers_age = now - max(beats, default=started)
    terminating = shared.phase >= state.Phase.DRAINING
    failed = []
    if not terminating:
        if master_age > limit:
            failed.append("master")
        if workers_age > limit:
            failed.append("workers")
    body: dict[str, Any] = {"status": "failed" if failed else "ok"}
    if failed:
        body["failed"] = failed
    if "verbose" in query or failed:
        body["seconds_since_heartbeat"] = {
            "master": round(master_age, 3),
            "newest_worker": round(workers_age, 3),
        }
        body["heartbeat_timeout_seconds"] = limit
    return (503 if failed else 200), body


def _ready(
    shared: state.SharedState, config: ProbeConfig, query: dict, started: float, now: float
) -> tuple[int, dict[str, Any]]:
    phase = shared.phase
    if phase == state.Phase.STARTING:
        return 503, {"status": "starting"}
    if phase >= state.Phase.DRAINING:
        return 503, {"status": "draining"}
    slots = shared.slots()
    alive = [s for s in slots if now - s.beat <= config.heartbeat_timeout]
    fresh = [s for s in alive if s.verdict_valid_until >= now]
    if not fresh:
        return 503, {"status": "failed", "failed": [], "detail": "no worker published checks yet"}
    newest = max(fresh, key=lambda s: s.verdict_valid_until)
    if newest.detail.get("gate") == "starting":
        return 503, {"status": "starting"}
    checks: dict[str, bool] = newest.detail.get("checks", {})
    excluded = query.get("exclude", [])
    warnings = [f"unknown check in exclude: {n!r}" for n in excluded if n not in checks]
    selected = {n: ok for n, ok in checks.items() if n not in excluded}
    ok = all(selected.values())
    body: dict[str, Any] = {"status": "ok" if ok else "failed"}
    if "verbose" in query:
        body["checks"] = {n: {"status": "ok" if v else "failed"} for n, v in selected.items()}
        body["published_by_worker"] = newest.pid
    elif not ok:
        body["failed"] = [n for n, v in selected.items() if not v]
    if warnings:
        body["warnings"] = warnings
    return (200 if ok else 503), body


def _startup(
    shared: state.SharedState, config: ProbeConfig, query: dict, started: float, now: float
) -> tuple[int, dict[str, Any]]:
    if shared.started:
        return 200, {"status": "ok"}
    return 503, {"status": "starting"}
