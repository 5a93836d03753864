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
from collections.abc import Mapping
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


ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One timing problem as data: which rule, the setting that decides, the numbers.

    ``message`` is the one line both the runtime (``on_starting``) and ``gunicorn-zdt
    check`` print; ``problem`` and ``fix`` are its two halves, for a renderer that
    explains the numbers its own way (the checker's load balancer presets).
    """

    kind: str  # grace-period | prestop-grace | worker-timeout | propagation | keepalive
    severity: str  # error | warning
    setting: str  # the setting that decides, e.g. ZDT_DRAIN_MAX_SECONDS
    numbers: Mapping[str, float]
    problem: str
    fix: str

    @property
    def message(self) -> str:
        return f"{self.problem}; {self.fix}"


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

    def problems(self) -> list[Problem]:
        """Every timing problem as data: errors first (each loses requests for sure), then
        warnings (they may, under some traffic). ``errors()``/``warnings()`` are their texts."""
        return [
            p
            for p in (
                self._grace_problem(),
                self._prestop_problem(),
                self._worker_timeout_problem(),
                self._propagation_problem(),
                self._keepalive_problem(),
            )
            if p is not None
        ]

    def errors(self) -> list[str]:
        """Timings that lose requests for sure; each message names the setting and the fix."""
        return [p.message for p in self.problems() if p.severity == ERROR]

    def warnings(self) -> list[str]:
        """Timings that may lose requests under some traffic."""
        return [p.message for p in self.problems() if p.severity == WARNING]

    @property
    def drain_setting(self) -> str:
        """The setting that decides the drain this budget counts: the maximum when it adapts."""
        low = self.drain_min_seconds
        if low is not None and low < self.drain_seconds:
            return "ZDT_DRAIN_MAX_SECONDS"
        return "ZDT_DRAIN_SECONDS"

    def _grace_problem(self) -> Problem | None:
        slack = self.slack_seconds
        if slack is None or slack >= 0:
            return None
        grace = self.grace_period_seconds or 0
        fitting = derive_graceful_timeout(
            grace, self.drain_seconds, self.prestop_seconds, self.margin_seconds
        )
        lower = (
            f" or lower graceful_timeout to {fitting}"
            if fitting > 0
            else " (drain and preStop alone leave no room for graceful_timeout)"
        )
        required = math.ceil(self.required_grace_seconds)
        return Problem(
            "grace-period",
            ERROR,
            "terminationGracePeriodSeconds",
            {"grace": grace, "required": self.required_grace_seconds, "fitting": fitting},
            f"terminationGracePeriodSeconds {fmt(grace)} < {self.sum_text()}",
            f"raise it to {fmt(required)}{lower}, so the kubelet's SIGKILL cannot cut a request",
        )

    def _prestop_problem(self) -> Problem | None:
        grace = self.grace_period_seconds
        if grace is None or self.prestop_seconds <= grace:
            return None
        return Problem(
            "prestop-grace",
            ERROR,
            "preStop",
            {"prestop": self.prestop_seconds, "grace": grace},
            f"preStop {fmt(self.prestop_seconds)} > terminationGracePeriodSeconds {fmt(grace)}",
            "the pod is killed before SIGTERM is even sent: shorten preStop or raise the "
            "grace period",
        )

    def _worker_timeout_problem(self) -> Problem | None:
        if self.worker_timeout is None or self.graceful_timeout >= self.worker_timeout:
            return None
        g = fmt(self.graceful_timeout)
        return Problem(
            "worker-timeout",
            WARNING,
            "timeout",
            {"graceful_timeout": self.graceful_timeout, "timeout": self.worker_timeout},
            f"graceful_timeout {g} < timeout {fmt(self.worker_timeout)}: a request that runs "
            f"longer than {g} s when the graceful stop begins is cut",
            "lower timeout or raise graceful_timeout (and the grace period with it)",
        )

    def _propagation_problem(self) -> Problem | None:
        needed = self.min_propagation_seconds
        covered = self.prestop_seconds + self.drain_seconds
        if needed is None or covered >= needed:
            return None
        return Problem(
            "propagation",
            WARNING,
            self.drain_setting,
            {"prestop": self.prestop_seconds, "drain": self.drain_seconds, "propagation": needed},
            f"preStop {fmt(self.prestop_seconds)} + drain {fmt(self.drain_seconds)} < "
            f"propagation {fmt(needed)}: new connections may still arrive after the listeners "
            "close",
            f"raise {self.drain_setting} or add a preStop sleep",
        )

    def _keepalive_problem(self) -> Problem | None:
        """Gunicorn's ``keepalive`` at or below the idle timeout of what pools connections.

        Whoever closes an idle connection first races the other side's next request on it;
        the proxy must close first (the rule every proxy vendor gives), so Gunicorn's
        keepalive must be longer. During the drain and at the graceful stop idle
        connections are closed anyway (each response says ``Connection: close``; Gunicorn
        closes the idle ones), so a long keepalive does not hold the stop. Known idle
        timeout (``--lb``): an error; unknown: a warning against the common 60 s.
        """
        keepalive = self.keepalive_seconds
        known = self.proxy_idle_seconds is not None
        idle = self.proxy_idle_seconds if known else COMMON_PROXY_IDLE_SECONDS
        assert idle is not None
        if keepalive is None or keepalive <= 0 or keepalive > idle:
            return None
        whose = (
            "the load balancer's idle timeout"
            if known
            else "the idle timeout of the pooling proxies usually in front (nginx upstream "
            "keepalive_timeout, AWS ALB)"
        )
        return Problem(
            "keepalive",
            ERROR if known else WARNING,
            "keepalive",
            {"keepalive": keepalive, "idle": idle},
            f"keepalive {fmt(keepalive)} <= {fmt(idle)}, {whose}: Gunicorn closes idle "
            "connections first, and a request the proxy sends on one at that moment fails "
            "(502; a POST is lost)",
            f"raise keepalive above it, e.g. --keep-alive {fmt(math.ceil(idle) + 15)}",
        )

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
