"""Probes on the app's port for any WSGI app (Django, Falcon, Bottle, Pyramid, plain WSGI).

    from gunicorn_zdt.health import probes
    from gunicorn_zdt.wsgi import ZdtWSGIMiddleware

    probes.add_check("db", my_ping)
    application = ZdtWSGIMiddleware(application)

``PREFIX/live``, ``PREFIX/ready`` (``/ready/NAME``, ``?verbose``, ``?exclude=``) and
``PREFIX/startup`` are answered before the app sees them, from
:mod:`gunicorn_zdt.health` (the same decision and bodies as the probe listener and the
Flask extension). Everything else goes to the app. The drain itself needs no middleware
on WSGI workers: Gunicorn's ``pre_request``/``post_request`` hooks record it and close
keep-alive connections. Flask apps use :class:`gunicorn_zdt.flask.Probes` instead;
Django apps may use :class:`gunicorn_zdt.django.ProbesMiddleware` in ``MIDDLEWARE``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from . import runtime
from .health.core import HealthChecks, probes, warn_if_uncoordinated

__all__ = ["ZdtWSGIMiddleware"]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[503] = "Service Unavailable"


class ZdtWSGIMiddleware:
    """Wrap a WSGI app: answer the probes, pass everything else through."""

    def __init__(self, app: Callable[..., Iterable[bytes]], checks: HealthChecks | None = None):
        self.app = app
        self.checks = checks if checks is not None else probes
        rt = runtime.current()
        if rt is not None:  # under the hooks: every worker's publisher runs our checks
            self.checks.publish_from(rt)
        # Under Gunicorn without install(): stop the start (the drain would be off).
        runtime.refuse_unless_installed()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if not self.checks.is_probe(path):
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        warn_if_uncoordinated(environ.get("SERVER_SOFTWARE", ""))
        status, body = self.checks.respond(method, path, environ.get("QUERY_STRING", ""))
        data = json.dumps(body).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ]
        if status == 405:
            headers.append(("Allow", "GET, HEAD"))
        start_response(f"{status} {_REASONS.get(status, '')}".strip(), headers)
        return [b"" if method == "HEAD" else data]
