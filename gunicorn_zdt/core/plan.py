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
    drain_quiet_seconds: float = 2.0  # ZDT_DRAIN_QUIET_SECONDS
    drain_max_seconds: float | None = None  # ZDT_DRAIN_MAX_SECONDS; None: see drain_cap_seconds
    health_check_paths: tuple[str, ...] = ()  # ZDT_HEALTH_CHECK_PATHS
    report_json: bool = False  # ZDT_REPORT_JSON

    @property
    def drain_cap_seconds(self) -> float:
        """The longest the drain may run: what every time budget counts.

        Unset, the drain is fixed at its minimum: a default that lengthened it would shrink
        the derived ``graceful_timeout`` of every existing deployment (or refuse to start
        it). The shipped ``k8s/deployment.yaml`` sets a maximum, with the grace to match.
        """
        if self.drain_max_seconds is None:
            return self.drain_seconds
        return self.drain_max_seconds

    @classmethod
    def resolve(
        cls,
        drain_seconds: float | None = None,
        grace_period_seconds: float | None = None,
        prestop_seconds: float | None = None,
        drain_max_seconds: float | None = None,
        probe_bind: str | None = None,
    ) -> DrainPlan:
        """Resolve every Gunicorn-side setting; a bad value or window raises SettingError."""
        plan = cls(
            drain_seconds=settings.resolve("ZDT_DRAIN_SECONDS", drain_seconds),
            prestop_seconds=settings.resolve("ZDT_PRESTOP_SECONDS", prestop_seconds),
            grace_period_seconds=settings.resolve("ZDT_GRACE_PERIOD_SECONDS", grace_period_seconds),
            min_propagation_seconds=settings.resolve("ZDT_MIN_PROPAGATION_SECONDS"),
            probe_bind=settings.resolve("ZDT_PROBE_BIND", probe_bind),
            heartbeat_timeout_seconds=settings.resolve("ZDT_HEARTBEAT_TIMEOUT_SECONDS"),
            probe_prefix=settings.resolve("ZDT_PROBE_PREFIX"),
            drain_quiet_seconds=settings.resolve("ZDT_DRAIN_QUIET_SECONDS"),
            drain_max_seconds=settings.resolve("ZDT_DRAIN_MAX_SECONDS", drain_max_seconds),
            health_check_paths=settings.resolve("ZDT_HEALTH_CHECK_PATHS"),
            report_json=settings.resolve("ZDT_REPORT_JSON"),
        )
        plan.refuse_bad_window()
        return plan

    def refuse_bad_window(self) -> None:
        low, quiet, cap = self.drain_seconds, self.drain_quiet_seconds, self.drain_cap_seconds
        if low > cap:
            raise settings.SettingError(
                f"ZDT_DRAIN_SECONDS={budget.fmt(low)} > ZDT_DRAIN_MAX_SECONDS={budget.fmt(cap)}: "
                f"the minimum drain exceeds the maximum; raise ZDT_DRAIN_MAX_SECONDS to at least "
                f"{budget.fmt(low)} or lower ZDT_DRAIN_SECONDS"
            )
        if self.drain_max_seconds is not None and quiet > cap:  # a fixed drain ignores quiet
            raise settings.SettingError(
                f"ZDT_DRAIN_QUIET_SECONDS={budget.fmt(quiet)} > ZDT_DRAIN_MAX_SECONDS="
                f"{budget.fmt(cap)}: the drain could never end quiet; lower the quiet period "
                f"below {budget.fmt(cap)} or raise the maximum"
            )

    def budget_for(self, cfg: Any) -> budget.Budget:
        return budget.Budget(
            drain_seconds=self.drain_cap_seconds,
            drain_min_seconds=self.drain_seconds,
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
