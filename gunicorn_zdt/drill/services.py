"""Choosing the Service model by name: the in-process models, or HAProxy as a real proxy."""

from __future__ import annotations

from typing import Any

from .balancer import Service
from .haproxy import HAProxyService
from .timeline import Timeline

__all__ = ["make_service"]


def make_service(mode: str, timeline: Timeline, **kw: Any) -> Service:
    """The Service model called ``mode``; ``haproxy*`` also needs ``groups`` and ``work_dir``."""
    if mode.startswith("haproxy"):
        return HAProxyService(timeline, retries=mode == "haproxy-retry", **kw)
    kw.pop("groups", None)
    kw.pop("work_dir", None)
    return Service(mode, timeline, **kw)
