"""What sits in front of the pods: ``gunicorn-zdt check --lb PRESET[:key=value,...]``.

Each preset turns into the propagation the termination budget must cover (seconds after
the pod's deletion during which new connections may still reach it) and into the fix to
print when preStop + drain does not cover it. The comparison itself is
:meth:`gunicorn_zdt.core.budget.Budget.warnings`; this module only says how long the load
balancer needs. Numbers and their sources: ``docs/k8s.md`` ("Load balancer presets").
Stdlib only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..core.budget import fmt

__all__ = ["PRESETS", "LoadBalancer", "LoadBalancerError", "parse"]


class LoadBalancerError(ValueError):
    """A ``--lb`` value that cannot be used; ``str()`` is the one-line report."""


@dataclass(frozen=True)
class LoadBalancer:
    """How a load balancer in front of the pods stops sending them new connections.

    ``routing``:
    - ``endpoints``: follows the EndpointSlice ``ready`` condition (kube-proxy, most
      ingress controllers): the pod leaves at deletion, plus ``sync_seconds`` to reach
      every node or proxy. A preStop sleep covers it.
    - ``serving``: follows the ``serving`` condition (Cilium, Envoy Gateway, MetalLB): a
      terminating pod keeps receiving new connections until its readiness probe fails,
      i.e. preStop (still ready) + SIGTERM + periodSeconds x failureThreshold + sync. A
      preStop sleep does not help; the drain must outlast the readiness probe.
    - ``health-check``: a cloud load balancer that health-checks the pods directly:
      ``interval_seconds x threshold`` after deletion, plus ``sync_seconds``.
      ``deregistration_delay_seconds`` is how long it lets in-flight requests finish
      on a deregistered target before it closes their connections.

    ``idle_seconds``: how long it keeps an idle pooled connection to a pod (its upstream
    keep-alive / idle timeout); Gunicorn's ``keepalive`` must be longer, or Gunicorn's
    close races the next request on it. None: it pools no connections (an L4 balancer)
    or it is not known.
    """

    name: str
    routing: str
    sync_seconds: float = 0.0
    interval_seconds: float = 0.0
    threshold: int = 0
    deregistration_delay_seconds: float | None = None
    #: Where it was found when not given with ``--lb`` (``Ingress/web``): lb_detect.py.
    source: str | None = None
    #: Its idle timeout for pooled connections to the pod: Gunicorn's keepalive must be longer.
    idle_seconds: float | None = None

    @property
    def label(self) -> str:
        """How a finding names it: ``--lb NAME``, or the object that says so."""
        return f"{self.name} ({self.source})" if self.source else f"--lb {self.name}"

    def propagation_seconds(
        self, prestop_seconds: float, readiness_period_seconds: float, readiness_failures: int
    ) -> float:
        """Seconds after deletion until this load balancer sends the pod no new connection."""
        if self.routing == "serving":
            detect = readiness_period_seconds * readiness_failures
            return prestop_seconds + detect + self.sync_seconds
        if self.routing == "health-check":
            return self.interval_seconds * self.threshold + self.sync_seconds
        return self.sync_seconds

    def explain(
        self, prestop_seconds: float, readiness_period_seconds: float, readiness_failures: int
    ) -> str:
        """Where the propagation comes from, for the finding's text."""
        if self.routing == "serving":
            return (
                f"{self.label}: preStop {fmt(prestop_seconds)} + readiness "
                f"{fmt(readiness_period_seconds)} s x {readiness_failures} + sync "
                f"{fmt(self.sync_seconds)}"
            )
        if self.routing == "health-check":
            return (
                f"{self.label}: health check {fmt(self.interval_seconds)} s x "
                f"{self.threshold} + sync {fmt(self.sync_seconds)}"
            )
        return f"{self.label}: sync {fmt(self.sync_seconds)}"

    def fix(self, uncovered_seconds: float, drain_setting: str) -> str:
        """What to change when preStop + drain falls ``uncovered_seconds`` short.

        ``drain_setting``: the setting the budget's drain comes from (the maximum when the
        drain adapts: ``ZDT_DRAIN_MAX_SECONDS``)."""
        more = fmt(math.ceil(uncovered_seconds))
        if self.routing == "serving":
            return (
                f"raise {drain_setting} by {more} or lower the readiness probe's "
                "periodSeconds x failureThreshold (a preStop sleep does not help: the pod "
                "stays ready while it sleeps)"
            )
        if self.routing == "health-check":
            return (
                f"add a native preStop sleep of {more} s (lifecycle.preStop.sleep.seconds, "
                "ZDT_PRESTOP_SECONDS and the grace period with it), or lower the load "
                "balancer's health-check interval x unhealthy threshold"
            )
        return f"raise {drain_setting} by {more} or add a native preStop sleep"


