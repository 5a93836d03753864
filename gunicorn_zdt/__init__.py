"""gunicorn-zdt: zero-downtime rolling updates for apps served by Gunicorn on Kubernetes.

The public face (everything else is private to the package):

* ``install(globals())`` as the last line of a Gunicorn config, or the ready-made config
  ``gunicorn -c python:gunicorn_zdt.conf`` (also ``from gunicorn_zdt.conf import *``);
* ``Probes(app)`` and ``sqlalchemy_ping(engine)`` for a Flask app; for other frameworks
  ``gunicorn_zdt.health.probes`` holds the checks, Django adds
  ``gunicorn_zdt.django.ProbesMiddleware``, any WSGI app ``gunicorn_zdt.wsgi.ZdtWSGIMiddleware``,
  and ASGI apps need nothing (``install`` wraps them in ``gunicorn_zdt.asgi.ZdtMiddleware``);
* ``stopping()``, ``wait_stopping()`` (and ``gunicorn_zdt.phase``) to end long-lived
  responses in time.

Names are imported on first use, so a Gunicorn config that imports ``install`` does not
load Flask, and a Flask app that imports ``Probes`` does not load the tools.

Rooms: :mod:`.core` (pure: settings, budget, drain plan, readiness decision),
:mod:`.runtime` (inside Gunicorn), the framework adapters over one probe core
(:mod:`.health`, :mod:`.flask`, :mod:`.django`, :mod:`.asgi`, :mod:`.wsgi`), and the
offline tools: :mod:`.cli` (``gunicorn-zdt check``/``drill``), :mod:`.k8s`, :mod:`.check`
and :mod:`.drill`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_PUBLIC = {
    "install": "gunicorn_zdt.runtime.install",
    "integration_problem": "gunicorn_zdt.runtime.install",
    "stopping": "gunicorn_zdt.runtime.phase",
    "wait_stopping": "gunicorn_zdt.runtime.phase",
    "wait_stopping_async": "gunicorn_zdt.runtime.phase",
    "Probes": "gunicorn_zdt.probes",
    "sqlalchemy_ping": "gunicorn_zdt.checks",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'gunicorn_zdt' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
