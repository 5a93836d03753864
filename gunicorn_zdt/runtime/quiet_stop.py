"""Workers stop quietly when the master shuts the listening sockets under them.

At the graceful stop the master shuts every listening socket (``termination``), so a late
connection is refused at once instead of being queued and reset. A worker that still
watches the socket then sees its ``accept()`` fail with EINVAL: sync and gthread workers
would raise it as "Exception in worker process", gevent's ``StreamServer`` logs a
traceback and "ERROR: <StreamServer ...> failed" (once per worker, at every stop). While
the pod is stopping that error only means "no more connections": the worker stops
accepting and finishes what it serves, as it would after its own SIGTERM. Any other error,
or one outside the stop, is raised as before. Runs in each worker (``post_worker_init``).
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["tolerate_listener_shutdown"]


def tolerate_listener_shutdown(worker: Any, stopping: Callable[[], bool]) -> None:
    """Make ``worker`` take a shut listener as the end of accepting (``stopping()``: the
    pod's graceful stop has begun). Call before the worker's run loop starts."""
    accept = getattr(worker, "accept", None)
    if accept is not None:  # sync and gthread: one accept() per connection

        def accept_until_shutdown(*args: Any) -> Any:
            try:
                return accept(*args)
            except OSError as exc:
                if _shut(exc, stopping):
                    worker.alive = False
                    return None
                raise

        worker.accept = accept_until_shutdown
    ggevent = sys.modules.get("gunicorn.workers.ggevent")
    if ggevent is None or not isinstance(worker, ggevent.GeventWorker):
        return
    # gevent: the worker's run() builds its servers after this hook, from these names.
    if getattr(worker, "server_class", None) is not None:
        worker.server_class = _quiet_server(worker.server_class, worker, stopping)
    else:
        quiet = _quiet_server(getattr(ggevent, "StreamServer"), worker, stopping)  # noqa: B009
        setattr(ggevent, "StreamServer", quiet)  # noqa: B010  looked up when run() starts


def _shut(exc: OSError, stopping: Callable[[], bool]) -> bool:
    return exc.errno == errno.EINVAL and stopping()


def _quiet_server(server_class: Any, worker: Any, stopping: Callable[[], bool]) -> Any:
    if getattr(server_class, "zdt_quiet", False):
        return server_class

    class QuietServer(server_class):  # type: ignore[misc, valid-type]
        """gevent's server; a listener shut while the pod stops ends accepting, quietly."""

        zdt_quiet = True

        def do_read(self) -> Any:
            try:
                return super().do_read()
            except OSError as exc:
                if not _shut(exc, stopping):
                    raise
                worker.alive = False  # the worker's loop closes its servers next
                self.stop_accepting()
                return None

    QuietServer.__name__ = QuietServer.__qualname__ = server_class.__name__
    return QuietServer
