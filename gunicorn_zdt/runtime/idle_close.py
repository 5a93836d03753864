"""gevent workers: close idle keep-alive connections when the worker stops.

A long ``keepalive`` (the ready-made 75 s, above the 60 s after which nginx and AWS ALB
retire an idle upstream connection) keeps a proxy from racing Gunicorn's idle close. But a
stopping gevent worker counts a connection that waits for its next request as busy, for up
to ``keepalive`` seconds: with 75 s it would hold every stop (the pod's SIGTERM after the
drain, ``max_requests``, SIGHUP, TTOU) until ``graceful_timeout`` and then kill the
connections. gthread does not need this (Gunicorn 27.0.1 keeps kept-alive connections at
most 2 s at stop, ``STOP_KEEPALIVE_LINGER``); sync keeps none.

So, once the worker stops (``worker.alive`` false), every connection that is idle (between
two requests, not in a request), has been idle for at least :data:`LINGER_SECONDS` (a
client that just got a keep-alive response may be sending its next request already; it is
answered with ``Connection: close``, as every response of a stopping worker is) and has no
bytes waiting to be read, is shut for reading: its greenlet sees the end of the stream and
Gunicorn closes it with a FIN. Which connections are idle comes from the ``pre_request`` and
``post_request`` hooks (per request: two dict operations, no I/O). A request that arrives
in the instant of the close can still meet it: that race exists for every server-side close
of an idle connection; after the drain no traffic arrives any more.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from ..core import workers

__all__ = ["LINGER_SECONDS", "IdleConnections", "request_finished", "request_started", "track"]

#: How long a stopping worker keeps a connection whose last response announced keep-alive
#: (the same 2 s as Gunicorn 27.0.1's gthread ``STOP_KEEPALIVE_LINGER``).
LINGER_SECONDS = 2.0
_POLL_SECONDS = 0.1

_tracker: IdleConnections | None = None  # this worker's, once track() ran


class IdleConnections:
    """The connections of one gevent worker, keyed by the greenlet that serves each."""

    def __init__(self, worker: Any) -> None:
        from gevent import getcurrent

        self.worker = worker
        self.current = getcurrent
        self.sockets: dict[Any, socket.socket] = {}
        self.idle_since: dict[Any, float] = {}  # greenlets between two requests

    def wrap_handle(self) -> None:
        """Record each connection for as long as Gunicorn's ``handle`` serves it."""
        handle = self.worker.handle

        def handle_tracked(listener: Any, client: socket.socket, addr: Any) -> Any:
            me = self.current()
            self.sockets[me] = client
            self.idle_since[me] = time.monotonic()
            try:
                return handle(listener, client, addr)
            finally:
                self.sockets.pop(me, None)
                self.idle_since.pop(me, None)

        self.worker.handle = handle_tracked

    def started(self, greenlet: Any) -> None:
        self.idle_since.pop(greenlet, None)

    def finished(self, greenlet: Any) -> None:
        if greenlet in self.sockets:
            self.idle_since[greenlet] = time.monotonic()

    def close_idle(self, now: float) -> int:
        """Shut every connection idle for LINGER_SECONDS with nothing to read; how many."""
        from gevent import select

        closed = 0
        for greenlet, since in list(self.idle_since.items()):
            if now - since < LINGER_SECONDS:
                continue
            sock = self.sockets.get(greenlet)
            if sock is None:
                continue
            with contextlib.suppress(OSError, ValueError):
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:  # a request is arriving: served, then closed by Gunicorn
                    continue
                sock.shutdown(socket.SHUT_RD)  # its greenlet reads end-of-stream, closes
                closed += 1
            self.idle_since.pop(greenlet, None)
        return closed

    def close_when_stopping(self) -> None:
        """A greenlet: wait for the worker to stop, then close idle connections until none."""
        import gevent

        while self.worker.alive:
            gevent.sleep(_POLL_SECONDS)
        while self.sockets:
            self.close_idle(time.monotonic())
            gevent.sleep(_POLL_SECONDS)


def track(worker: Any) -> IdleConnections | None:
    """Worker, ``post_worker_init``: track a gevent worker's connections; else None.

    Only Gunicorn's ``gevent`` worker serves keep-alive connections through ``handle``
    (``gevent_pywsgi`` has its own server): the worker kind comes from :mod:`..core.workers`.
    """
    global _tracker
    if workers.kind(worker.cfg.worker_class_str) != "gevent" or not worker.cfg.keepalive:
        return None
    import gevent

    _tracker = IdleConnections(worker)
    _tracker.wrap_handle()
    gevent.spawn(_tracker.close_when_stopping)
    return _tracker


def request_started() -> None:
    """Worker, ``pre_request``: this connection is busy."""
    tracker = _tracker
    if tracker is not None:
        tracker.started(tracker.current())


def request_finished() -> None:
    """Worker, ``post_request``: this connection is idle again (if it stays open)."""
    tracker = _tracker
    if tracker is not None:
        tracker.finished(tracker.current())
