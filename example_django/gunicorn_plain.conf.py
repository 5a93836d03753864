"""Baseline for the benchmarks: the Django example's Gunicorn settings WITHOUT gunicorn-zdt.

Same as ``example_django/gunicorn.conf.py`` but no ``install()``: no drain on SIGTERM, and
readiness (ProbesMiddleware without the hooks) never turns 503.
"""

import os

bind = [f"0.0.0.0:{os.environ.get('PORT', '8080')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync" if os.environ.get("ZDT_EXAMPLE_WORKER") == "sync" else "gthread"
threads = 4
timeout = 20
keepalive = 2
# Gunicorn puts raw_env into the environment before it forks the workers: our
# probes then run without the hooks instead of stopping the start.
raw_env = ["ZDT_REQUIRE_INSTALL=false"]