#: The presets; ``docs/k8s.md`` gives each number's source.
PRESETS: dict[str, LoadBalancer] = {
    # iptables/nftables min-sync-period 1 s + EndpointSlice watch latency: 3 s
    # (ZDT_MIN_PROPAGATION_SECONDS' default).
    "kube-proxy": LoadBalancer("kube-proxy", "endpoints", sync_seconds=3.0),
    # Cilium / Envoy Gateway / MetalLB route by the serving condition; 1 s to re-sync.
    "serving": LoadBalancer("serving", "serving", sync_seconds=1.0),
    # AWS Load Balancer Controller defaults: healthcheck-interval-seconds 15,
    # unhealthy-threshold-count 2; target group deregistration_delay 300 s.
    "aws-alb": LoadBalancer(
        "aws-alb",
        "health-check",
        sync_seconds=0.0,
        interval_seconds=15.0,
        threshold=2,
        deregistration_delay_seconds=300.0,
        idle_seconds=60.0,  # idle_timeout.timeout_seconds (load balancer attribute)
    ),
    # nginx with upstream keep-alive whose upstream list a controller rewrites from the
    # endpoints (ingress-nginx and the like): kube-proxy's 3 s, upstream keepalive_timeout
    # 60 s (ingress-nginx: upstream-keepalive-timeout).
    "nginx": LoadBalancer("nginx", "endpoints", sync_seconds=3.0, idle_seconds=60.0),
    # AWS Load Balancer Controller, Service of type LoadBalancer with NLB IP targets:
    # aws-load-balancer-healthcheck-interval 10, -unhealthy-threshold 3; delay 300.
    "aws-nlb": LoadBalancer(
        "aws-nlb",
        "health-check",
        interval_seconds=10.0,
        threshold=3,
        deregistration_delay_seconds=300.0,
    ),
    # GKE container-native load balancing (NEG): a Google Cloud health check of the pod
    # IPs, gcloud's defaults check-interval 5 s, unhealthy-threshold 2; connection
    # draining (BackendConfig drainingTimeoutSec) off by default.
    # Google Cloud Application Load Balancers keep backend connections 600 s (fixed).
    "gke-neg": LoadBalancer(
        "gke-neg", "health-check", interval_seconds=5.0, threshold=2, idle_seconds=600.0
    ),
    # Any load balancer that health-checks pods: give interval, threshold and delay.
    "cloud": LoadBalancer("cloud", "health-check", interval_seconds=10.0, threshold=3),
}

_KEYS = {
    "sync": "sync_seconds",
    "interval": "interval_seconds",
    "threshold": "threshold",
    "delay": "deregistration_delay_seconds",
    "idle": "idle_seconds",
}


def parse(text: str) -> LoadBalancer:
    """``aws-alb`` or ``cloud:interval=10,threshold=3,delay=60,idle=350`` -> a LoadBalancer."""
    name, _, options = text.partition(":")
    preset = PRESETS.get(name.strip())
    if preset is None:
        raise LoadBalancerError(
            f"--lb {text!r}: unknown preset {name!r}; use one of {', '.join(PRESETS)} "
            "(options: NAME:interval=S,threshold=N,delay=S,sync=S,idle=S)"
        )
    changes: dict[str, float | int] = {}
    for option in filter(None, (o.strip() for o in options.split(","))):
        key, _, raw = option.partition("=")
        if key not in _KEYS:
            raise LoadBalancerError(
                f"--lb {text!r}: unknown option {key!r}; use interval=S, threshold=N, "
                "delay=S, sync=S or idle=S"
            )
        try:
            value = float(raw.removesuffix("s"))
        except ValueError:
            value = -1.0
        if (
            not math.isfinite(value)
            or value < 0
            or (key == "threshold" and (value < 1 or not value.is_integer()))
        ):
            raise LoadBalancerError(
                f"--lb {text!r}: {key}={raw!r} must be a number of "
                f"{'checks >= 1' if key == 'threshold' else 'seconds >= 0'}, e.g. {key}=2"
            )
        changes[_KEYS[key]] = int(value) if key == "threshold" else value
    return replace(preset, **changes)  # type: ignore[arg-type]
