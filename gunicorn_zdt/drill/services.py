"""Choosing the Service model by name: the in-process models, or HAProxy or nginx as a real proxy."""

from __future__ import annotations

from typing import Any

from .balancer import Service
from .haproxy import HAProxyService
from .nginx import NginxService
from .timeline import Timeline

__all__ = ["make_service"]


def make_service(mode: str, timeline: Timeline, **kw: Any) -> Service:
    """The Service model called ``mode``; ``haproxy*`` and ``nginx`` also need ``groups`` and
    ``work_dir``."""
    if mode.startswith("haproxy"):
        return HAProxyService(timeline, retries=mode == "haproxy-retry", **kw)
    if mode == "nginx":
        return NginxService(timeline, **kw)
    kw.pop("groups", None)
    kw.pop("work_dir", None)
    return Service(mode, timeline, **kw)
