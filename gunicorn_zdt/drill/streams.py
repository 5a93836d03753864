"""Long-lived server-sent-events clients next to the request load (``--stream-clients``).

Each client opens ``GET <stream path>`` through the Service, as the other clients do,
and reads events until the response ends, then reconnects as a browser's EventSource
would: after the ``retry:`` hint the server sent (3 s when none; multiplied by
``--time-scale``, like the other modelled waits), with ``Last-Event-ID``. How a
stream that had its response head ended (exactly one outcome):

* ``reconnect`` (success): the body ended cleanly (end of the chunked body, of the
  ``Content-Length``, or EOF of a close-delimited body) and its last event was
  ``event: reconnect``: the server ended the stream on its own terms;
* ``stream_cut``: the body ended cleanly, or the connection closed before the body's end,
  without that final event;
* ``stream_reset``: ECONNRESET / EPIPE after the response head;
* ``stream_timeout``: no byte for the client timeout (``--timeout``) while the stream was open;
* ``open_at_end`` (no failure): the load stopped while the stream was still open.

Before the response head a stream is a request like any other and fails with the
request classes (``refused``, ``reset``, ``closed``, ``timeout``, ``5xx``; a non-2xx
answer is ``other``). A stream opened after a ``reconnect`` end is a reconnect; it
succeeded when its first event arrived (from another pod, when the Service can tell).

Events are parsed as the HTML standard's EventSource does: lines end with CRLF, LF or
CR; a blank line dispatches the event; an event without a ``data`` line is not
dispatched (so the final event must carry ``data:``, e.g. ``data: {}``); ``retry``
takes effect when read.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .outcomes import Record, classify

STREAM_FAILURE_CLASSES = ("stream_reset", "stream_cut", "stream_timeout")
RECONNECT_EVENT = "reconnect"
DEFAULT_RETRY_MS = 3000  # EventSource's reconnection time without a hint (browsers: ~3 s)
_POLL_SECONDS = 0.25  # how often a reading client looks at the stop flag
_EOL = re.compile(rb"\r\n|\n|\r")


@dataclass(frozen=True)
class SseEvent:
    type: str
    data: str
    id: str


class SseResponse:
    """An HTTP/1.1 response carrying ``text/event-stream``, parsed as raw bytes arrive."""

    def __init__(self) -> None:
        self.got_bytes = False
        self.head_done = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body_complete = False  # the body ended as its framing says
        self.events: list[SseEvent] = []
        self.retry_ms: int | None = None
        self.last_event_id = ""
        self._buf = b""  # bytes not yet framed (head, chunk sizes)
        self._framing = ""  # "chunked", "length" or "close"
        self._left = 0  # bytes left in the current chunk / the Content-Length body
        self._chunk_crlf = False  # the CRLF after a chunk's data is due
        self._last_chunk = False  # the 0-size chunk was read; the trailer section is due
        self._text = b""  # event-stream bytes not yet split into lines
        self._type = ""
        self._data: list[str] = []
        self._id = ""

    @property
    def last_event(self) -> SseEvent | None:
        return self.events[-1] if self.events else None

    @property
    def ended_with_reconnect(self) -> bool:
        last = self.last_event
        return self.body_complete and last is not None and last.type == RECONNECT_EVENT

    def feed(self, data: bytes) -> list[SseEvent]:
        """Take the next bytes from the connection; returns the events they completed."""
        if data:
            self.got_bytes = True
        before = len(self.events)
        self._buf += data
        if not self.head_done:
            if b"\r\n\r\n" not in self._buf:
                return []
            head, _, self._buf = self._buf.partition(b"\r\n\r\n")
            self._head(head)
        if not self.body_complete:
            self._body()
        return self.events[before:]

    def eof(self) -> None:
        """The connection ended cleanly: that completes a close-delimited body only."""
        if self.head_done and self._framing == "close":
            self.body_complete = True

    def _head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        for line in lines[1:]:
            key, _, value = line.partition(":")
            self.headers[key.strip().lower()] = value.strip()
        self.head_done = True
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            self._framing = "chunked"
        elif "content-length" in self.headers:
            self._framing = "length"
            self._left = int(self.headers["content-length"])
            self.body_complete = self._left == 0
        else:
            self._framing = "close"

    def _body(self) -> None:
        if self._framing == "close":
            self._events(self._buf)
            self._buf = b""
        elif self._framing == "length":
            take, self._buf = self._buf[: self._left], self._buf[self._left :]
            self._left -= len(take)
            self._events(take)
            self.body_complete = self._left == 0
        else:
            self._chunks()

    def _chunks(self) -> None:
        while True:
            if self._left:
                take, self._buf = self._buf[: self._left], self._buf[self._left :]
                self._left -= len(take)
                self._events(take)
                if self._left:
                    return
                self._chunk_crlf = True
            if self._chunk_crlf:
                if len(self._buf) < 2:
                    return
                self._buf, self._chunk_crlf = self._buf[2:], False
            line, sep, rest = self._buf.partition(b"\r\n")
            if not sep:
                return
            if self._last_chunk:  # trailer fields until an empty line
                self._buf = rest
                if not line:
                    self.body_complete = True
                    return
                continue
            self._buf = rest
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self._last_chunk = True
            else:
                self._left = size

    def _events(self, data: bytes) -> None:
        self._text += data
        while m := _EOL.search(self._text):
            if m.group() == b"\r" and m.end() == len(self._text):
                return  # maybe the first half of a CRLF
            line = self._text[: m.start()].decode("utf-8", "replace")
            self._text = self._text[m.end() :]
            self._line(line)

    def _line(self, line: str) -> None:
        if not line:
            if self._data:
                self.events.append(
                    SseEvent(self._type or "message", "\n".join(self._data), self._id)
                )
            self._type, self._data = "", []
            return
        if line.startswith(":"):
            return  # a comment
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)


def stream_outcome(response: SseResponse, exc: BaseException | None) -> tuple[str | None, str]:
    """(failure class or None, detail) of a stream whose 2xx response head had arrived.

    ``exc`` is what ended the reading (None: the body ended, or the connection closed).
    """
    if response.body_complete:
        if response.ended_with_reconnect:
            return None, "ended cleanly after the reconnect event"
        last = response.last_event
        after = f"last event {last.type!r}" if last else "no event"
        return "stream_cut", f"the response ended without the final reconnect event ({after})"
    if exc is None:
        last = response.last_event
        return "stream_cut", (
            f"closed before the end of the body ({len(response.events)} events, "
            f"last {last.type if last else 'none'!r})"
        )
    if isinstance(exc, TimeoutError):
        return "stream_timeout", f"no byte for the client timeout ({exc})"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "stream_reset", f"{type(exc).__name__} after {len(response.events)} events: {exc}"
    return "stream_cut", f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class StreamRecord:
    """One stream (one connection) of a stream client; times in rehearsal seconds."""

    client: str
    opened_at: float
    ended_at: float
    pod: str | None  # the pod the Service routed it to, when the Service model knows
    status: int  # 0: no response head
    events: int
    outcome: str  # "reconnect", "open_at_end", or a failure class
    detail: str
    reconnect: bool  # opened after the previous stream ended with the reconnect event
    previous_pod: str | None  # that previous stream's pod

    @property
    def failed(self) -> bool:
        return self.outcome not in ("reconnect", "open_at_end")


class StreamClient:
    """One EventSource-like client in its own thread: a stream, the wait, the next one."""

    def __init__(
        self,
        name: str,
        port: int,
        path: str,
        *,
        timeout: float,
        time_scale: float,
        now: Callable[[], float],
        stop: threading.Event,
        emit: Callable[[Record, StreamRecord], None],
        was_refused: Callable[[int], bool] = lambda _port: False,
        pod_of: Callable[[int], str | None] = lambda _port: None,
    ) -> None:
        self.name = name
        self.port = port
        self.path = path
        self.timeout = timeout
        self.time_scale = time_scale
        self.now = now
        self.stop = stop
        self.emit = emit
        self.was_refused = was_refused
        self.pod_of = pod_of
        self.retry_ms = DEFAULT_RETRY_MS
        self.last_event_id = ""

    def run(self) -> None:
        reconnect, previous_pod = False, None
        while not self.stop.is_set():
            record, stream = self._stream(reconnect, previous_pod)
            self.emit(record, stream)
            if stream.outcome == "open_at_end":
                return
            reconnect, previous_pod = stream.outcome == "reconnect", stream.pod
            # modelled: the client's reconnection delay (the server's retry: hint, scaled)
            self.stop.wait(self.retry_ms / 1000 * self.time_scale)

    def _stream(self, reconnect: bool, previous_pod: str | None) -> tuple[Record, StreamRecord]:
        start = self.now()
        response = SseResponse()
        exc: BaseException | None = None
        stopped = False
        pod = None
        local_port = 0

        def on_data() -> None:  # which pod serves it: known once the Service connected one
            nonlocal pod
            if pod is None:
                pod = self.pod_of(local_port)

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            local_port = int(sock.getsockname()[1])
            sock.settimeout(self.timeout)
            sock.connect(("127.0.0.1", self.port))
            head = f"GET {self.path} HTTP/1.1\r\nHost: drill\r\nUser-Agent: gunicorn-zdt-drill\r\n"
            head += "Accept: text/event-stream\r\nCache-Control: no-cache\r\n"
            if self.last_event_id:
                head += f"Last-Event-ID: {self.last_event_id}\r\n"
            sock.sendall(head.encode() + b"\r\n")
            stopped = self._receive(sock, response, on_data=on_data)
        except Exception as e:  # connect, send or read: classified below
            exc = e
        finally:
            sock.close()
        if response.retry_ms is not None:
            self.retry_ms = response.retry_ms
        if response.last_event_id:
            self.last_event_id = response.last_event_id
        failure, outcome, detail = self._outcome(response, exc, stopped, local_port)
        end = self.now()
        record = Record(
            round(start, 4), round(end - start, 4), "stream", "GET", response.status, failure,
            False, detail,
        )  # fmt: skip
        stream = StreamRecord(
            client=self.name,
            opened_at=round(start, 4),
            ended_at=round(end, 4),
            pod=pod,
            status=response.status,
            events=len(response.events),
            outcome=outcome,
            detail=detail,
            reconnect=reconnect,
            previous_pod=previous_pod,
        )
        return record, stream

    def _receive(
        self, sock: socket.socket, response: SseResponse, *, on_data: Callable[[], None]
    ) -> bool:
        """Read the stream into ``response`` until it ends or breaks off (errors raise); True
        when the load stopped first. Silence longer than the client timeout raises."""
        idle_until = time.monotonic() + self.timeout
        while True:
            if self.stop.is_set():
                return True
            sock.settimeout(max(0.001, min(_POLL_SECONDS, idle_until - time.monotonic())))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                if time.monotonic() >= idle_until:
                    raise TimeoutError(f"{self.timeout:g} s") from None
                continue
            if not data:
                response.eof()
                return False
            idle_until = time.monotonic() + self.timeout
            on_data()
            response.feed(data)
            if response.head_done and not 200 <= response.status < 300:
                return False
            if response.body_complete:
                return False

    def _outcome(
        self, response: SseResponse, exc: BaseException | None, stopped: bool, local_port: int
    ) -> tuple[str | None, str, str]:
        """(failure class or None, outcome, detail) of one stream."""
        failure: str | None
        if stopped:
            return None, "open_at_end", "still open when the load stopped"
        if not response.head_done:
            if exc is None:
                failure, detail = "closed", "the connection ended before a response"
            else:
                failure = classify(
                    exc,
                    reused=False,
                    idempotent=True,
                    got_bytes=response.got_bytes,
                    refused=not response.got_bytes and self.was_refused(local_port),
                )
                detail = f"{type(exc).__name__}: {exc}"
            outcome = failure
        elif not 200 <= response.status < 300:
            failure = "5xx" if response.status >= 500 else "other"
            outcome, detail = failure, f"status {response.status}: no event stream"
        else:
            failure, detail = stream_outcome(response, exc)
            outcome = failure or "reconnect"
        return failure, outcome, detail


def summarize_streams(
    streams: list[StreamRecord], *, path: str | None, clients: int
) -> dict[str, object] | None:
    """The streams' counts and list for the report; None when no stream client ran."""
    if not clients:
        return None
    streams = sorted(streams, key=lambda s: s.opened_at)
    reconnects = [s for s in streams if s.reconnect]
    served = [s for s in reconnects if s.events]
    return {
        "path": path,
        "clients": clients,
        "attempts": len(streams),
        "opened": sum(1 for s in streams if 200 <= s.status < 300),
        "ended_with_reconnect": sum(1 for s in streams if s.outcome == "reconnect"),
        "failed": sum(1 for s in streams if s.failed),
        "open_at_end": sum(1 for s in streams if s.outcome == "open_at_end"),
        "reconnects": len(reconnects),
        "reconnects_with_event": len(served),
        "reconnects_to_another_pod": sum(
            1 for s in served if s.pod and s.previous_pod and s.pod != s.previous_pod
        ),
        "pods_known": any(s.pod for s in streams),
        "events": sum(s.events for s in streams),
        "list": [s.__dict__ for s in streams[:500]],
    }
