"""tests/manifests/gunicorn.conf.py with every drain setting as an install() argument."""

from gunicorn_zdt.conf import *  # noqa: F403

worker_class = "gthread"
threads = 4
timeout = 20

install(  # noqa: F405
    globals(),
    drain_seconds=6,
    drain_max_seconds=12,
    grace_period_seconds=40,
    prestop_seconds=3,
    probe_bind="0.0.0.0:8081",
)
