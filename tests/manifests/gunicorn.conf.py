"""The example's Gunicorn settings (timeout 20, keepalive 2, gthread) with the hooks."""

from gunicorn_zdt.conf import *  # noqa: F403

worker_class = "gthread"
threads = 4
timeout = 20

install(globals())  # noqa: F405
