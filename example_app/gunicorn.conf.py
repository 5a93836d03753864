"""Gunicorn config of the example app: the ready-made settings plus our hooks.

Binds 0.0.0.0:${PORT:-8080} (a --bind on the command line wins), WEB_CONCURRENCY
workers (default 2) of 4 threads each, the probe listener on 0.0.0.0:8081. Set ZDT_GRACE_PERIOD_SECONDS to the pod's
terminationGracePeriodSeconds and graceful_timeout is derived from it.
"""

from gunicorn_zdt.conf import *  # noqa: F403  bind, workers, keepalive, PROBE_BIND, install

worker_class = "gthread"
threads = 4
# The longest request we serve (GET /work caps at 10 s) fits well inside it.
timeout = 20

# Last, so it chains any hook defined above. The probe listener (ZDT_PROBE_BIND beats it)
# answers the kubelet even when all 8 request threads are busy: k8s/deployment.yaml probes it.
install(globals(), probe_bind=PROBE_BIND)  # noqa: F405
