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
* ``/metrics`` (not under the prefix): the pod's Prometheus metrics, from the same shared
  memory (:mod:`gunicorn_zdt.runtime.metrics`, docs/metrics.md); OpenMetrics when ``Accept`` asks
  for ``application/openmetrics-text``. It needs ``prometheus_client`` (the ``metrics``
  extra), imported on the first scrape; without it ``/metrics`` answers 501 and says
  what to install, and the probes are unaffected.

It is single-threaded and non-blocking (one ``selectors`` loop), reads only shared
memory, holds no other file descriptor (in particular not the app's listening sockets,
so Gunicorn's graceful stop really closes them), ignores the signals meant for the
master, and dies with it (``PR_SET_PDEATHSIG``, plus a ``getppid`` check every loop).
Stdlib only, apart from the lazily imported metrics.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..core import readiness
from . import state

__all__ = ["Listener", "ListenerStats", "ProbeConfig", "answer", "respond"]

MAX_REQUEST_BYTES = 8192  # request line + headers; more is refused with 431/414
MAX_QUERY_FIELDS = 64
MAX_CONNECTIONS = 256  # the table: connections waiting for their request, or answered
MAX_PER_PEER = 64  # one address's share of the table (docs/probe-listener.md says why)
ACCEPT_BATCH = 64  # accepts per loop turn, so reading the accepted ones is not starved
# The kernel's accept queue (capped by net.core.somaxconn, 4096 by default since Linux 5.4).
# When it is full the kernel drops a probe's SYN and the client retries only after 1 s,
# past the kubelet's timeout: it must hold every connection a flood keeps in flight while
# the listener sheds and the attacker reconnects, not the 128 Python defaults to.
BACKLOG = 4096
CLIENT_SECONDS = 2.0  # a client that sent no full request by then is dropped (slowloris)
SWEEP_SECONDS = 0.1  # how often deadlines are checked
METRICS_PATH = "/metrics"  # Prometheus' default path; not under ZDT_PROBE_PREFIX
METRICS_EXTRA = 'pip install "gunicorn-zdt[metrics]"'

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class ProbeConfig:
    prefix: str  # ZDT_PROBE_PREFIX
    heartbeat_timeout: float  # ZDT_HEARTBEAT_TIMEOUT_SECONDS (or Gunicorn's timeout)
    master_pid: int


@dataclass(eq=False, slots=True)
class _Client:
    sock: socket.socket
    peer: str
    deadline: float  # accept time + CLIENT_SECONDS: answered or not, closed by then
    buf: bytearray = field(default_factory=bytearray)
    answered: bool = False
    unsent: memoryview | None = None  # the part of the answer the socket did not take yet


@dataclass
class ListenerStats:
    """Counters since the listener started (for logs, tests and a future /metrics)."""

    accepted: int = 0
    answered: int = 0
    shed_full: int = 0  # the table was full: the oldest connection without a request went
    shed_peer: int = 0  # its address held MAX_PER_PEER: that address's oldest went
    expired: int = 0  # no complete request (or no EOF after the answer) by the deadline


class Listener:
    """One non-blocking loop: accept, read one request, answer, close.

    Hostile clients cost it a bounded table, never an answer to a probe. The table holds
    at most ``max_connections``, of which one address holds at most ``max_per_peer``.
    When either is full, a new connection is still accepted, and the connection that has
    waited longest without a complete request goes instead (of that address when it is
    the address's share that is full): a slow or silent client loses its place to a new
    one, and a probe, which sends its whole request at once and is answered within
    microseconds, is never the oldest waiting. Answered connections linger until the
    client closes (closing with unread input would reset the answer away), and go first
    only when nothing is waiting. Every connection is closed ``client_seconds`` after it
    was accepted, answered or not.
    """

    def __init__(
        self,
        sock: socket.socket,
        shared: state.SharedState,
        config: ProbeConfig,
        max_connections: int = MAX_CONNECTIONS,
        max_per_peer: int = MAX_PER_PEER,
        client_seconds: float = CLIENT_SECONDS,
    ):
        self.sock = sock
        self.shared = shared
        self.config = config
        self.max_connections = max_connections
        self.max_per_peer = max_per_peer
        self.client_seconds = client_seconds
        self.started = time.monotonic()
        self.selector = selectors.DefaultSelector()
        self.waiting: dict[int, _Client] = {}  # fd -> client, oldest first; no full request yet
        self.lingering: dict[int, _Client] = {}  # answered; input discarded until EOF
        self.peers: dict[str, dict[int, _Client]] = {}  # address -> its clients, oldest first
        self.stats = ListenerStats()
        self._next_sweep = 0.0

    def serve(self) -> None:
        self.sock.listen(BACKLOG)  # on a listening socket: only resizes its accept queue
        self.selector.register(self.sock, selectors.EVENT_READ)
        while os.getppid() == self.config.master_pid:
            timeout = SWEEP_SECONDS if self.waiting or self.lingering else 0.5
            # Clients first, new connections last: a probe whose request has arrived is
            # answered before a batch of new connections from its address could shed it.
            pending_accept = False
            for key, events in self.selector.select(timeout):
                if key.data is None:
                    pending_accept = True
                    continue
                if events & selectors.EVENT_WRITE:
                    self._write(key.data)
                if events & selectors.EVENT_READ and key.data.sock.fileno() != -1:
                    self._read(key.data)
            if pending_accept:
                self._accept()
            self._expire(time.monotonic())

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. EMFILE, ECONNABORTED: try again on the next event
                return
            self.stats.accepted += 1
            peer = str(address[0])
            mine = self.peers.setdefault(peer, {})
            if len(mine) >= self.max_per_peer:
                self.stats.shed_peer += 1
                self._close(_oldest(mine))
            elif len(self.waiting) + len(self.lingering) >= self.max_connections:
                self.stats.shed_full += 1
                self._close(next(iter(self.waiting.values()), None) or _first(self.lingering))
            sock.setblocking(False)
            client = _Client(sock, peer, time.monotonic() + self.client_seconds)
            self.waiting[sock.fileno()] = client
            mine[sock.fileno()] = client
            self.selector.register(sock, selectors.EVENT_READ, client)
            self._read(client)  # a request that came with the handshake is answered now

    def _read(self, client: _Client) -> None:
        try:
            chunk = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(client)
            return
        if client.answered:
            return
        buf = client.buf
        searched = max(0, len(buf) - 2)
        buf += chunk
        if len(buf) > MAX_REQUEST_BYTES or _has_end_of_head(buf, searched):
            status, headers, body = respond(bytes(buf), self.shared, self.config, self.started)
            self._answer(client, _render(status, headers, body))

    def _answer(self, client: _Client, data: bytes) -> None:
        self.stats.answered += 1
        client.answered = True
        client.buf = bytearray()
        fd = client.sock.fileno()
        del self.waiting[fd]
        self.lingering[fd] = client
        client.unsent = memoryview(data)
        self._write(client)

    def _write(self, client: _Client) -> None:
        """Send what the socket takes. A probe's answer fits its buffer at once; a large
        ``/metrics`` answer may not: the rest goes when the socket is writable again,
        within the same deadline."""
        unsent = client.unsent
        if unsent is None:
            return
        try:
            sent = client.sock.send(unsent)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = len(unsent)  # the peer is gone: nothing more to send
        if sent < len(unsent):
            client.unsent = unsent[sent:]
            self.selector.modify(client.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
            return
        if self.selector.get_key(client.sock).events & selectors.EVENT_WRITE:
            self.selector.modify(client.sock, selectors.EVENT_READ, client)
        client.unsent = None
        # Closing with unread input would reset the connection and lose the answer:
        # half-close, then discard what the client still sends until it closes.
        with contextlib.suppress(OSError):
            client.sock.shutdown(socket.SHUT_WR)

    def _close(self, client: _Client) -> None:
        fd = client.sock.fileno()
        self.waiting.pop(fd, None)
        self.lingering.pop(fd, None)
        mine = self.peers.get(client.peer)
        if mine is not None:
            mine.pop(fd, None)
            if not mine:
                del self.peers[client.peer]
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(client.sock)
        client.sock.close()

    def _expire(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_SECONDS
        for client in list(self.waiting.values()):
            if client.deadline > now:
                break  # accepted in order, all with the same timeout
            self.stats.expired += 1
            self._close(client)
        for client in [c for c in self.lingering.values() if c.deadline <= now]:
            self.stats.expired += 1
            self._close(client)


def _oldest(clients: dict[int, _Client]) -> _Client:
    """The client that has waited longest without a complete request, else the oldest."""
    for client in clients.values():
        if not client.answered:
            return client
    return _first(clients)


def _first(clients: dict[int, _Client]) -> _Client:
    return next(iter(clients.values()))


def _has_end_of_head(buf: bytearray, start: int) -> bool:
    """A blank line (CRLF or bare LF) at or after ``start``: the request head is complete."""
    return buf.find(b"\n\r\n", start) != -1 or buf.find(b"\n\n", start) != -1


def _render(status: int, headers: dict[str, str], body: bytes) -> bytes:
    head = [f"HTTP/1.1 {status} {_REASONS[status]}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def respond(
    raw: bytes, shared: state.SharedState, config: ProbeConfig, started: float
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body for one raw request; never raises on bad input."""
    line, newline, head = raw.partition(b"\n")
    method = "GET"
    content_type, data = "application/json", b""
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
            target = parts[1].decode("latin-1")
            if method in ("GET", "HEAD") and _path(target) == METRICS_PATH:
                status, body, content_type, data = _metrics(
                    _header(head, b"accept"), shared, config
                )
            else:
                status, body = answer(method, target, shared, config, started, time.monotonic())
    if not data:
        data = json.dumps(body).encode()
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(data)),
        "Cache-Control": "no-store",
        "Connection": "close",
    }
    if status == 405:
        headers["Allow"] = "GET, HEAD"
    return status, headers, b"" if method == "HEAD" else data


def _path(target: str) -> str:
    return unquote(urlsplit(target).path).rstrip("/")


def _header(head: bytes, name: bytes) -> str | None:
    """The value of header ``name`` (lower case) in a raw request head; repeats joined."""
    values = []
    for line in head.split(b"\n"):
        key, colon, value = line.partition(b":")
        if colon and key.strip().lower() == name:
            values.append(value.strip().decode("latin-1"))
    return ", ".join(values) if values else None


def _metrics(
    accept: str | None, shared: state.SharedState, config: ProbeConfig
) -> tuple[int, dict[str, Any], str, bytes]:
    """``/metrics``: (status, JSON body on error, Content-Type, exposition); never raises.

    ``prometheus_client`` is imported here, on the first scrape (about 0.1 s, once per
    listener), so a listener nobody scrapes never loads it.
    """
    try:
        from . import metrics
    except ImportError as exc:
        body = {"status": "metrics need prometheus_client", "fix": METRICS_EXTRA}
        return 501, {**body, "error": str(exc)}, "application/json", b""
    try:
        content_type, data = metrics.exposition(shared, config.heartbeat_timeout, accept)
    except Exception as exc:  # a bug must cost a scrape, never the probes
        with contextlib.suppress(OSError):
            os.write(2, f"gunicorn-zdt: probe listener: /metrics failed: {exc!r}\n".encode())
        return 500, {"status": "metrics failed; the reason is in the log"}, "application/json", b""
    return 200, {}, content_type, data


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
    path = _path(target)
    prefix = config.prefix
    endpoints = [f"{prefix}/{name}" for name in ("live", "ready", "startup")]
    one_check = path.removeprefix(f"{prefix}/ready/")
    if path != METRICS_PATH and path not in endpoints and (one_check == path or "/" in one_check):
        return 404, {"status": "not found", "endpoints": [*endpoints, METRICS_PATH]}
    if method not in ("GET", "HEAD"):
        return 405, {"status": "method not allowed", "allow": ["GET", "HEAD"]}
    if path == METRICS_PATH:  # respond() renders GET and HEAD: the exposition is not JSON
        return 200, {"status": "ok"}
    try:
        query = parse_qs(
            url.query, keep_blank_values=True, errors="replace", max_num_fields=MAX_QUERY_FIELDS
        )
    except ValueError:
        return 400, {"status": f"too many query parameters (limit {MAX_QUERY_FIELDS})"}
    if path == endpoints[0]:
        return _live(shared, config, query, started, now)
    if path == endpoints[2]:
        return readiness.decide_startup(shared.started)
    if shared.phase == state.Phase.STARTING:
        return 503, {"status": "starting"}
    alive = [s for s in shared.slots() if now - s.beat <= config.heartbeat_timeout]
    view = readiness.pod_view(shared.draining, alive, now)
    return readiness.decide_ready(view, query, only=None if path == endpoints[1] else one_check)


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
