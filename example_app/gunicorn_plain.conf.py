"""Baseline for the benchmarks: the example app's Gunicorn settings WITHOUT gunicorn-zdt.

Same bind, workers, worker class, threads and timeout as ``example_app/gunicorn.conf.py``,
but Gunicorn's default ``keepalive`` of 2 s (what a config that never thought about the proxy
in front has; ours is 75 s, above the proxies' 60 s) and no ``install()``: no drain on SIGTERM (Gunicorn closes
its listeners at once), and readiness never turns 503 -- the probes keep answering 200
until the process is gone. ``benchmarks/rollout.py`` runs it as "plain Gunicorn" and, with
a preStop sleep, as the "preStop sleep only" recipe. ``ZDT_REQUIRE_INSTALL=false`` lets
the example app's probes run without the hooks (they would stop the start otherwise).
"""

import os

bind = [f"0.0.0.0:{os.environ.get('PORT', '8080')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = 4
timeout = 20
keepalive = 2
# Gunicorn puts raw_env into the environment before it forks the workers.
raw_env = ["ZDT_REQUIRE_INSTALL=false"]
