"""What the drain hooks resolved: the Gunicorn-side timings, as one plain value.

Shared by the hooks (start-up validation), ``gunicorn-zdt check`` and the drill, so the
checker never imports the runtime. Stdlib only (plus :mod:`budget` and :mod:`settings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import budget, settings

__all__ = ["DrainPlan", "keeps_alive"]


@dataclass(frozen=True)
class DrainPlan:
    """The Gunicorn-side settings after environment/argument/default resolution."""

    drain_seconds: float
    prestop_seconds: float
    grace_period_seconds: float | None
    min_propagation_seconds: float
    probe_bind: tuple[str, int] | None = None  # ZDT_PROBE_BIND; None: no probe listener
    heartbeat_timeout_seconds: float | None = None  # None: Gunicorn's timeout
    probe_prefix: str = "/healthz"  # ZDT_PROBE_PREFIX, also served by the probe listener

    @classmethod
    def resolve(
        cls,
        drain_seconds: float | None = None,
        grace_period_seconds: float | None = None,
        prestop_seconds: float | None = None,
    ) -> DrainPlan:
        return cls(
            drain_seconds=settings.resolve("ZDT_DRAIN_SECONDS", drain_seconds),
            prestop_seconds=settings.resolve("ZDT_PRESTOP_SECONDS", prestop_seconds),
            grace_period_seconds=settings.resolve("ZDT_GRACE_PERIOD_SECONDS", grace_period_seconds),
            min_propagation_seconds=settings.resolve("ZDT_MIN_PROPAGATION_SECONDS"),
            probe_bind=settings.resolve("ZDT_PROBE_BIND"),
            heartbeat_timeout_seconds=settings.resolve("ZDT_HEARTBEAT_TIMEOUT_SECONDS"),
            probe_prefix=settings.resolve("ZDT_PROBE_PREFIX"),
        )

    def budget_for(self, cfg: Any) -> budget.Budget:
        return budget.Budget(
            drain_seconds=self.drain_seconds,
            graceful_timeout=cfg.graceful_timeout,
            prestop_seconds=self.prestop_seconds,
            grace_period_seconds=self.grace_period_seconds,
            worker_timeout=cfg.timeout,
            keepalive_seconds=cfg.keepalive if keeps_alive(cfg) else None,
            min_propagation_seconds=self.min_propagation_seconds,
        )


def keeps_alive(cfg: Any) -> bool:
    """The sync worker closes every connection itself; keepalive matters for the others."""
    return str(cfg.worker_class_str).lower() not in {"sync", "gunicorn.workers.sync.syncworker"}
