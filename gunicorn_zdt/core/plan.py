"""What the drain hooks resolved: the Gunicorn-side timings, as one plain value.

Shared by the hooks (start-up validation), ``gunicorn-zdt check`` and the drill, so the
checker never imports the runtime. Stdlib only (plus :mod:`budget` and :mod:`settings`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from . import budget, settings
from .drain import DrainWindow
from .workers import keeps_alive

__all__ = ["DEFAULT_DRAIN_MAX_SECONDS", "GUNICORN_TIMEOUT", "DrainPlan"]

#: The drain's maximum when ZDT_DRAIN_MAX_SECONDS is unset and the grace period unknown:
#: long enough for endpoint propagation and most load balancers' health checks (the
#: drain ends sooner once traffic stops), and the maximum the shipped examples use.
DEFAULT_DRAIN_MAX_SECONDS = 15.0
#: Gunicorn's default ``timeout``, for a config that sets none.
GUNICORN_TIMEOUT = 30.0


@dataclass(frozen=True)
class DrainPlan:
    """The Gunicorn-side settings after environment/argument/default resolution."""

    drain_seconds: float
    prestop_seconds: float
    grace_period_seconds: float | None
    min_propagation_seconds: float | None
    probe_bind: tuple[str, int] | None = None  # ZDT_PROBE_BIND; None: no probe listener
    heartbeat_timeout_seconds: float | None = None  # None: Gunicorn's timeout
    probe_prefix: str = "/healthz"  # ZDT_PROBE_PREFIX, also served by the probe listener
    drain_quiet_seconds: float = 2.0  # ZDT_DRAIN_QUIET_SECONDS
    drain_max_seconds: float | None = None  # ZDT_DRAIN_MAX_SECONDS; None: see drain_cap_seconds
    health_check_paths: tuple[str, ...] = ()  # ZDT_HEALTH_CHECK_PATHS
    report_json: bool = False  # ZDT_REPORT_JSON
    #: How the maximum was chosen, for the start-up line ("" when set explicitly).
    drain_max_reason: str = ""

    @property
    def drain_cap_seconds(self) -> float:
        """The longest the drain may run: what every time budget counts.

        :meth:`resolve` always chooses a maximum; a plan built without one (the checker's
        stand-in for a config it could not resolve) drains exactly its minimum.
        """
        if self.drain_max_seconds is None:
            return self.drain_seconds
        return self.drain_max_seconds

    @classmethod
    def no_drain(cls, min_propagation_seconds: float | None = None) -> DrainPlan:
        """What a config without our hooks runs: SIGTERM closes the listeners at once."""
        return cls(0.0, 0.0, None, min_propagation_seconds)

    @property
    def window(self) -> DrainWindow:
        """The one drain window the master runs: minimum, quiet period, maximum."""
        return DrainWindow(self.drain_seconds, self.drain_quiet_seconds, self.drain_cap_seconds)

    @classmethod
    def resolve(
        cls,
        drain_seconds: float | None = None,
        grace_period_seconds: float | None = None,
        prestop_seconds: float | None = None,
        drain_max_seconds: float | None = None,
        probe_bind: str | None = None,
        *,
        worker_timeout: float | None = None,
        graceful_timeout: float | None = None,
    ) -> DrainPlan:
        """Resolve every Gunicorn-side setting; a bad value or window raises SettingError.

        Without a maximum (ZDT_DRAIN_MAX_SECONDS or ``drain_max_seconds``) one is chosen
        (:func:`choose_maximum`) from the grace period and Gunicorn's ``timeout`` /
        ``graceful_timeout`` as the config sets them (None: Gunicorn's defaults).
        """
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
        if plan.drain_max_seconds is None:
            maximum, why = choose_maximum(plan, worker_timeout, graceful_timeout)
            plan = dataclasses.replace(plan, drain_max_seconds=maximum, drain_max_reason=why)
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
        chosen = self.drain_max_seconds is None or self.drain_max_reason  # not the user's
        if not chosen and low < cap < quiet:  # a fixed drain (cap = low) ignores quiet
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


def choose_maximum(
    plan: DrainPlan, worker_timeout: float | None, graceful_timeout: float | None
) -> tuple[float, str]:
    """The drain's maximum when none is set, and why (one clause for the start-up line).

    Grace period known: all it leaves once preStop, the margin and a ``graceful_timeout``
    that covers the longest request (the config's ``graceful_timeout``, else Gunicorn's
    ``timeout``) are counted, so the derived ``graceful_timeout`` never drops below
    ``timeout``; when that leaves less than the minimum, the drain is fixed at its minimum.
    Unknown: :data:`DEFAULT_DRAIN_MAX_SECONDS`. Never below the minimum, never above the
    longest duration a setting accepts; a minimum of 0 keeps the drain off.
    """
    low = plan.drain_seconds
    grace = plan.grace_period_seconds
    if low == 0:
        return 0.0, "0: ZDT_DRAIN_SECONDS=0 turns the drain off"
    if grace is None:
        return max(low, DEFAULT_DRAIN_MAX_SECONDS), (
            f"default {budget.fmt(DEFAULT_DRAIN_MAX_SECONDS)} s: the grace period is unknown "
            "(set ZDT_GRACE_PERIOD_SECONDS to derive it)"
        )
    if graceful_timeout is not None:
        keep, name = float(graceful_timeout), "graceful_timeout"
    else:
        keep = GUNICORN_TIMEOUT if worker_timeout is None else float(worker_timeout or 0)
        name = "timeout"
    room = grace - plan.prestop_seconds - budget.MARGIN_SECONDS - keep
    room = min(float(math.floor(room + 1e-9)), settings.MAX_SECONDS)
    spent = (
        f"grace period {budget.fmt(grace)} - preStop {budget.fmt(plan.prestop_seconds)} - "
        f"margin {budget.fmt(budget.MARGIN_SECONDS)} - {name} {budget.fmt(keep)}"
    )
    if room < low:
        return low, (
            f"fixed at the minimum: {spent} = {budget.fmt(room)} s leaves no room for a longer "
            "drain (raise the grace period or set ZDT_DRAIN_MAX_SECONDS)"
        )
    return room, f"derived: {spent}"
