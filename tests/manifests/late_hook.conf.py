"""tests/manifests/gunicorn.conf.py with hooks defined after install(globals()): Gunicorn refuses."""

from gunicorn_zdt.conf import *  # noqa: F403

worker_class = "gthread"
threads = 4
timeout = 20

install(globals())  # noqa: F405


def pre_request(worker, req):  # type: ignore[no-untyped-def]
    """Defined after install(): replaces the hook that closes keep-alive during the drain."""


def on_exit(server):  # type: ignore[no-untyped-def]
    """Defined after install(): replaces the termination report."""
