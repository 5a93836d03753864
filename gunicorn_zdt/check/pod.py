"""The pod model of ``gunicorn-zdt check``: one workload, its Gunicorn config, its budget.

A :class:`Pod` is everything the rules look at for one Deployment's or StatefulSet's pod:
the workload (:mod:`gunicorn_zdt.k8s`), the Gunicorn config as Gunicorn loads it with the
pod's env (:mod:`.app_config`), the termination budget they make together
(:mod:`gunicorn_zdt.core.budget`), the objects around it and the load balancer in front
(``--lb``, else detected from the stream: :mod:`.lb_detect`). A :class:`Finding` is one
line of output::

    FILE: Kind/name: FIELD: SEVERITY[RULE]: problem; fix
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core import settings
from ..core.budget import Budget, derive_graceful_timeout
from ..core.plan import DrainPlan
from ..core.settings import SettingError
from ..k8s import PROBE_DEFAULTS, Document, Workload, autoscaler_for
from .app_config import GunicornView
from .lb import LoadBalancer
from .lb_detect import detect_load_balancer

__all__ = ["ERROR", "WARNING", "Finding", "Pod", "make_pod"]

ERROR = "error"


WARNING = "warning"


#: Up to this many replicas, one pod is 10 % or more of the capacity: none may go early.
FEW_REPLICAS = 10


#: A liveness probe that starts earlier than this needs a startupProbe in front of it.
SLOW_START_SECONDS = 30


@dataclass(frozen=True, order=True)
class Finding:
    source: str
    obj: str
    field: str
    severity: str
    rule: str
    message: str

    def line(self) -> str:
        return (
            f"{self.source}: {self.obj}: {self.field}: {self.severity}[{self.rule}]: {self.message}"
        )


@dataclass(frozen=True)
class Pod:
    """Everything the rules look at for one Deployment."""

    workload: Workload
    view: GunicornView
    budget: Budget
    prefix: str
    app_port: int | None  # the first TCP port Gunicorn binds
    listener_port: int | None  # ZDT_PROBE_BIND's port: the probe listener answers there too
    check_timeout_seconds: float
    docs: Sequence[Document]  # every object read (PodDisruptionBudgets, Services)
    lb: LoadBalancer | None = None  # --lb
    lb_explain: str | None = None  # set when the --lb preset decided the propagation
    autoscaler: Document | None = None  # the HorizontalPodAutoscaler scaling this workload

    def finding(self, rule: str, severity: str, fld: str, message: str) -> Finding:
        return Finding(self.workload.source, self.workload.ref, fld, severity, rule, message)

    @property
    def port_hint(self) -> str:
        """How a probe or Service should name the app's port."""
        w = self.workload
        names = [n for n, p in w.ports.items() if p == self.app_port and not n.isdigit()]
        return names[0] if names else str(self.app_port)

    @property
    def min_replicas(self) -> int:
        """The fewest pods a node drain can find: the HPA's minReplicas when one scales them."""
        if self.autoscaler is None:
            return self.workload.replicas
        spec = self.autoscaler.obj.get("spec") or {}
        return int(spec.get("minReplicas") or 1)  # checked by k8s.autoscaler_for; null is 1

    def on(self, doc: Document, rule: str, severity: str, fld: str, message: str) -> Finding:
        """A finding reported on another object of the stream (a Service, a PDB, an HPA)."""
        return Finding(doc.source, doc.ref, fld, severity, rule, message)


def _resolve_or_default(name: str, env: dict[str, str]) -> Any:
    try:
        return settings.resolve(name, environ=env)
    except SettingError:
        return settings.BY_NAME[name].default  # reported by the zdt-env rule


