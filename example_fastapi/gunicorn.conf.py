"""Gunicorn config of the FastAPI example: uvicorn-worker (``ZDT_EXAMPLE_WORKER=asgi``:
Gunicorn's own ``asgi`` worker), the ready-made settings, and our hooks, last.

``install(globals())`` wraps the app in gunicorn_zdt.asgi.ZdtMiddleware in each worker:
probes on the app's port, the drain's evidence, ``connection: close`` while draining.
"""

import os

from gunicorn_zdt.conf import *  # noqa: F403  bind, workers, keepalive, PROBE_BIND, install

worker_class = (
    "asgi" if os.environ.get("ZDT_EXAMPLE_WORKER") == "asgi" else "uvicorn_worker.UvicornWorker"
)
# The longest request we serve (GET /work caps at 10 s) fits well inside it.
timeout = 20

install(globals(), probe_bind=PROBE_BIND)  # noqa: F405
