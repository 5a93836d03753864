"""The termination timeline arithmetic, written once.

    T0 pod deleted -> preStop P -> SIGTERM -> drain D -> graceful stop G -> exit
    terminationGracePeriodSeconds >= P + D + G + margin
    P + D >= slowest endpoint propagation in front of the pod
    G >= the longest request (Gunicorn ``timeout``)

Start-up validation in the hooks, ``gunicorn-zdt check``/``timeline``, the k8s
examples and the README all call this module, so they cannot disagree. Stdlib only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Seconds kept free between Gunicorn's graceful deadline and the kubelet's SIGKILL:
#: the master's 0.1 s reap loop, SIGKILL of stragglers, ``on_exit`` and process exit.
MARGIN_SECONDS = 2.0

#: The idle timeout of the pooling proxies most pods have in front: nginx's upstream
#: ``keepalive_timeout`` (ingress-nginx's ``upstream-keepalive-timeout``) and the AWS ALB's
#: idle timeout both default to 60 s. Gunicorn's ``keepalive`` must be longer, or Gunicorn
#: closes an idle connection at the moment the proxy reuses it (a 502; a POST is lost).
COMMON_PROXY_IDLE_SECONDS = 60.0
#: The ready-made config's ``keepalive``: above COMMON_PROXY_IDLE_SECONDS by 15 s, so the
#: proxy's close always comes first even when its timer fires late or a request is slow.
SAFE_KEEPALIVE_SECONDS = 75


def fmt(seconds: float) -> str:
    """``5.0`` -> ``"5"``, ``2.5`` -> ``"2.5"``: numbers as a person writes them."""
    return f"{seconds:g}"


def derive_graceful_timeout(
    grace_period_seconds: float,
    drain_seconds: float,
    prestop_seconds: float = 0.0,
    margin_seconds: float = MARGIN_SECONDS,
) -> int:
    """The largest whole ``graceful_timeout`` that fits the grace period (Gunicorn wants an int).

    Returns 0 or less when nothing fits; ``Budget.problems`` turns that into an error.
    """
    return math.floor(grace_period_seconds - prestop_seconds - drain_seconds - margin_seconds)


@dataclass(frozen=True)
class Budget:
    """One pod's termination timings, all in seconds."""

    drain_seconds: float
    graceful_timeout: float
    prestop_seconds: float = 0.0
    grace_period_seconds: float | None = None
    worker_timeout: float | None = None
    min_propagation_seconds: float | None = None
    keepalive_seconds: float | None = None
    #: The idle timeout of the proxy or load balancer that pools connections to the pod
    #: (``check --lb``); None: unknown, compared with COMMON_PROXY_IDLE_SECONDS (a warning).
    proxy_idle_seconds: float | None = None
    margin_seconds: float = MARGIN_SECONDS
    #: The drain's minimum when it adapts (``drain_seconds`` is then its maximum); None: fixed.
    drain_min_seconds: float | None = None

    @property
    def graceful_deadline_seconds(self) -> float:
        """P + D + G: until then, counted from deletion, the pod may still answer a request."""
        return self.prestop_seconds + self.drain_seconds + self.graceful_timeout

    @property
    def required_grace_seconds(self) -> float:
        """P + D + G + margin: the shortest grace period that never SIGKILLs a request."""
        return self.graceful_deadline_seconds + self.margin_seconds

    @property
    def slack_seconds(self) -> float | None:
        if self.grace_period_seconds is None:
            return None
        return self.grace_period_seconds - self.required_grace_seconds

    def sum_text(self) -> str:
        return (
            f"preStop {fmt(self.prestop_seconds)} + drain {fmt(self.drain_seconds)} + "
            f"graceful_timeout {fmt(self.graceful_timeout)} + margin {fmt(self.margin_seconds)} "
            f"= {fmt(self.required_grace_seconds)}"
        )

    def errors(self) -> list[str]:
        """Timings that lose requests for sure; each message names the setting and the fix."""
        out = []
        slack = self.slack_seconds
        if slack is not None and slack < 0:
            fitting = derive_graceful_timeout(
                self.grace_period_seconds or 0,
                self.drain_seconds,
                self.prestop_seconds,
                self.margin_seconds,
            )
            lower = (
                f" or lower graceful_timeout to {fitting}"
                if fitting > 0
                else " (drain and preStop alone leave no room for graceful_timeout)"
            )
            out.append(
                f"terminationGracePeriodSeconds {fmt(self.grace_period_seconds or 0)} < "
                f"{self.sum_text()}; raise it to {fmt(math.ceil(self.required_grace_seconds))}"
                f"{lower}, so the kubelet's SIGKILL cannot cut a request"
            )
        if (
            self.grace_period_seconds is not None
            and self.prestop_seconds > self.grace_period_seconds
        ):
            out.append(
                f"preStop {fmt(self.prestop_seconds)} > terminationGracePeriodSeconds "
                f"{fmt(self.grace_period_seconds)}; the pod is killed before SIGTERM is even "
                "sent: shorten preStop or raise the grace period"
            )
        if self.proxy_idle_seconds is not None:
            problem = self.keepalive_problem(
                self.proxy_idle_seconds, "the load balancer's idle timeout"
            )
            if problem:
                out.append(problem)
        return out

    def keepalive_problem(self, idle_seconds: float, whose: str) -> str | None:
        """Gunicorn's ``keepalive`` at or below the idle timeout of what pools connections.

        Whoever closes an idle connection first races the other side's next request on
        it; the proxy must close first (the rule every proxy vendor gives), so Gunicorn's
        keepalive must be longer. During the drain and at the graceful stop idle
        connections are closed anyway (each response says ``Connection: close``; Gunicorn
        closes the idle ones), so a long keepalive does not hold the stop.
        """
        keepalive = self.keepalive_seconds
        if keepalive is None or keepalive <= 0 or keepalive > idle_seconds:
            return None
        return (
            f"keepalive {fmt(keepalive)} <= {fmt(idle_seconds)}, {whose}: Gunicorn closes "
            "idle connections first, and a request the proxy sends on one at that moment "
            "fails (502; a POST is lost); raise keepalive above it, e.g. "
            f"--keep-alive {fmt(math.ceil(idle_seconds) + 15)}"
        )

    def warnings(self) -> list[str]:
        """Timings that may lose requests under some traffic."""
        out = []
        if self.worker_timeout is not None and self.graceful_timeout < self.worker_timeout:
            out.append(
                f"graceful_timeout {fmt(self.graceful_timeout)} < timeout "
                f"{fmt(self.worker_timeout)}: a request that runs longer than "
                f"{fmt(self.graceful_timeout)} s when the graceful stop begins is cut; lower "
                "timeout or raise graceful_timeout (and the grace period with it)"
            )
        if (
            self.min_propagation_seconds is not None
            and self.prestop_seconds + self.drain_seconds < self.min_propagation_seconds
        ):
            out.append(
                f"preStop {fmt(self.prestop_seconds)} + drain {fmt(self.drain_seconds)} < "
                f"propagation {fmt(self.min_propagation_seconds)}: new connections may still "
                "arrive after the listeners close; raise ZDT_DRAIN_SECONDS or add a preStop sleep"
            )
        if self.proxy_idle_seconds is None:
            problem = self.keepalive_problem(
                COMMON_PROXY_IDLE_SECONDS,
                "the idle timeout of the pooling proxies usually in front (nginx upstream "
                "keepalive_timeout, AWS ALB)",
            )
            if problem:
                out.append(problem)
        return out

    def timeline(self) -> list[tuple[float, str]]:
        """(seconds after pod deletion, event), in order."""
        p, d, g = self.prestop_seconds, self.drain_seconds, self.graceful_timeout
        events = [
            (0.0, "pod deleted: endpoint removal starts propagating"),
        ]
        if p:
            events.append((0.0, f"preStop sleep {fmt(p)} s starts"))
        events.append((p, "SIGTERM to the Gunicorn master: readiness 503, traffic still served"))
        low = self.drain_min_seconds
        if low is not None and low < d:
            events.append(
                (
                    p + low,
                    "drain minimum: the drain ends once no new connection came for the "
                    "quiet period",
                )
            )
            last = "drain maximum: listeners closed even if traffic still arrives"
        else:
            last = "drain ends: listeners closed, workers finish in-flight requests"
        events += [
            (p + d, last),
            (p + d + g, "graceful_timeout deadline: Gunicorn SIGKILLs remaining workers"),
        ]
        if self.grace_period_seconds is not None:
            events.append((self.grace_period_seconds, "kubelet SIGKILL (grace period ends)"))
        return sorted(events, key=lambda e: e[0])
