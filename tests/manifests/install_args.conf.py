"""tests/manifests/gunicorn.conf.py with the grace period and preStop as install() arguments."""

from gunicorn_zdt.conf import *  # noqa: F403

worker_class = "gthread"
threads = 4
timeout = 20

install(globals(), grace_period_seconds=40, prestop_seconds=3)  # noqa: F405
