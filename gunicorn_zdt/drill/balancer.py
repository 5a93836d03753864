"""The Service in front of the pods: three models of what routes traffic to a pod.

* ``kube-proxy`` (L4): each new TCP connection goes to one of the endpoints the
  balancer currently knows; an established connection stays with its pod after the
  pod left the endpoint set; every endpoint change reaches the balancer after a
  random propagation delay. With no endpoint, or when the chosen pod refuses the
  connection, the client's connection is reset and its source port remembered as
  "refused" (through kube-proxy's DNAT the client would see ECONNREFUSED; a
  userspace proxy has already accepted the connection). A reset from the pod is
  passed on as a reset, a FIN as a FIN.
* ``l7``: an HTTP/1.1 proxy (ingress-nginx-like) that keeps a pool of keep-alive
  connections per pod and never retries: a pooled connection that fails before the
  response is a 502 for the client. Endpoint changes propagate as in ``kube-proxy``.
  A pooled connection idle longer than ``upstream_idle_seconds`` is closed, not reused,
  as a proxy must be configured when the app closes idle connections itself (Gunicorn's
  ``keepalive``): reusing one at the moment the app closes it is a 502 with no pod
  terminating (ingress-nginx: ``upstream-keepalive-timeout`` below the app's keepalive).
* ``haproxy``: a real HAProxy in HTTP mode instead of our ``l7`` model (see ``haproxy.py``).
* ``nginx``: a real nginx with upstream keep-alive, reloaded like an ingress (``nginx.py``).
* ``health-check``: an L4 balancer that does not watch endpoints at all (a cloud load
  balancer with pod targets): a pod is registered when it is created, added after
  ``healthy_threshold`` passing readiness checks and removed only after
  ``unhealthy_threshold`` failing ones, checked every ``interval``.

All run on one asyncio loop in a background thread; the controller calls the
thread-safe ``pod_*`` methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import struct
import threading
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .events import EventLog
from .pinning import Use

MODES = ("kube-proxy", "l7", "health-check", "haproxy", "haproxy-retry", "nginx")
_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"content-length",
}
_UPSTREAM_TIMEOUT = 60.0  # nginx's proxy_read_timeout default


@dataclass(frozen=True)
class Endpoint:
    name: str
    port: int


@dataclass(frozen=True)
class HealthCheck:
    """The health-checking balancer's settings (already time-scaled)."""

    path: str = "/healthz/ready"
    interval: float = 2.0
    timeout: float = 1.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 2


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST (SO_LINGER 0), as the kernel does for a connection it cannot keep."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None and not writer.transport.is_closing():
        writer.close()


