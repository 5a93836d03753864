"""The ASGI middleware: probes on the app's port, and the drain's evidence where no hook sees it.

``install(globals())`` wraps the loaded app in it for ``uvicorn_worker.UvicornWorker`` and
Gunicorn's own ``-k asgi`` worker (``post_worker_init``), so a user adds nothing. It

* answers ``PREFIX/live``, ``PREFIX/ready`` (and ``/ready/NAME``) and ``PREFIX/startup``
  from :mod:`gunicorn_zdt.health` (the same decision as the probe listener), before the
  app sees them;
* where Gunicorn's ``pre_request``/``post_request`` hooks do not run (uvicorn-worker never
  calls them), records the same evidence they record in the worker's shared-memory slot:
  requests on new connections while draining, in flight, served, what is being served;
  and during the drain adds ``connection: close`` to every response, so kept-alive
  clients reconnect (to a pod still in the Service). Under ``-k asgi`` the hooks run and
  do both (``req.must_close``); the middleware then only answers probes;
* stops the event loop watching the listening sockets when the graceful stop begins: the
  master shuts them so late connections are refused, and an asyncio accept loop still
  watching would log ``OSError: [Errno 22]`` on every turn until the worker exits.

Usable without the hooks too (``uvicorn app:app``): it then answers probes from this
process's checks (run off the event loop) and records nothing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .. import runtime
from ..health.core import HealthChecks, probes
from ..runtime import current_request

__all__ = ["ZdtMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Client addresses (host, port) of recent connections: a request from an address not
#: in it arrived on a new connection. ASGI gives no connection id; a client's ephemeral
#: port is unique per live connection, and this many cover every kept-alive connection a
#: worker holds (a port reused after eviction counts as new again: harmless).
_SEEN_CLIENTS = 4096


class _Closing:
    """What ``phase.stopping()`` marks for the current request (read by our ``send``)."""

    __slots__ = ("must_close",)

    def __init__(self) -> None:
        self.must_close = False


class ZdtMiddleware:
    """Wrap an ASGI app: probes on its port and the drain (see the module docstring)."""

    zdt_middleware = True  # install() does not wrap an app twice

    def __init__(self, app: ASGIApp, checks: HealthChecks | None = None) -> None:
        self.app = app
        self.checks = checks if checks is not None else probes
        self._seen: collections.OrderedDict[tuple[Any, ...], None] = collections.OrderedDict()
        self._loop_pid = 0  # the loop we watch belongs to this process

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._attach_loop()
        if scope["type"] != "http":  # lifespan, websocket: the app's own business
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if self.checks.is_probe(path):
            await self._probe(scope, send, path)
            return
        rt = runtime.current()
        shared = runtime.pod_state()
        if rt is None or shared is None or rt.worker_slot is None or _hooks_see(scope):
            await self.app(scope, receive, send)
            return
        await self._recorded(scope, receive, send, rt, shared, rt.worker_slot)

    # -- probes ------------------------------------------------------------------------

    async def _probe(self, scope: Scope, send: Send, path: str) -> None:
        method = scope.get("method", "GET")
        query = scope.get("query_string", b"").decode("latin-1")
        if self.checks.needs_local_run(path):  # no hooks: checks run here, off the loop
            loop = asyncio.get_running_loop()
            status, body = await loop.run_in_executor(
                None, self.checks.respond, method, path, query
            )
        else:  # shared memory only: never blocks
            status, body = self.checks.respond(method, path, query)
        data = _json(body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if status == 405:
            headers.append((b"allow", b"GET, HEAD"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else data})

    # -- the drain's evidence (no pre_request hook in this worker) ----------------------

    async def _recorded(
        self, scope: Scope, receive: Receive, send: Send, rt: Any, shared: Any, index: int
    ) -> None:
        draining = shared.draining
        path = scope.get("path", "")
        # As in pre_request: nothing under the probe prefix, nor a load balancer's health
        # check path, is evidence that the cluster still routes traffic here.
        traffic = (
            not path.startswith(self.checks.prefix + "/") and path not in _health_check_paths()
        )
        with rt.evidence_lock:  # the loop's thread only: never contended for long
            shared.request_started(index, draining, traffic, self._new_connection(scope))
            entry = shared.serving_started(index, scope.get("method", "GET"), path)
        closing = _Closing()
        token = current_request.set(closing)

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and (shared.draining or closing.must_close):
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"
                ]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, receive, send_closing)
        finally:
            current_request.reset(token)
            with rt.evidence_lock:
                shared.request_finished(index)
                shared.serving_finished(index, entry)

    def _new_connection(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not client[1]:  # unknown, or rewritten by proxy headers (port 0):
            return True  # during the drain each connection closes after one response anyway
        key = tuple(client)
        seen = self._seen
        if key in seen:
            seen.move_to_end(key)
            return False
        seen[key] = None
        if len(seen) > _SEEN_CLIENTS:
            seen.popitem(last=False)
        return True

    # -- the event loop: coroutine checks, and the listener at stop ----------------------

    def _attach_loop(self) -> None:
        if self._loop_pid != os.getpid():
            self.attach_loop(asyncio.get_running_loop())

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Once per process: hand the loop to coroutine checks; quiet the accept loop at stop."""
        self._loop_pid = os.getpid()
        self.checks.loop = loop
        if runtime.current() is not None:
            _quiet_listener_shutdown(loop)


def _hooks_see(scope: Scope) -> bool:
    """True when Gunicorn's pre_request hook ran for this request (``-k asgi``): it set
    ``current_request`` to Gunicorn's request in this task's context."""
    req = current_request.get(None)
    return req is not None and not isinstance(req, _Closing)


def _health_check_paths() -> tuple[str, ...]:
    from ..core import settings

    global _HC_PATHS
    if _HC_PATHS is None:
        _HC_PATHS = tuple(settings.resolve("ZDT_HEALTH_CHECK_PATHS"))
    return _HC_PATHS


_HC_PATHS: tuple[str, ...] | None = None


def _quiet_listener_shutdown(loop: asyncio.AbstractEventLoop) -> None:
    """When the master shuts the listening sockets (graceful stop), the loop's accept
    callback fails with EINVAL on every turn: stop watching those sockets at the first one
    and log one line, instead of a traceback per turn until the worker exits."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        shared = runtime.pod_state()
        if (
            isinstance(exc, OSError)
            and exc.errno == errno.EINVAL
            and shared is not None
            and shared.draining
            and _stop_watching_listeners(loop)
        ):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def _stop_watching_listeners(loop: asyncio.AbstractEventLoop) -> bool:
    """Remove the loop's readers on every listening socket; True when we know them."""
    fds = list(_listeners)
    for fd in fds:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(fd)
    return bool(fds)


#: Set by the wiring (post_worker_init): the worker's listening socket descriptors.
_listeners: list[int] = []


def _json(body: dict[str, Any]) -> bytes:
    import json

    return json.dumps(body).encode()