def make_pod(
    workload: Workload,
    view: GunicornView,
    docs: Sequence[Document],
    min_propagation_seconds: float | None = None,
    lb: LoadBalancer | None = None,
) -> Pod:
    """Combine a workload, its Gunicorn config and the budget they make together.

    Propagation: ``min_propagation_seconds`` (``--min-propagation``) when given; else the
    larger of the container's ``ZDT_MIN_PROPAGATION_SECONDS`` (if set) and what the load
    balancer needs (``--lb``, else the slowest one the stream names: :mod:`.lb_detect`);
    else the setting's default.
    """
    env = dict(workload.env)
    if lb is None:
        lb = detect_load_balancer(workload, docs)
    lb_explain = None
    if min_propagation_seconds is None:
        min_propagation_seconds, lb_explain = _propagation(workload, lb)
    plan = model_plan(view, env, min_propagation_seconds)
    plan_budget = plan.budget_for(view.cfg)
    if view.plan is None and view.install is not None and view.install.derives_graceful_timeout:
        # install() refused before deriving graceful_timeout: model what it would derive
        grace = plan.grace_period_seconds
        if grace is not None:
            derived = derive_graceful_timeout(grace, plan.drain_cap_seconds, plan.prestop_seconds)
            if derived > 0:
                plan_budget = dataclasses.replace(plan_budget, graceful_timeout=derived)
    pod_budget = dataclasses.replace(
        plan_budget,
        prestop_seconds=workload.prestop.seconds,
        grace_period_seconds=workload.grace_period_seconds,
        proxy_idle_seconds=lb.idle_seconds if lb is not None else None,
    )
    binds = view.tcp_binds
    return Pod(
        workload=workload,
        view=view,
        budget=pod_budget,
        prefix=_resolve_or_default("ZDT_PROBE_PREFIX", env),
        app_port=binds[0][1] if binds else None,
        listener_port=plan.probe_bind[1] if plan.probe_bind else None,
        check_timeout_seconds=_resolve_or_default("ZDT_CHECK_TIMEOUT_SECONDS", env),
        docs=docs,
        lb=lb,
        lb_explain=lb_explain,
        autoscaler=autoscaler_for(workload, docs),
    )


def _propagation(workload: Workload, lb: LoadBalancer | None) -> tuple[float, str | None]:
    """The propagation the budget covers, and the load balancer's reasons when it decided."""
    env = workload.env
    own = _resolve_or_default("ZDT_MIN_PROPAGATION_SECONDS", dict(env))
    if lb is None:
        return own, None
    ready = workload.probes.get("readiness")
    numbers = (
        workload.prestop.seconds,
        ready.period_seconds if ready else PROBE_DEFAULTS["periodSeconds"],
        ready.failure_threshold if ready else PROBE_DEFAULTS["failureThreshold"],
    )
    needed = lb.propagation_seconds(*numbers)
    if needed >= (own if "ZDT_MIN_PROPAGATION_SECONDS" in env else 0.0):
        return needed, lb.explain(*numbers)
    return own, None


def model_plan(view: GunicornView, env: dict[str, str], min_propagation: float) -> DrainPlan:
    """The plan the pod runs with; where Gunicorn refuses to start, the closest model of it.

    ``install()`` could not use a setting (the ``startup`` rule reports the refusal): each
    other setting is resolved as ``install()`` would (env > its arguments > default), so
    the other rules see the pod's real ports and drain rather than the defaults.
    No hooks: SIGTERM closes the listeners at once (no drain, no probe listener).
    """
    if view.plan is not None:
        return dataclasses.replace(view.plan, min_propagation_seconds=min_propagation)
    if view.install is None:
        return DrainPlan.no_drain(min_propagation)
    args = view.install.arguments

    def value(name: str) -> Any:
        argument = name.removeprefix("ZDT_").lower()  # install()'s keyword for the setting
        try:
            return settings.resolve(name, args.get(argument), environ=env)
        except SettingError:
            return settings.BY_NAME[name].default

    # what the rules read of a plan: the quiet period and probe prefix are not among it
    return DrainPlan(
        drain_seconds=value("ZDT_DRAIN_SECONDS"),
        prestop_seconds=value("ZDT_PRESTOP_SECONDS"),
        grace_period_seconds=value("ZDT_GRACE_PERIOD_SECONDS"),
        min_propagation_seconds=min_propagation,
        probe_bind=value("ZDT_PROBE_BIND"),
        drain_max_seconds=value("ZDT_DRAIN_MAX_SECONDS"),
    )