class Service:
    """A balancer on 127.0.0.1:<random port>; see the module docstring for the modes."""

    def __init__(
        self,
        mode: str,
        event_log: EventLog,
        *,
        propagation_seconds: tuple[float, float] = (1.0, 3.0),
        health_check: HealthCheck | None = None,
        rng: random.Random | None = None,
        upstream_idle_seconds: float = 1.0,
    ) -> None:
        if mode not in MODES or mode.startswith(("haproxy", "nginx")):
            raise ValueError(f"service mode {mode!r}: use one of {', '.join(MODES)}")
        lo, hi = propagation_seconds
        if not 0 <= lo <= hi:
            raise ValueError(f"propagation {lo}-{hi} s: need 0 <= min <= max")
        self.mode = mode
        self.event_log = event_log
        self.propagation_seconds = (lo, hi)
        self.health_check = health_check or HealthCheck()
        self.rng = rng or random.Random()
        self.upstream_idle_seconds = upstream_idle_seconds
        self.port = 0
        self.endpoints: list[Endpoint] = []  # touched on the loop thread only
        self.refused_ports: set[int] = set()  # client source ports we refused for the pod
        self.connections: defaultdict[str, int] = defaultdict(int)  # new connections per pod
        self.routes: dict[int, str] = {}  # L4: open client connection (source port) -> pod
        self.upstream_failures: defaultdict[str, int] = defaultdict(int)  # l7: kind -> count
        # l7: every request sent upstream, with its upstream connection's serial (behind a
        # proxy the pinning that matters is between it and the pod, see pinning.py);
        # HAProxy's connections are not seen.
        self.upstream_uses: list[Use] = []
        self._upstream_serial: weakref.WeakKeyDictionary[asyncio.StreamWriter, int]
        self._upstream_serial = weakref.WeakKeyDictionary()
        self._serials = itertools.count(1)
        self._lock = threading.Lock()
        self._last_change: dict[str, float] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="drill-service")
        self._server: asyncio.base_events.Server | None = None
        # pod -> idle upstream connections: (reader, writer, idle since)
        self._pool: defaultdict[str, list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]]]
        self._pool = defaultdict(list)
        self._writers: set[asyncio.StreamWriter] = set()
        self._checkers: dict[str, asyncio.Task[None]] = {}
        self._routable = threading.Condition()

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> int:
        self._thread.start()
        handler = self._l7_client if self.mode == "l7" else self._l4_client
        self._server = self._call(asyncio.start_server(handler, "127.0.0.1", 0, backlog=1024))
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in self._checkers.values():
                task.cancel()
            for writer in list(self._writers):
                _reset(writer)
            for conns in self._pool.values():
                for _, writer, _ in conns:
                    _close(writer)
            # Connection handlers still waiting (an l7 stream on its upstream) end here, not
            # as tasks destroyed pending with the loop.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=2)

        with contextlib.suppress(Exception):
            self._call(shutdown(), timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- what the controller tells us (thread-safe) -----------------------------------
    def pod_created(self, name: str, port: int) -> None:
        """A pod exists: the health-checking balancer registers it as a target."""
        if self.mode == "health-check":
            ep = Endpoint(name, port)
            self._loop.call_soon_threadsafe(self._start_checker, ep)

    def pod_ready(self, name: str, port: int) -> None:
        """The EndpointSlice lists the pod as ready (reaches us after a propagation delay)."""
        if self.mode != "health-check":
            self._propagate(Endpoint(name, port), add=True)

    def pod_not_ready(self, name: str, port: int) -> None:
        """The pod left the ready endpoints (unready or deleted)."""
        if self.mode != "health-check":
            self._propagate(Endpoint(name, port), add=False)

    def wait_endpoints(self, count: int, timeout: float) -> bool:
        """Block until the balancer routes to at least ``count`` pods (or the timeout)."""
        with self._routable:
            return self._routable.wait_for(lambda: len(self.endpoints) >= count, timeout)

    def was_refused(self, client_port: int) -> bool:
        return client_port in self.refused_ports

    def pod_of(self, client_port: int) -> str | None:
        """The pod an open client connection was routed to; None when the model cannot tell
        (``l7`` and HAProxy choose a pod per request, not per client connection)."""
        return self.routes.get(client_port)

    def _propagate(self, ep: Endpoint, *, add: bool) -> None:
        lo, hi = self.propagation_seconds
        now = time.monotonic()
        with self._lock:
            # Changes of one endpoint arrive in order.
            at = max(now + self.rng.uniform(lo, hi), self._last_change.get(ep.name, 0) + 0.001)
            self._last_change[ep.name] = at
        self._loop.call_soon_threadsafe(self._apply_later, at, ep, add)

    def _apply_later(self, at: float, ep: Endpoint, add: bool) -> None:
        self._loop.call_later(max(0.0, at - time.monotonic()), self._apply, ep, add)

    def _apply(self, ep: Endpoint, add: bool) -> None:
        if add and ep not in self.endpoints:
            self.endpoints.append(ep)
            self.event_log.record(ep.name, "endpoint-added", self.mode)
        elif not add and ep in self.endpoints:
            self.endpoints.remove(ep)
            self.event_log.record(ep.name, "endpoint-removed", self.mode)
            for _, writer, _ in self._pool.pop(ep.name, []):
                _close(writer)
        with self._routable:
            self._routable.notify_all()

    # -- health-checking balancer -----------------------------------------------------
    def _start_checker(self, ep: Endpoint) -> None:
        self._checkers[ep.name] = self._loop.create_task(self._check_loop(ep))

    async def _check_loop(self, ep: Endpoint) -> None:
        hc = self.health_check
        passes = fails = 0
        healthy = False
        refused_in_a_row = 0
        while True:
            await asyncio.sleep(hc.interval)  # modelled: the balancer's check interval
            ok, refused = await self._check_once(ep)
            if ok:
                passes, fails, refused_in_a_row = passes + 1, 0, 0
                if not healthy and passes >= hc.healthy_threshold:
                    healthy = True
                    self._apply(ep, add=True)
            else:
                passes, fails = 0, fails + 1
                refused_in_a_row = refused_in_a_row + 1 if refused else 0
                if healthy and fails >= hc.unhealthy_threshold:
                    healthy = False
                    self._apply(ep, add=False)
                if not healthy and refused_in_a_row >= hc.unhealthy_threshold + 2:
                    return  # the pod is gone: stop checking it

    async def _check_once(self, ep: Endpoint) -> tuple[bool, bool]:
        """(passed, refused): one GET of the readiness path on a fresh connection."""
        hc = self.health_check
        writer = None
        try:
            async with asyncio.timeout(hc.timeout):
                reader, writer = await asyncio.open_connection("127.0.0.1", ep.port)
                writer.write(
                    f"GET {hc.path} HTTP/1.1\r\nHost: 127.0.0.1:{ep.port}\r\n"
                    "User-Agent: drill-health-check\r\nConnection: close\r\n\r\n".encode()
                )
                status_line = await reader.readline()
            parts = status_line.split()
            return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400, False
        except ConnectionRefusedError:
            return False, True
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return False, False
        finally:
            _close(writer)

    # -- L4 -----------------------------------------------------------------------------
    async def _l4_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client_port = int(writer.get_extra_info("peername")[1])
        self._writers.add(writer)
        backend: asyncio.StreamWriter | None = None
        try:
            if not self.endpoints:
                self.refused_ports.add(client_port)  # kube-proxy: REJECT, no endpoints
                _reset(writer)
                return
            ep = self.rng.choice(self.endpoints)
            try:
                b_reader, backend = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", ep.port), timeout=5
                )
            except ConnectionRefusedError:
                self.refused_ports.add(client_port)
                _reset(writer)
                return
            except (OSError, TimeoutError):
                _reset(writer)
                return
            self.connections[ep.name] += 1
            self.routes[client_port] = ep.name
            assert backend is not None
            self._writers.add(backend)
            await asyncio.gather(
                self._pump(reader, backend, writer), self._pump(b_reader, writer, backend)
            )
        finally:
            self.routes.pop(client_port, None)
            _close(writer)
            _close(backend)
            self._writers.discard(writer)
            if backend is not None:
                self._writers.discard(backend)

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        src_writer: asyncio.StreamWriter,
    ) -> None:
        """Copy one direction; pass EOF on as a half-close and a reset as a reset."""
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            if not dst.transport.is_closing() and dst.can_write_eof():
                dst.write_eof()
        except (ConnectionError, OSError):
            _reset(dst)
            _reset(src_writer)

    # -- L7 -----------------------------------------------------------------------------
    async def _l7_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, headers = _parse_head(head)
                method, target, version = request_line.split(b" ", 2)
                length = int(headers.get(b"content-length", b"0") or 0)
                body = await reader.readexactly(length) if length else b""
                client_close = (
                    headers.get(b"connection", b"").lower() == b"close" or version == b"HTTP/1.0"
                )
                response = await self._forward(method, target, headers, body)
                if response is None:  # upstream died mid-response: so does the client's
                    _reset(writer)
                    return
                status, resp_headers, resp_body = response
                out = [b"HTTP/1.1 " + status]
                out += [k + b": " + v for k, v in resp_headers]
                if isinstance(resp_body, _Stream):
                    out.append(b"Transfer-Encoding: chunked")
                else:
                    out.append(b"Content-Length: " + str(len(resp_body)).encode())
                out.append(b"Connection: " + (b"close" if client_close else b"keep-alive"))
                if isinstance(resp_body, _Stream):
                    writer.write(b"\r\n".join(out) + b"\r\n\r\n")
                    if not await resp_body.relay(writer):
                        self.upstream_failures["mid-response"] += 1
                        _reset(writer)
                        return
                else:
                    writer.write(b"\r\n".join(out) + b"\r\n\r\n" + resp_body)
                await writer.drain()
                if client_close:
                    return
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            _reset(writer)
        finally:
            _close(writer)
            self._writers.discard(writer)

    async def _forward(
        self, method: bytes, target: bytes, headers: dict[bytes, bytes], body: bytes
    ) -> tuple[bytes, list[tuple[bytes, bytes]], bytes | _Stream] | None:
        """One upstream attempt, never retried. None when the response broke off midway.

        A ``text/event-stream`` response is passed on as it arrives (a :class:`_Stream`), as
        ingress-nginx does for a response with ``X-Accel-Buffering: no``; others are buffered.
        """
        if not self.endpoints:
            return _proxy_error(b"503 Service Unavailable", b"no endpoints")
        ep = self.rng.choice(self.endpoints)
        pool = self._pool[ep.name]
        conn = await self._upstream_connection(ep)
        if conn is None:
            return _proxy_error(b"502 Bad Gateway", b"upstream connect failed")
        up_reader, up_writer, reused = conn
        serial = self._upstream_serial.get(up_writer, -1)
        started = self.event_log.now()
        lines = [method + b" " + target + b" HTTP/1.1"]
        lines += [k + b": " + v for k, v in headers.items() if k not in _HOP_BY_HOP]
        lines.append(b"Content-Length: " + str(len(body)).encode())
        lines.append(b"Connection: keep-alive")
        got_bytes = False
        try:
            up_writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            await up_writer.drain()
            async with asyncio.timeout(_UPSTREAM_TIMEOUT):
                head = await up_reader.readuntil(b"\r\n\r\n")
                got_bytes = True
                status_line, resp_headers = _parse_head(head)
                status = status_line.split(b" ", 1)[1]
                if resp_headers.get(b"content-type", b"").lower().startswith(b"text/event-stream"):
                    kept = [(k, v) for k, v in resp_headers.items() if k not in _HOP_BY_HOP]
                    self.upstream_uses.append(Use(serial, ep.name, started, server_close=False))
                    return status, kept, _Stream(up_reader, up_writer, resp_headers)
                resp_body, keep = await _read_body(up_reader, method, status, resp_headers)
        except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            self.upstream_uses.append(Use(serial, ep.name, started, server_close=False))
            _close(up_writer)
            if got_bytes:
                self.upstream_failures["mid-response"] += 1
                return None
            kind = "reused keep-alive connection" if reused else "new connection"
            self.upstream_failures[kind] += 1
            return _proxy_error(b"502 Bad Gateway", f"upstream failed ({kind})".encode())
        self.upstream_uses.append(Use(serial, ep.name, started, server_close=not keep))
        if keep and ep in self.endpoints:
            pool.append((up_reader, up_writer, time.monotonic()))
        else:
            _close(up_writer)
        kept = [(k, v) for k, v in resp_headers.items() if k not in _HOP_BY_HOP]
        return status, kept, resp_body

    async def _upstream_connection(
        self, ep: Endpoint
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool] | None:
        """A pooled connection to ``ep`` still fit for reuse, else a new one (the flag: reused);
        None when a new one cannot be opened."""
        pool = self._pool[ep.name]
        while pool:
            reader, writer, idle_since = pool.pop()
            stale = time.monotonic() - idle_since > self.upstream_idle_seconds
            if stale or reader.at_eof() or writer.transport.is_closing():
                _close(writer)
            else:
                return reader, writer, True
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", ep.port), timeout=5
            )
        except (OSError, TimeoutError):
            self.upstream_failures["connect"] += 1
            return None
        self.connections[ep.name] += 1
        self._upstream_serial[writer] = next(self._serials)
        return reader, writer, False


