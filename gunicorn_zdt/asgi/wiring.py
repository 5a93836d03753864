"""Called by the hooks' ``post_worker_init``: what an ASGI worker class needs, wired in.

Kept out of the hooks so that they import no adapter until a worker turns out to be ASGI.
"""

from __future__ import annotations

from typing import Any

from ..core import workers
from . import middleware
from .middleware import ZdtMiddleware

#: uvicorn-worker beats Gunicorn's heartbeat every ``timeout_notify`` s (Gunicorn's
#: ``timeout / 2`` by default); the probe listener's liveness and the heartbeat limit
#: assume about one beat a second, like the other worker classes.
BEAT_SECONDS = 1.0


def wire_worker(worker: Any, rt: Any) -> str | None:
    """Wrap the loaded ASGI app of ``worker`` (uvicorn-worker or ``-k asgi``); None for WSGI.

    Returns the worker kind wired, for the log.
    """
    kind = workers.asgi_kind(type(worker))
    if kind is None:
        return None
    middleware._listeners[:] = [s.fileno() for s in getattr(worker, "sockets", ())]
    attribute = "asgi" if kind == "asgi" else "wsgi"
    app = getattr(worker, attribute)
    if not getattr(app, "zdt_middleware", False):
        app = ZdtMiddleware(app)
        setattr(worker, attribute, app)
    app.checks.publish_from(rt)
    if kind == "asgi":  # its loop exists already (uvicorn-worker makes its own in run())
        app.attach_loop(worker.loop)
    if kind == "uvicorn":
        config = worker.config
        config.timeout_notify = min(float(config.timeout_notify or BEAT_SECONDS), BEAT_SECONDS)
    return kind
