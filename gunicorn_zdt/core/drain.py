"""When the drain ends: on evidence, between a minimum and a maximum. Pure, stdlib only.

A fixed drain is a guess about how long the cluster keeps sending traffic after the pod
was deleted (endpoint propagation, a load balancer's health checks). Instead the master
watches what the workers record: the drain ends once the minimum has passed, no request
has arrived on a new connection for the quiet period (probes excluded: kubelets and load
balancers keep probing a terminating pod) and nothing waits in the listen backlog (a
queued connection would be reset when the listeners close). It never runs past the
maximum, which is what the timing budget counts.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAXIMUM", "QUIET", "SIGNAL", "DrainWindow", "drain_end"]

QUIET = "minimum reached and quiet"
MAXIMUM = "maximum reached while traffic still arrived"
SIGNAL = "second signal"


@dataclass(frozen=True)
class DrainWindow:
    minimum_seconds: float  # ZDT_DRAIN_SECONDS: a quiet pod proves nothing, so it waits this
    quiet_seconds: float  # ZDT_DRAIN_QUIET_SECONDS
    maximum_seconds: float  # ZDT_DRAIN_MAX_SECONDS: the budget counts this one

    def end(self, started: float, now: float, last_arrival: float, backlog: int) -> str | None:
        """Why the drain ends now, or None while it goes on (monotonic seconds)."""
        return drain_end(self, started, now, last_arrival, backlog)


def drain_end(
    window: DrainWindow, started: float, now: float, last_arrival: float, backlog: int
) -> str | None:
    elapsed = now - started
    if elapsed >= window.maximum_seconds:
        return MAXIMUM if backlog or still_arriving(window, now, last_arrival) else QUIET
    if elapsed < window.minimum_seconds or backlog > 0:
        return None
    return None if still_arriving(window, now, last_arrival) else QUIET


def still_arriving(window: DrainWindow, now: float, last_arrival: float) -> bool:
    return last_arrival > 0 and now - last_arrival < window.quiet_seconds