class _Stream:
    """An upstream response body relayed piece by piece (re-chunked), never pooled after."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        headers: dict[bytes, bytes],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.headers = headers

    async def relay(self, client: asyncio.StreamWriter) -> bool:
        """Copy the body to ``client`` as chunks, then its end; False if upstream broke off."""
        try:
            async for piece in self._pieces():
                client.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                await client.drain()
            client.write(b"0\r\n\r\n")
            return True
        except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            return False
        finally:
            _close(self.writer)

    async def _pieces(self) -> Any:
        reader = self.reader
        if self.headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            while True:
                async with asyncio.timeout(_UPSTREAM_TIMEOUT):  # between two reads, as nginx
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        while await reader.readuntil(b"\r\n") != b"\r\n":
                            pass  # trailers
                        return
                    piece = await reader.readexactly(size)
                    await reader.readexactly(2)
                yield piece
        left = int(self.headers.get(b"content-length", b"-1"))
        while left != 0:
            async with asyncio.timeout(_UPSTREAM_TIMEOUT):
                piece = await reader.read(65536 if left < 0 else min(left, 65536))
            if not piece:
                if left > 0:
                    raise asyncio.IncompleteReadError(b"", left)
                return
            left = left - len(piece) if left > 0 else left
            yield piece


def _proxy_error(status: bytes, text: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    return status, [(b"Content-Type", b"text/plain"), (b"X-Drill-Proxy", b"error")], text


def _parse_head(head: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        headers[key.strip().lower()] = value.strip()
    return lines[0], headers


async def _read_body(
    reader: asyncio.StreamReader, method: bytes, status: bytes, headers: dict[bytes, bytes]
) -> tuple[bytes, bool]:
    """(body, connection reusable)."""
    keep = headers.get(b"connection", b"").lower() != b"close"
    code = int(status.split(b" ", 1)[0])
    if method == b"HEAD" or code in (204, 304) or 100 <= code < 200:
        return b"", keep
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return b"".join(chunks), keep
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    if b"content-length" in headers:
        return await reader.readexactly(int(headers[b"content-length"])), keep
    return await reader.read(), False
