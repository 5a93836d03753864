"""ASGI apps (FastAPI, Starlette, any ASGI callable) on uvicorn-worker or Gunicorn's ``-k asgi``.

``install(globals())`` in the Gunicorn config wraps the loaded app in
:class:`ZdtMiddleware` by itself; wrap it yourself only to serve another
:class:`gunicorn_zdt.health.HealthChecks` than the process-wide ``probes``, or outside
Gunicorn (``uvicorn app:app``). Checks go on :data:`gunicorn_zdt.health.probes`.

* :mod:`.middleware` - :class:`ZdtMiddleware`: probes on the app's port, and the drain's
  evidence and ``connection: close`` where no Gunicorn request hook runs.
* :mod:`.wiring` - what ``post_worker_init`` does for an ASGI worker: wrap the loaded app,
  fit the heartbeat, quiet the listening sockets at stop.
"""

from .middleware import ZdtMiddleware

__all__ = ["ZdtMiddleware"]
