"""Choosing the Service model by name: the in-process models, or HAProxy or nginx as a real proxy."""

from __future__ import annotations

from typing import Any

from .balancer import Service
from .events import EventLog
from .haproxy import HAProxyService
from .nginx import NginxService

__all__ = ["make_service"]


def make_service(mode: str, event_log: EventLog, **kw: Any) -> Service:
    """The Service model called ``mode``; ``haproxy*`` and ``nginx`` also need ``groups`` and
    ``work_dir``."""
    if mode.startswith("haproxy"):
        return HAProxyService(event_log, retries=mode == "haproxy-retry", **kw)
    if mode == "nginx":
        return NginxService(event_log, **kw)
    kw.pop("groups", None)
    kw.pop("work_dir", None)
    return Service(mode, event_log, **kw)
