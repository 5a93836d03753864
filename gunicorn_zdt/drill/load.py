"""Load through the Service, without any client retry, and the check that no write was lost.

Client threads each run one kind of traffic in a bounded loop with a think time:
GETs and POSTs, on a persistent keep-alive connection or a fresh connection per
request, plus a few slow requests. A small HTTP/1.1 client on plain sockets knows
whether any response byte arrived, so every failure gets exactly one class:

* ``refused``: the connection was refused (by the balancer on behalf of the pod),
* ``reset``: ECONNRESET / EPIPE,
* ``closed``: the connection ended without a response (clean EOF),
* ``timeout``: no complete response within the client timeout,
* ``5xx``: the server (or the L7 proxy) answered 500-599,
* ``keepalive_race``: an idempotent request on a reused keep-alive connection failed
  before any response byte; browsers and many HTTP libraries retry exactly this
  class, so it is reported separately (it still counts as a failure here).

With ``stream_clients`` > 0, long-lived server-sent-events clients run next to them and
add ``stream_reset``, ``stream_cut`` and ``stream_timeout`` (see ``streams.py``).

Every POST that got 200/201 is an acknowledged write; after the rehearsal each one
must be readable (:func:`verify_writes`), else it is a lost write.

Every request of a keep-alive client is also kept as a :class:`~.pinning.Use` (which
connection, which pod, whether the response said ``Connection: close``) when the Service
names the pod of a client connection (the L4 models): what ``pinning.py`` counts.
"""

from __future__ import annotations

import itertools
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .outcomes import NoResponse, Record, classify
from .pinning import Use
from .streams import StreamClient, StreamRecord


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    keep_alive: bool


class ClientConnection:
    """One HTTP/1.1 connection to 127.0.0.1:port that records how far a response got."""

    def __init__(self, port: int, timeout: float, serial: int = 0) -> None:
        self.port = port
        self.timeout = timeout
        self.serial = serial  # unique per connection within one Load
        self.sock: socket.socket | None = None
        self.local_port = 0
        self.pod: str | None = None  # the pod the Service routed it to, once known
        self.requests = 0  # completed requests on this connection
        self.got_bytes = False  # any byte of the current response arrived

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        self.got_bytes = False
        if self.sock is None:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Bind first: the source port is known even when connect() itself fails
            # (a balancer's reset can arrive before connect() returns).
            # SO_REUSEADDR: bind(0) may then pick ports of our own TIME_WAIT connections.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.local_port = int(self.sock.getsockname()[1])
            self.sock.connect(("127.0.0.1", self.port))
        deadline = time.monotonic() + self.timeout
        head = f"{method} {path} HTTP/1.1\r\nHost: drill\r\nUser-Agent: gunicorn-zdt-drill\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + (body or b""))
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self._recv(deadline)
        raw_head, _, rest = buf.partition(b"\r\n\r\n")
        lines = raw_head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            headers[key.strip().lower()] = value.strip().lower()
        keep_alive = headers.get(b"connection") != b"close"
        if method == "HEAD" or status in (204, 304):
            data = b""
        elif b"content-length" in headers:
            length = int(headers[b"content-length"])
            while len(rest) < length:
                rest += self._recv(deadline)
            data = rest[:length]
        elif headers.get(b"transfer-encoding") == b"chunked":
            while not rest.endswith(b"0\r\n\r\n"):
                rest += self._recv(deadline)
            data = rest
        else:
            keep_alive = False
            while chunk := self._recv(deadline, eof_ok=True):
                rest += chunk
            data = rest
        self.requests += 1
        return Response(status, data, keep_alive)

    def _recv(self, deadline: float, eof_ok: bool = False) -> bytes:
        assert self.sock is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete response within the client timeout")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk and not eof_ok:
            raise NoResponse("connection closed before a complete response")
        if chunk:
            self.got_bytes = True
        return chunk


@dataclass(frozen=True)
class LoadProfile:
    """What the clients send. Paths are on the Service; ``write_path`` enables POSTs."""

    get_path: str = "/"
    write_path: str | None = None
    slow_path: str | None = None
    clients_per_kind: int = 2
    slow_clients: int = 1
    think_seconds: float = 0.01
    timeout_seconds: float = 10.0
    max_requests_per_client: int = 100_000
    stream_path: str | None = None  # server-sent events: GET here, read until the end
    stream_clients: int = 0
    #: Clients on fresh connections that pause for an idle gap drawn from ``gap_seconds``
    #: between requests (a GET, then a POST when ``write_path`` is set): behind a pooling
    #: proxy (``--service nginx``) the gaps let its upstream connections sit idle around
    #: the idle timeouts in play, where a proxy and an app closing idle connections race.
    gap_clients: int = 0
    gap_seconds: tuple[float, float] = (0.5, 2.5)

    def kinds(self) -> list[tuple[str, str, bool]]:
        """(client kind, operation, keep-alive) for every client thread."""
        ops = [("get", self.get_path)]
        if self.write_path:
            ops.append(("post", self.write_path))
        out = []
        for op, _ in ops:
            for keep in (True, False):
                style = "keepalive" if keep else "fresh"
                out += [(f"{style}-{op}", op, keep)] * self.clients_per_kind
        if self.slow_path:
            out += [("keepalive-slow", "slow", True)] * self.slow_clients
        for i in range(self.gap_clients):
            op = "post" if self.write_path and i % 2 else "get"
            out.append((f"gap-{op}", op, False))
        return out


