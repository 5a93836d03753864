"""The rules of ``gunicorn-zdt check``, grouped by concern; :data:`RULES` is their order.

- :mod:`.budget`: grace period, preStop, propagation, deregistration, worker timeout,
  keep-alive, probe-level grace periods, and every start-up refusal of the runtime.
- :mod:`.gunicorn`: the hooks installed, Gunicorn as PID 1, what it binds.
- :mod:`.probes`: the probes' endpoints, ports, periods and timeouts.
- :mod:`.rollout`: the update strategy, replicas, autoscalers and PodDisruptionBudgets.
- :mod:`.routing`: Services, Ingresses and HTTPRoutes: selectors and ports.
- :mod:`.containers`: the other containers of the pod (sidecars, mesh proxies).
- :mod:`.env`: ``ZDT_*`` env against the pod spec.

``docs/k8s.md`` explains every rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..pod import Finding, Pod
from .budget import (
    rule_grace_period,
    rule_keepalive,
    rule_lb_deregistration,
    rule_prestop_grace,
    rule_probe_grace,
    rule_propagation,
    rule_worker_timeout,
)
from .containers import rule_port_clash, rule_prestop_exec_sleep, rule_sidecar
from .env import rule_zdt_env
from .gunicorn import rule_bind, rule_hooks, rule_pid1, rule_startup
from .probes import (
    rule_check_timeout,
    rule_liveness_target,
    rule_probe_listener,
    rule_probe_path,
    rule_probe_port,
    rule_readiness_period,
    rule_startup_probe,
)
from .rollout import rule_max_unavailable, rule_pdb, rule_replicas
from .routing import (
    rule_listener_exposed,
    rule_not_ready_addresses,
    rule_route_port,
    rule_selector,
    rule_service_port,
)

__all__ = ["RULES", "Rule", "check_pod"]


@dataclass(frozen=True)
class Rule:
    id: str
    check: Callable[[Pod], Iterator[Finding]]
    summary: str


RULES: tuple[Rule, ...] = (
    Rule(
        "grace-period",
        rule_grace_period,
        "grace period < preStop + drain + graceful_timeout + margin",
    ),
    Rule("prestop-grace", rule_prestop_grace, "preStop sleep longer than the grace period"),
    Rule("probe-grace", rule_probe_grace, "a probe's own grace period < P + D + G + margin"),
    Rule("propagation", rule_propagation, "preStop + drain < ZDT_MIN_PROPAGATION_SECONDS"),
    Rule("hooks", rule_hooks, "the Gunicorn config does not install the drain hooks"),
    Rule("startup", rule_startup, "Gunicorn refuses to start: the runtime's own refusal"),
    Rule("zdt-env", rule_zdt_env, "ZDT_* env invalid, unknown, or disagreeing with the pod spec"),
    Rule("pid1", rule_pid1, "Gunicorn not PID 1, or a process-group SIGTERM"),
    Rule("bind", rule_bind, "Gunicorn's bind unreachable or not a container port"),
    Rule("probe-path", rule_probe_path, "a probe not on the app's probe endpoint"),
    Rule("probe-port", rule_probe_port, "a probe on another port than Gunicorn's"),
    Rule(
        "probe-listener",
        rule_probe_listener,
        "liveness on the app's port, where busy workers make it time out",
    ),
    Rule("liveness-target", rule_liveness_target, "liveness on readiness or a dependency check"),
    Rule("readiness-period", rule_readiness_period, "readiness too slow to notice the drain"),
    Rule("check-timeout", rule_check_timeout, "probe timeout not above the check timeout"),
    Rule("startup-probe", rule_startup_probe, "no startupProbe before an early liveness probe"),
    Rule("max-unavailable", rule_max_unavailable, "a rollout that drops capacity"),
    Rule("pdb", rule_pdb, "missing, duplicate or blocking PodDisruptionBudget"),
    Rule("service-port", rule_service_port, "a Service targetPort that is not Gunicorn's port"),
    Rule("prestop-exec-sleep", rule_prestop_exec_sleep, "preStop exec sleep needs a sleep binary"),
    Rule("worker-timeout", rule_worker_timeout, "graceful_timeout < Gunicorn timeout"),
    Rule("keepalive", rule_keepalive, "keepalive <= the proxy's idle timeout"),
    Rule("replicas", rule_replicas, "one replica, or an HPA fighting spec.replicas"),
    Rule("sidecar", rule_sidecar, "a plain sidecar container that may exit mid-drain"),
    Rule(
        "port-clash",
        rule_port_clash,
        "another container declares Gunicorn's or the listener's port",
    ),
    Rule(
        "listener-exposed",
        rule_listener_exposed,
        "a Service or Ingress routes to the probe listener",
    ),
    Rule("selector", rule_selector, "a Service, PDB or HPA that matches no pod template"),
    Rule(
        "not-ready-addresses",
        rule_not_ready_addresses,
        "publishNotReadyAddresses on a Service that carries traffic",
    ),
    Rule("route-port", rule_route_port, "an Ingress or HTTPRoute to a port its Service lacks"),
    Rule(
        "lb-deregistration",
        rule_lb_deregistration,
        "the load balancer's deregistration delay < P + D + G",
    ),
)


def check_pod(pod: Pod) -> list[Finding]:
    """Every finding for one pod, in rule order."""
    return [finding for rule in RULES for finding in rule.check(pod)]
