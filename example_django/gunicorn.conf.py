"""Gunicorn config of the Django example: gthread workers, the ready-made settings, our hooks.

``ZDT_EXAMPLE_WORKER=sync`` runs sync workers instead. The drain needs nothing in Django:
the hooks record it and close keep-alive connections; the probes on the app's port come
from ``gunicorn_zdt.django.ProbesMiddleware`` (settings.py), and the probe listener on 8081
answers from the same shared memory.
"""

import os

from gunicorn_zdt.conf import *  # noqa: F403  bind, workers, keepalive, PROBE_BIND, install

worker_class = "sync" if os.environ.get("ZDT_EXAMPLE_WORKER") == "sync" else "gthread"
threads = 4
# The longest request we serve (GET /work caps at 10 s) fits well inside it.
timeout = 20

install(globals(), probe_bind=PROBE_BIND)  # noqa: F405
