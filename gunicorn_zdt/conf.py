"""A ready-made Gunicorn config: ``gunicorn -c python:gunicorn_zdt.conf yourapp:app``.

12-factor: ``PORT`` (default 8080, bound on all interfaces, as a container needs),
``WEB_CONCURRENCY`` (worker processes, default 2), ``ZDT_*`` for the drain settings,
the probe listener on ``PROBE_BIND`` (0.0.0.0:8081: the kubelet's probes are answered
even when every worker thread is busy; ``ZDT_PROBE_BIND=off`` turns it off),
and anything else through Gunicorn's own ``GUNICORN_CMD_ARGS`` or command line, which
take precedence over this module. Import from it to start your own config::

    from gunicorn_zdt.conf import *  # noqa: F403
    timeout = 20
    install(globals(), probe_bind=PROBE_BIND)  # last: derives graceful_timeout
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn_zdt.core.budget import SAFE_KEEPALIVE_SECONDS
from gunicorn_zdt.hooks import install, integration_problem


def _positive_int(name: str, default: str) -> int:
    raw = os.environ.get(name, default)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SystemExit(
            f"gunicorn-zdt: {name}={raw!r} must be a whole number >= 1, e.g. {default}"
        )
    return value


bind = [f"0.0.0.0:{_positive_int('PORT', '8080')}"]
workers = _positive_int("WEB_CONCURRENCY", "2")
# Idle keep-alive connections outlive the proxy's: nginx and AWS ALB close theirs after
# 60 s, so they close first and never race Gunicorn's close (README: "Keep-alive behind a
# proxy"). Behind Google Cloud load balancers (600 s): GUNICORN_CMD_ARGS="--keep-alive 620".
# The drain and the graceful stop close idle connections anyway: a long keepalive does
# not hold the pod's stop.
keepalive = SAFE_KEEPALIVE_SECONDS
#: The probe listener's address: probe it (port 8081, named ``probes`` in k8s/) instead of
#: the app's port, which answers only when a worker thread is free.
PROBE_BIND = "0.0.0.0:8081"

install(globals(), probe_bind=PROBE_BIND)


def nworkers_changed(server: Any, new_value: int, old_value: int | None) -> None:
    """The guard a star-importer gets: a config that never calls install(globals()).

    Gunicorn calls this hook while it sets up, before any listener or worker (``old_value``
    is None then); a config without our hooks would start with the drain off. On a later
    change (TTIN/TTOU, a reload) it leaves the running server alone.
    """
    problem = integration_problem(server.cfg)
    if problem and old_value is None:
        raise RuntimeError(problem)  # Gunicorn prints "Error: ..." and exits 1


# Star-importers get the settings, install and the guard above, not our other hooks: a hook
# of theirs defined above the star import would otherwise be replaced silently. Their own
# install(globals()) adds the hooks, chains theirs and re-derives graceful_timeout. (Their
# own nworkers_changed, defined below the star import, replaces the guard.)
__all__ = ["PROBE_BIND", "bind", "install", "keepalive", "nworkers_changed", "workers"]
