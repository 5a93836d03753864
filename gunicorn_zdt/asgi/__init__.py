"""ASGI apps (FastAPI, Starlette, any ASGI callable) on uvicorn-worker or Gunicorn's ``-k asgi``.

``install(globals())`` in the Gunicorn config wraps the loaded app in
:class:`ZdtMiddleware` by itself; wrap it yourself only to serve another
:class:`gunicorn_zdt.health.HealthChecks` than the process-wide ``probes``, or outside
Gunicorn (``uvicorn app:app``). Checks go on :data:`gunicorn_zdt.health.probes`.
"""

from .middleware import ZdtMiddleware

__all__ = ["ZdtMiddleware"]