@dataclass
class Load:
    """The running load: client threads, their records and the acknowledged writes."""

    port: int
    profile: LoadProfile
    now: Callable[[], float]
    was_refused: Callable[[int], bool] = lambda _port: False
    pod_of: Callable[[int], str | None] = lambda _port: None  # client port -> routed pod
    time_scale: float = 1.0  # stream clients' reconnection delays
    run_id: str = field(default_factory=lambda: f"{random.getrandbits(32):08x}")
    records: list[Record] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    uses: list[Use] = field(default_factory=list)  # keep-alive clients' requests, pod known
    _serials: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for i, (kind, op, keep) in enumerate(self.profile.kinds()):
            thread = threading.Thread(
                target=self._client, args=(f"{kind}-{i}", kind, op, keep), daemon=True
            )
            thread.start()
            self._threads.append(thread)
        if self.profile.stream_clients and self.profile.stream_path:
            for i in range(self.profile.stream_clients):
                client = StreamClient(
                    f"stream-{i}",
                    self.port,
                    self.profile.stream_path,
                    timeout=self.profile.timeout_seconds,
                    time_scale=self.time_scale,
                    now=self.now,
                    stop=self._stop,
                    emit=self._stream_ended,
                    was_refused=self.was_refused,
                    pod_of=self.pod_of,
                )
                thread = threading.Thread(target=client.run, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _stream_ended(self, record: Record, stream: Any) -> None:
        with self._lock:
            self.records.append(record)
            self.streams.append(stream)

    def stop(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + self.profile.timeout_seconds + 1
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _request(self, op: str, item_id: str) -> tuple[str, str, bytes | None, str]:
        """(method, path, body, write id) of one request of kind ``op``."""
        p = self.profile
        if op == "post":
            body = json.dumps({"id": item_id, "by": "gunicorn-zdt drill"}).encode()
            return "POST", p.write_path or "/", body, item_id
        return "GET", (p.slow_path if op == "slow" else p.get_path) or "/", None, ""

    def _client(self, name: str, kind: str, op: str, keepalive: bool) -> None:
        p = self.profile
        gaps = random.Random(f"{self.run_id}-{name}") if kind.startswith("gap-") else None
        conn = ClientConnection(self.port, p.timeout_seconds, next(self._serials))
        for n in range(p.max_requests_per_client):
            if self._stop.is_set():
                break
            method, path, body, item_id = self._request(op, f"drill-{self.run_id}-{name}-{n}")
            reused = conn.requests > 0 and conn.sock is not None
            start = self.now()
            failure, status, detail, close = None, 0, "", not keepalive
            server_close = False
            try:
                response = conn.request(method, path, body)
            except Exception as exc:
                failure = classify(
                    exc,
                    reused=reused,
                    idempotent=method == "GET",
                    got_bytes=conn.got_bytes,
                    refused=not reused and self.was_refused(conn.local_port),
                )
                detail, close = f"{type(exc).__name__}: {exc}", True
                if failure == "refused" and not isinstance(exc, ConnectionRefusedError):
                    detail = f"the pod refused the connection (balancer reset it: {detail})"
            else:
                status = response.status
                server_close = not response.keep_alive
                close = close or server_close
                if status >= 500:
                    failure = "5xx"
                    detail = response.body[:120].decode(errors="replace")
                elif op == "post" and status in (200, 201):
                    with self._lock:
                        self.acked.append(item_id)
            record = Record(
                round(start, 4), round(self.now() - start, 4), kind, method, status, failure,
                reused, detail,
            )  # fmt: skip
            if keepalive and conn.pod is None and conn.sock is not None:
                # Asked while the connection is still open: the L4 models forget the route
                # when it closes. ``l7`` and HAProxy answer None (pod chosen per request).
                conn.pod = self.pod_of(conn.local_port)
            with self._lock:
                self.records.append(record)
                if keepalive and conn.pod is not None:
                    self.uses.append(Use(conn.serial, conn.pod, record.t, server_close))
            if close:
                conn.close()
                conn = ClientConnection(self.port, p.timeout_seconds, next(self._serials))
            # modelled: the client's think time, or its idle gap
            self._stop.wait(gaps.uniform(*p.gap_seconds) if gaps else p.think_seconds)
        conn.close()


def verify_writes(
    ids: list[str], port: int, write_path: str, timeout: float = 10.0
) -> tuple[list[str], list[str]]:
    """(lost, unverified): GET ``write_path/<id>`` for every acknowledged write.

    404 means lost. Transport errors are retried on a new connection (this is the
    audit, not the load); ids still unanswered after three tries are "unverified".
    """
    lost: list[str] = []
    unverified: list[str] = []
    conn = ClientConnection(port, timeout)
    base = write_path.rstrip("/")
    for item_id in ids:
        for _attempt in range(3):
            try:
                response = conn.request("GET", f"{base}/{item_id}")
            except Exception:
                conn.close()
                conn = ClientConnection(port, timeout)
                continue
            if not response.keep_alive:
                conn.close()
                conn = ClientConnection(port, timeout)
            if response.status == 404:
                lost.append(item_id)
                break
            if response.status == 200:
                break
        else:
            unverified.append(item_id)
    conn.close()
    return lost, unverified
