"""The Django middleware that answers ``PREFIX/live|ready|startup`` before any other."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from .. import runtime
from ..health.core import probes, warn_if_uncoordinated

__all__ = ["ProbesMiddleware"]


class ProbesMiddleware:
    """Answer the probes from :data:`gunicorn_zdt.health.probes`; pass the rest on.

    Put it first in ``MIDDLEWARE``: a probe then skips the others (no redirect to HTTPS,
    no session, no ``ALLOWED_HOSTS`` check: the kubelet sends the pod's IP as Host).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.checks = probes
        rt = runtime.current()
        if rt is not None:  # under the hooks: every worker's publisher runs our checks
            self.checks.publish_from(rt)
        # Under Gunicorn without install(): stop the start (the drain would be off).
        runtime.refuse_unless_installed()

    def __call__(self, request: HttpRequest) -> Any:
        path = request.path_info
        if not self.checks.is_probe(path):
            return self.get_response(request)
        method = request.method or "GET"
        warn_if_uncoordinated(request.META.get("SERVER_SOFTWARE", ""))
        status, body = self.checks.respond(method, path, request.META.get("QUERY_STRING", ""))
        response = HttpResponse(
            b"" if method == "HEAD" else json.dumps(body).encode(),
            status=status,
            content_type="application/json",
        )
        response["Cache-Control"] = "no-store"
        if status == 405:
            response["Allow"] = "GET, HEAD"
        return response
