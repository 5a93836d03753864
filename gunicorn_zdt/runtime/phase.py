"""The pod's termination phase, for application code: end long-lived responses yourself.

A server-sent-events stream, a long-poll or a WebSocket would otherwise stay on the dying
pod until ``graceful_timeout`` cuts it. The moment to end it is the start of Gunicorn's
graceful stop, *after* the drain: by then the Service sends new connections to other
pods, so a client that reconnects lands on a ready one. :func:`stopping` turns True then
(and when Gunicorn tells this worker to exit for another reason: a reload,
``max_requests``); :func:`wait_stopping` waits for it in sync, gthread and gevent
workers (under gevent it yields to other greenlets). Once either says True, the
connection of the current request is closed after its response, so the client's next
request opens a new connection. Nothing here touches the request path.

Server-sent events: a final event, a reconnect delay, then end the response::

    def stream():
        while True:
            yield f"data: {next_update()}\\n\\n"
            if wait_stopping(1.0):
                yield "event: reconnect\\nretry: 1000\\ndata: {}\\n\\n"
                return

Long-poll: answer now, empty, instead of holding the request::

    stopped = wait_stopping(timeout=25) if not messages.ready() else False
    return jsonify(messages=[] if stopped else messages.take())  # the client polls again

WebSocket (gevent; flask-sock or similar): close with 1001 "going away"::

    while not stopping():
        message = ws.receive(timeout=1)
        ...
    ws.close(1001, "server restarting")

Outside Gunicorn with gunicorn-zdt's hooks (``flask run``, unit tests) the phase is
``"unmanaged"``: :func:`stopping` stays False and :func:`wait_stopping` just waits.
Stdlib only.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import context
from .state import Phase

__all__ = ["phase", "stopping", "wait_stopping", "wait_stopping_async"]

UNMANAGED = "unmanaged"
_POLL_SECONDS = 0.05  # one watcher per worker process reads the shared phase this often

#: The request being served in this thread or greenlet (set by the ``pre_request`` hook).
current_request: contextvars.ContextVar[Any] = contextvars.ContextVar("zdt_request")
_worker_told_to_exit: Callable[[], bool] = lambda: False  # noqa: E731  set in each worker


def phase() -> str:
    """The pod's phase from shared memory: ``"starting"``, ``"serving"``, ``"draining"``
    (SIGTERM seen: readiness 503, still serving), ``"stopping"`` (graceful stop began:
    listeners closed, in-flight requests finishing) or ``"unmanaged"`` (no hooks)."""
    rt = context.current()
    return UNMANAGED if rt is None else rt.state.phase.name.lower()


def stopping() -> bool:
    """True once this worker is on its way out: the pod's graceful stop began (after the
    drain) or Gunicorn told this worker to exit. Cheap: one shared-memory read."""
    if not _stopping_now():
        return False
    _close_after_response()
    return True


def wait_stopping(timeout: float | None = None) -> bool:
    """Wait up to ``timeout`` seconds (None: for ever) for :func:`stopping`; returns it.

    Works in sync and gthread workers (threads wait on an event) and under gevent (the
    greenlet waits on a gevent event; the hub keeps serving). One watcher per process
    polls the shared phase every 50 ms, so the answer comes at most that late.
    """
    if _stopping_now():
        _close_after_response()
        return True
    if not _watcher().wait(timeout):
        return False
    _close_after_response()
    return True


async def wait_stopping_async(timeout: float | None = None) -> bool:
    """:func:`wait_stopping` for ASGI apps: awaits without blocking the event loop.

    Reads the shared phase every 50 ms (one ``asyncio.sleep`` per waiter, no thread).
    Once True, the current request's connection is closed after its response.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while not _stopping_now():
        if deadline is not None and loop.time() >= deadline:
            return False
        pause = _POLL_SECONDS if deadline is None else min(_POLL_SECONDS, deadline - loop.time())
        await asyncio.sleep(max(pause, 0.0))
    _close_after_response()
    return True


def _stopping_now() -> bool:
    rt = context.current()
    return rt is not None and (rt.state.phase == Phase.STOPPING or _worker_told_to_exit())


def _close_after_response() -> None:
    """Gunicorn closes the connection after this response: the client reconnects elsewhere."""
    req = current_request.get(None)
    if req is not None:
        req.must_close = True


def attach_worker(told_to_exit: Callable[[], bool]) -> None:
    """Worker, ``post_worker_init``: how to tell that Gunicorn told this worker to exit."""
    global _worker_told_to_exit
    _worker_told_to_exit = told_to_exit


class _Watcher:
    """Sets an event once :func:`_stopping_now` holds; a thread, or a greenlet under gevent."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        monkey = sys.modules.get("gevent.monkey")
        if monkey is not None and monkey.is_module_patched("threading"):
            import gevent
            import gevent.event

            self.event: Any = gevent.event.Event()
            gevent.spawn(self._watch, gevent.sleep)
        else:
            self.event = threading.Event()
            thread = threading.Thread(
                target=self._watch, args=(time.sleep,), name="zdt-phase", daemon=True
            )
            thread.start()

    def _watch(self, sleep: Callable[[float], Any]) -> None:
        while not _stopping_now():
            sleep(_POLL_SECONDS)
        self.event.set()

    def wait(self, timeout: float | None) -> bool:
        return bool(self.event.wait(timeout))


_watcher_lock = threading.Lock()
_current_watcher: _Watcher | None = None


def _watcher() -> _Watcher:
    """This process's watcher, started on first use (a fork starts its own)."""
    global _current_watcher
    watcher = _current_watcher
    if watcher is not None and watcher.pid == os.getpid():
        return watcher
    with _watcher_lock:  # no yield inside: safe for greenlets even if a real lock
        if _current_watcher is None or _current_watcher.pid != os.getpid():
            _current_watcher = _Watcher()
        return _current_watcher
