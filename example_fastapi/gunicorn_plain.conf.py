"""Baseline for the benchmarks: the FastAPI example's Gunicorn settings WITHOUT gunicorn-zdt.

Same as ``example_fastapi/gunicorn.conf.py`` but no ``install()``: no drain on SIGTERM;
serve ``example_fastapi.plain:app``, whose health routes answer 200 until the process is gone.
"""

import os

bind = [f"0.0.0.0:{os.environ.get('PORT', '8080')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = (
    "asgi" if os.environ.get("ZDT_EXAMPLE_WORKER") == "asgi" else "uvicorn_worker.UvicornWorker"
)
timeout = 20
keepalive = 2
# Gunicorn puts raw_env into the environment before it forks the workers: our
# probes then run without the hooks instead of stopping the start.
raw_env = ["ZDT_REQUIRE_INSTALL=false"]
