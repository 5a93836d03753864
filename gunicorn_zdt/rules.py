"""The rules of ``gunicorn-zdt check``: where a workload and the Gunicorn config disagree.

Each rule looks at one :class:`Pod` (a Deployment's or StatefulSet's pod, the Gunicorn
config as Gunicorn loads it with that pod's env, the termination budget, the objects
around it: Services, Ingresses, PodDisruptionBudgets, HorizontalPodAutoscalers, and the
load balancer given with ``--lb``) and yields findings, printed one per line::

    FILE: Kind/name: FIELD: SEVERITY[RULE]: problem; fix

All timing arithmetic comes from :mod:`gunicorn_zdt.budget`; the rule texts for the
budget are the budget's own messages. ``docs/k8s.md`` explains every rule.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import settings
from .app_config import GunicornView
from .budget import Budget, fmt
from .k8s import (
    PROBE_DEFAULTS,
    SHELLS,
    Document,
    Probe,
    Workload,
    autoscaler_for,
    label_selector_matches,
    resolve_int_or_percent,
)
from .lb import LoadBalancer
from .plan import DrainPlan
from .settings import SettingError

__all__ = ["RULES", "Finding", "Pod", "Rule", "check_pod", "make_pod"]

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
    larger of the container's ``ZDT_MIN_PROPAGATION_SECONDS`` (if set) and what the
    ``--lb`` preset needs; else the setting's default.
    """
    env = dict(workload.env)
    lb_explain = None
    if min_propagation_seconds is None:
        min_propagation_seconds = _resolve_or_default("ZDT_MIN_PROPAGATION_SECONDS", env)
        if lb is not None:
            ready = workload.probes.get("readiness")
            numbers = (
                workload.prestop.seconds,
                ready.period_seconds if ready else PROBE_DEFAULTS["periodSeconds"],
                ready.failure_threshold if ready else PROBE_DEFAULTS["failureThreshold"],
            )
            needed = lb.propagation_seconds(*numbers)
            own = min_propagation_seconds if "ZDT_MIN_PROPAGATION_SECONDS" in env else 0.0
            if needed >= own:
                min_propagation_seconds, lb_explain = needed, lb.explain(*numbers)
    if view.plan is not None:
        plan = view.plan
    elif view.installed:  # install() deferred a setting error: the hooks refuse to start
        plan = DrainPlan(
            drain_seconds=settings.BY_NAME["ZDT_DRAIN_SECONDS"].default,
            prestop_seconds=settings.BY_NAME["ZDT_PRESTOP_SECONDS"].default,
            grace_period_seconds=None,
            min_propagation_seconds=min_propagation_seconds,
        )
    else:  # no hooks: SIGTERM closes the listeners at once
        plan = DrainPlan(
            drain_seconds=0.0,
            prestop_seconds=0.0,
            grace_period_seconds=None,
            min_propagation_seconds=min_propagation_seconds,
        )
    pod_budget = dataclasses.replace(
        plan.budget_for(view.cfg),
        prestop_seconds=workload.prestop.seconds,
        grace_period_seconds=workload.grace_period_seconds,
        min_propagation_seconds=min_propagation_seconds,
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


# --- budget rules: the texts are budget.py's ------------------------------------------


def _only(b: Budget, **keep: bool) -> Budget:
    """The budget with only some optional inputs, so its messages come one rule at a time."""
    return dataclasses.replace(
        b,
        worker_timeout=b.worker_timeout if keep.get("worker_timeout") else None,
        keepalive_seconds=b.keepalive_seconds if keep.get("keepalive") else None,
        proxy_idle_seconds=b.proxy_idle_seconds if keep.get("keepalive") else None,
        min_propagation_seconds=b.min_propagation_seconds if keep.get("propagation") else None,
        grace_period_seconds=b.grace_period_seconds if keep.get("grace") else None,
    )


def rule_grace_period(pod: Pod) -> Iterator[Finding]:
    for message in _only(pod.budget, grace=True).errors():
        if message.startswith("terminationGracePeriodSeconds"):
            fld = "spec.template.spec.terminationGracePeriodSeconds"
            yield pod.finding("grace-period", ERROR, fld, message)


def rule_prestop_grace(pod: Pod) -> Iterator[Finding]:
    for message in _only(pod.budget, grace=True).errors():
        if message.startswith("preStop"):
            yield pod.finding("prestop-grace", ERROR, pod.workload.prestop.field, message)


def rule_propagation(pod: Pod) -> Iterator[Finding]:
    if not pod.view.installed:
        return  # no drain at all: the hooks rule says so
    b = pod.budget
    for message in _only(b, propagation=True).warnings():
        fld = pod.workload.env_field("ZDT_DRAIN_SECONDS")
        if pod.lb is not None and pod.lb_explain is not None and b.min_propagation_seconds:
            # the budget's comparison, with the preset's reasons and fix
            head = message.split("; ", 1)[0]
            shown = f"propagation {fmt(b.min_propagation_seconds)}"
            head = head.replace(shown, f"{shown} ({pod.lb_explain})", 1)
            uncovered = b.min_propagation_seconds - b.prestop_seconds - b.drain_seconds
            message = f"{head}; {pod.lb.fix(uncovered)}"
        yield pod.finding("propagation", ERROR, fld, message)


def rule_lb_deregistration(pod: Pod) -> Iterator[Finding]:
    lb = pod.lb
    if lb is None or lb.deregistration_delay_seconds is None:
        return
    deadline = pod.budget.graceful_deadline_seconds
    if lb.deregistration_delay_seconds < deadline:
        b = pod.budget
        yield pod.finding(
            "lb-deregistration",
            WARNING,
            f"--lb {lb.name}",
            f"deregistration delay {fmt(lb.deregistration_delay_seconds)} < preStop "
            f"{fmt(b.prestop_seconds)} + drain {fmt(b.drain_seconds)} + graceful_timeout "
            f"{fmt(b.graceful_timeout)} = {fmt(deadline)}: the load balancer closes "
            "connections of requests the pod is still answering; raise the delay to "
            f"{fmt(math.ceil(deadline))} (e.g. deregistration_delay.timeout_seconds) or lower "
            "graceful_timeout",
        )


def rule_worker_timeout(pod: Pod) -> Iterator[Finding]:
    for message in _only(pod.budget, worker_timeout=True).warnings():
        yield pod.finding("worker-timeout", WARNING, "gunicorn.timeout", message)


def rule_keepalive(pod: Pod) -> Iterator[Finding]:
    for message in _only(pod.budget, keepalive=True).errors():  # --lb: its idle timeout
        yield pod.finding("keepalive", ERROR, "gunicorn.keepalive", message)
    for message in _only(pod.budget, keepalive=True).warnings():
        yield pod.finding("keepalive", WARNING, "gunicorn.keepalive", message)


# --- Gunicorn side ---------------------------------------------------------------------


def rule_hooks(pod: Pod) -> Iterator[Finding]:
    if not pod.view.installed:
        where = pod.view.location or "the Gunicorn config (none given)"
        yield pod.finding(
            "hooks",
            ERROR,
            "gunicorn.config",
            f"{where} does not call gunicorn_zdt.hooks.install(globals()): on SIGTERM "
            "Gunicorn closes its listeners at once, without a drain; add "
            "install(globals()) as its last line, or use -c python:gunicorn_zdt.conf",
        )


def rule_pid1(pod: Pod) -> Iterator[Finding]:
    w = pod.workload
    words = [*(w.command or []), *(w.args or [])]
    fld = f"{w.container_field}.command"
    if not words:
        yield pod.finding(
            "pid1",
            WARNING,
            fld,
            "not set: the image's entrypoint runs, and the check cannot see whether Gunicorn "
            "is PID 1 nor which config it loads; set command: [gunicorn, -c, CONF, APP]",
        )
        return
    first = Path(words[0]).name
    if first in SHELLS and len(words) >= 3 and words[1] == "-c":
        if not words[2].lstrip().startswith("exec "):
            yield pod.finding(
                "pid1",
                ERROR,
                fld,
                f"shell form ({words[0]} -c): the shell is PID 1 and does not pass SIGTERM "
                "to Gunicorn, which never drains and is SIGKILLed at the deadline; use exec "
                'form, command: ["gunicorn", ...] (or start the script with exec)',
            )
        return
    # the wrapper's own options: the words before the program it starts
    own = set()
    for word in words[1:]:
        if not word.startswith("-") or word == "--":
            break
        own.add(word)
    if first == "dumb-init" and not {"--single-child", "-c"} & own:
        yield pod.finding(
            "pid1",
            ERROR,
            fld,
            "dumb-init sends SIGTERM to the whole process group: every worker stops at once "
            "instead of serving through the drain; run gunicorn directly (exec form) or use "
            "dumb-init --single-child",
        )
    elif first == "tini" and _tini_process_group(own):
        yield pod.finding(
            "pid1",
            ERROR,
            fld,
            "tini -g sends SIGTERM to the whole process group: every worker stops at once "
            "instead of serving through the drain; drop -g, or run gunicorn directly",
        )
    elif not any("gunicorn" in word for word in words):
        yield pod.finding(
            "pid1",
            WARNING,
            fld,
            f"does not start gunicorn ({words[0]}): the check cannot tell whether Gunicorn "
            "gets SIGTERM as PID 1; make the script end with exec gunicorn ..., and set "
            "command to it in exec form",
        )
    elif not (
        first == "gunicorn"
        or (first.startswith("python") and _python_runs_gunicorn(words))
        or first in {"tini", "dumb-init"}
    ):
        yield pod.finding(
            "pid1",
            WARNING,
            fld,
            f"gunicorn is started by {words[0]}: unless it execs gunicorn, SIGTERM reaches "
            f"{first} instead of Gunicorn; end it with exec, or run gunicorn directly",
        )


def _tini_process_group(options: set[str]) -> bool:
    """tini's ``-g`` among its own options, alone or in a cluster (``-sg``; ``-pg`` is -p g)."""
    for option in sorted(options):
        if option.startswith("--"):
            continue
        for letter in option[1:]:
            if letter == "g":
                return True
            if letter in "pek":  # these take a value: the rest of the word is it
                break
    return False


def _python_runs_gunicorn(words: Sequence[str]) -> bool:
    """``python [OPTIONS] -m gunicorn ...``: the interpreter process is Gunicorn's arbiter."""
    i = 1
    while i < len(words):
        word = words[i]
        if word == "-m":
            return words[i + 1 : i + 2] == ["gunicorn"]
        if not word.startswith("-"):
            return False  # a script: it may or may not exec gunicorn
        i += 2 if word in {"-W", "-X"} else 1  # the options that take a separate value
    return False


def rule_bind(pod: Pod) -> Iterator[Finding]:
    w, view = pod.workload, pod.view
    binds = view.tcp_binds
    shown = ", ".join(view.cfg.bind)
    if not binds:
        yield pod.finding(
            "bind",
            ERROR,
            "gunicorn.bind",
            f"Gunicorn binds only {shown}: the kubelet's probes and the Service need a TCP "
            "port; bind 0.0.0.0:PORT",
        )
        return
    for host, port in binds:
        if host in {"127.0.0.1", "localhost", "::1"}:
            yield pod.finding(
                "bind",
                ERROR,
                "gunicorn.bind",
                f"Gunicorn binds {host}:{port}: only the pod itself can connect, not the "
                f"probes nor the Service; bind 0.0.0.0:{port}",
            )
    if pod.app_port not in w.container_ports:
        declared = ", ".join(str(p) for p in w.container_ports) or "none"
        yield pod.finding(
            "bind",
            ERROR,
            f"{w.container_field}.ports",
            f"Gunicorn binds port {pod.app_port} but the container declares {declared}; "
            f"declare containerPort: {pod.app_port} (name: http) or set PORT to the "
            "declared port",
        )


# --- probes ----------------------------------------------------------------------------


def rule_probe_path(pod: Pod) -> Iterator[Finding]:
    w, prefix = pod.workload, pod.prefix
    ready = pod.workload.probes.get("readiness")
    if ready is None:
        yield pod.finding(
            "probe-path",
            ERROR,
            f"{w.container_field}.readinessProbe",
            "missing: the pod gets traffic before it can serve, and the drain's 503 is never "
            f"seen; add readinessProbe: httpGet {prefix}/ready on port {pod.port_hint}",
        )
    elif ready.handler != "httpGet":
        yield pod.finding(
            "probe-path",
            ERROR,
            f"{ready.field}.{ready.handler}",
            f"{ready.handler} readiness never sees the drain (it passes until the listeners "
            f"close); use httpGet {prefix}/ready",
        )
    elif ready.path_only != f"{prefix}/ready":
        if (ready.path_only or "").startswith(f"{prefix}/ready/"):
            problem = (
                f"{ready.path} runs one check only: the pod stays in the Service while any "
                "other check fails"
            )
            fix = f"use {prefix}/ready (add ?exclude=NAME to skip a check)"
        else:
            problem = f"{ready.path} is not the app's readiness endpoint"
            fix = f"use {prefix}/ready"
        yield pod.finding("probe-path", ERROR, f"{ready.field}.httpGet.path", f"{problem}; {fix}")
    for kind, endpoint in (("liveness", "live"), ("startup", "startup")):
        probe = w.probes.get(kind)
        if probe is None or probe.handler != "httpGet":
            continue
        path = probe.path_only or ""
        if path == f"{prefix}/{endpoint}":
            continue
        if kind == "liveness" and (
            path == f"{prefix}/ready" or path.startswith(f"{prefix}/ready/")
        ):
            continue  # the liveness-target rule says why
        yield pod.finding(
            "probe-path",
            ERROR,
            f"{probe.field}.httpGet.path",
            f"{probe.path} is not the app's {kind} endpoint; use {prefix}/{endpoint}",
        )


def _http_probes(pod: Pod) -> Iterator[Probe]:
    for kind in ("startup", "readiness", "liveness"):
        probe = pod.workload.probes.get(kind)
        if probe is not None and probe.handler == "httpGet":
            yield probe


def rule_probe_port(pod: Pod) -> Iterator[Finding]:
    if pod.app_port is None:
        return  # the bind rule reports it
    w = pod.workload
    for probe in _http_probes(pod):
        port = w.resolve_port(probe.port)
        fld = f"{probe.field}.httpGet.port"
        if port is None:
            yield pod.finding(
                "probe-port",
                ERROR,
                fld,
                f"{probe.port!r} is not a port of container {w.container_name}; use "
                f"{pod.port_hint} (Gunicorn binds {pod.app_port})",
            )
        elif port not in (pod.app_port, pod.listener_port):
            yield pod.finding(
                "probe-port",
                ERROR,
                fld,
                f"port {port} is not the port Gunicorn binds ({pod.app_port}): the probe "
                f"never reaches the app; use {pod.port_hint}"
                + (
                    f" (or set ZDT_PROBE_BIND=0.0.0.0:{port} to answer it from the probe listener)"
                    if pod.listener_port is None
                    else f" or the probe listener's {pod.listener_port}"
                ),
            )


def rule_liveness_target(pod: Pod) -> Iterator[Finding]:
    live = pod.workload.probes.get("liveness")
    if live is None or live.handler != "httpGet":
        return
    path, prefix = live.path_only or "", pod.prefix
    if path == f"{prefix}/ready":
        problem = (
            f"liveness points at readiness ({live.path}): it fails during every drain and "
            "whenever a dependency is down, so the kubelet restarts healthy pods"
        )
    elif path.startswith(f"{prefix}/ready/"):
        problem = (
            f"liveness points at a dependency check ({live.path}): when that dependency is "
            "down the kubelet restarts every pod at once"
        )
    else:
        return
    yield pod.finding(
        "liveness-target", ERROR, f"{live.field}.httpGet.path", f"{problem}; use {prefix}/live"
    )


def rule_readiness_period(pod: Pod) -> Iterator[Finding]:
    ready = pod.workload.probes.get("readiness")
    drain = pod.budget.drain_seconds
    if ready is None or ready.handler != "httpGet" or drain <= 0:
        return
    detect = ready.period_seconds * ready.failure_threshold
    if detect > drain:
        threshold = max(1, min(3, math.floor(drain)))
        yield pod.finding(
            "readiness-period",
            WARNING,
            f"{ready.field}.periodSeconds",
            f"periodSeconds {ready.period_seconds} x failureThreshold {ready.failure_threshold}"
            f" = {detect} s > drain {fmt(drain)}: the pod turns NotReady only after the "
            "listeners closed, and load balancers that follow pod readiness keep routing to "
            f"it; lower them so that periodSeconds x failureThreshold <= {fmt(drain)}, e.g. "
            f"periodSeconds: 1, failureThreshold: {threshold}",
        )


def rule_check_timeout(pod: Pod) -> Iterator[Finding]:
    check = pod.check_timeout_seconds
    for kind in ("startup", "readiness"):
        probe = pod.workload.probes.get(kind)
        if probe is None or probe.handler != "httpGet" or probe.timeout_seconds > check:
            continue
        yield pod.finding(
            "check-timeout",
            WARNING,
            f"{probe.field}.timeoutSeconds",
            f"timeoutSeconds {probe.timeout_seconds} <= ZDT_CHECK_TIMEOUT_SECONDS {fmt(check)}: "
            "the kubelet gives up before a slow check answers and counts a timeout instead; "
            f"set timeoutSeconds: {math.floor(check) + 1} or more",
        )


def rule_startup_probe(pod: Pod) -> Iterator[Finding]:
    w = pod.workload
    live = w.probes.get("liveness")
    if live is None or w.probes.get("startup") is not None:
        return
    if live.initial_delay_seconds >= SLOW_START_SECONDS:
        return
    kill_after = live.initial_delay_seconds + live.period_seconds * live.failure_threshold
    yield pod.finding(
        "startup-probe",
        WARNING,
        f"{w.container_field}.startupProbe",
        f"missing while livenessProbe starts after initialDelaySeconds "
        f"{live.initial_delay_seconds}: a start slower than about {kill_after} s (imports, "
        "database, migrations) is killed and restarted in a loop; add startupProbe: httpGet "
        f"{pod.prefix}/startup on port {pod.port_hint}, e.g. periodSeconds: 1, "
        "failureThreshold: 30",
    )


# --- Deployment, PDB, Service ----------------------------------------------------------


def rule_max_unavailable(pod: Pod) -> Iterator[Finding]:
    w = pod.workload
    if w.kind != "Deployment":
        return  # a StatefulSet replaces pods one at a time, without surge: see rule_replicas
    strategy = w.strategy
    fix = "set maxUnavailable: 0 and maxSurge: 1"
    if strategy.get("type") == "Recreate":
        yield pod.finding(
            "max-unavailable",
            ERROR,
            "spec.strategy.type",
            f"Recreate stops every pod before new ones start; use RollingUpdate and {fix}",
        )
        return
    replicas = pod.min_replicas
    if replicas > FEW_REPLICAS:
        return
    raw = (strategy.get("rollingUpdate") or {}).get("maxUnavailable")
    fld = "spec.strategy.rollingUpdate.maxUnavailable"
    value = "25%" if raw is None else raw
    pods = resolve_int_or_percent(value, replicas, round_up=False)
    if pods > 0:
        unset = "not set (default 25%): " if raw is None else ""
        yield pod.finding(
            "max-unavailable",
            ERROR,
            fld,
            f"{unset}maxUnavailable {value} lets {pods} of {replicas} pods go before their "
            f"replacements are ready ({math.floor(100 * pods / replicas)} % of the capacity "
            f"during every rollout); {fix}",
        )
    elif raw is None:
        yield pod.finding(
            "max-unavailable",
            WARNING,
            fld,
            f"not set: the default 25% resolves to 0 only while replicas < 4 ({replicas} now); "
            f"{fix} explicitly",
        )


def rule_replicas(pod: Pod) -> Iterator[Finding]:
    w, hpa = pod.workload, pod.autoscaler
    replicas = pod.min_replicas
    if hpa is not None and w.replicas_set:
        yield pod.finding(
            "replicas",
            WARNING,
            "spec.replicas",
            f"{hpa.ref} scales this {w.kind}, yet spec.replicas is {w.replicas}: every "
            "kubectl apply sets the count back and removes the pods the autoscaler added at "
            "once; remove spec.replicas (the autoscaler owns it)",
        )
    if replicas > 1:
        return
    where = "spec.minReplicas" if hpa is not None else "spec.replicas"
    count = f"{hpa.ref} minReplicas 1" if hpa is not None else "1 replica"
    if w.kind == "StatefulSet":
        finding = (
            ERROR,
            f"{count}: a StatefulSet deletes each pod before it starts its replacement "
            f"(podManagementPolicy {w.pod_management_policy} changes only scaling), so every "
            "rollout and every node drain leaves nothing serving; run 2 or more",
        )
    else:
        finding = (
            WARNING,
            f"{count}: a rollout surges a new pod first, but a node drain or eviction deletes "
            "the only pod before a replacement is ready, and nothing serves meanwhile; run 2 "
            "or more, with a PodDisruptionBudget maxUnavailable: 1",
        )
    if hpa is not None:
        yield pod.on(hpa, "replicas", finding[0], where, finding[1])
    else:
        yield pod.finding("replicas", finding[0], where, finding[1])


def _same_namespace(doc: Document, w: Workload) -> bool:
    return doc.namespace == w.doc.namespace


def _pdb_allows(pdb: Document, replicas: int) -> tuple[str, int] | None:
    spec = pdb.obj.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        value = spec["maxUnavailable"]
        return f"maxUnavailable {value}", resolve_int_or_percent(value, replicas, round_up=True)
    if spec.get("minAvailable") is not None:
        value = spec["minAvailable"]
        keep = resolve_int_or_percent(value, replicas, round_up=True)
        return f"minAvailable {value}", replicas - keep
    return None


def rule_pdb(pod: Pod) -> Iterator[Finding]:
    w = pod.workload
    pdbs = [
        d
        for d in pod.docs
        if d.kind == "PodDisruptionBudget"
        and _same_namespace(d, w)
        and label_selector_matches((d.obj.get("spec") or {}).get("selector"), w.labels)
    ]
    fld = "spec.template.metadata.labels"
    if not pdbs:
        yield pod.finding(
            "pdb",
            WARNING,
            fld,
            "no PodDisruptionBudget selects these pods: a node drain may evict several at "
            "once; add one with maxUnavailable: 1 (k8s/pdb.yaml)",
        )
        return
    if len(pdbs) > 1:
        names = ", ".join(d.ref for d in pdbs)
        yield pod.finding(
            "pdb",
            ERROR,
            fld,
            f"{names} all select these pods: the eviction API refuses pods with more than one "
            "budget and node drains hang; keep one",
        )
        return
    pdb = pdbs[0]
    replicas = pod.min_replicas
    try:
        allowed = _pdb_allows(pdb, replicas)
    except ValueError:
        spec = pdb.obj.get("spec") or {}
        key = "maxUnavailable" if spec.get("maxUnavailable") is not None else "minAvailable"
        yield pod.on(
            pdb,
            "pdb",
            ERROR,
            f"spec.{key}",
            f"{key} {spec[key]!r} is not a number or percentage: the eviction API cannot use "
            "this budget; use maxUnavailable: 1",
        )
        return
    if allowed is not None and allowed[1] <= 0:
        what, _ = allowed
        key = what.split()[0]
        scaled = f", {pod.autoscaler.ref} minReplicas" if pod.autoscaler is not None else ""
        yield pod.on(
            pdb,
            "pdb",
            ERROR,
            f"spec.{key}",
            f"{what} with {replicas} replicas ({w.ref}{scaled}) allows no eviction: every node "
            "drain blocks until someone deletes the pod by hand; use maxUnavailable: 1",
        )


def rule_service_port(pod: Pod) -> Iterator[Finding]:
    w = pod.workload
    if pod.app_port is None:
        return
    for svc in pod.docs:
        spec = svc.obj.get("spec") or {}
        selector = spec.get("selector")
        if svc.kind != "Service" or not selector or not _same_namespace(svc, w):
            continue
        if any(w.labels.get(k) != str(v) for k, v in selector.items()):
            continue
        for i, port in enumerate(spec.get("ports") or []):
            target = port.get("targetPort", port.get("port"))
            resolved = w.resolve_port(target)
            if resolved == pod.app_port or (resolved is not None and resolved == pod.listener_port):
                continue  # the listener's port: rule_listener_exposed
            problem = (
                f"{target!r} is not a port of container {w.container_name}"
                if resolved is None
                else f"{resolved} is not the port Gunicorn binds ({pod.app_port})"
            )
            yield pod.on(
                svc,
                "service-port",
                ERROR,
                f"spec.ports[{port.get('name', i)}].targetPort",
                f"{problem}: the Service sends traffic nowhere; use targetPort: {pod.port_hint}",
            )


def _services(pod: Pod) -> Iterator[Document]:
    """The Services whose selector picks this workload's pods."""
    w = pod.workload
    for svc in pod.docs:
        spec = svc.obj.get("spec") or {}
        selector = spec.get("selector")
        if svc.kind != "Service" or not isinstance(selector, dict) or not selector:
            continue
        if _same_namespace(svc, w) and all(w.labels.get(k) == str(v) for k, v in selector.items()):
            yield svc


def _service_ports(pod: Pod, svc: Document) -> Iterator[tuple[str, Any, int | None]]:
    """(port name, service port, container port it reaches) for each port of a Service."""
    for i, port in enumerate((svc.obj.get("spec") or {}).get("ports") or []):
        target = port.get("targetPort", port.get("port"))
        yield str(port.get("name", i)), port.get("port"), pod.workload.resolve_port(target)


def _route_backends(doc: Document) -> Iterator[tuple[str, Any, Any]]:
    """(field, Service name, port number or name) of an Ingress's or HTTPRoute's backends."""
    spec = doc.obj.get("spec") or {}
    if doc.kind == "Ingress":
        default = (spec.get("defaultBackend") or {}).get("service")
        if isinstance(default, dict):
            port = default.get("port") or {}
            yield "spec.defaultBackend", default.get("name"), port.get("number", port.get("name"))
        for r, rule in enumerate(spec.get("rules") or []):
            for p, path in enumerate((rule.get("http") or {}).get("paths") or []):
                service = (path.get("backend") or {}).get("service")
                if isinstance(service, dict):
                    port = service.get("port") or {}
                    yield (
                        f"spec.rules[{r}].http.paths[{p}].backend",
                        service.get("name"),
                        port.get("number", port.get("name")),
                    )
    elif doc.kind == "HTTPRoute":
        for r, rule in enumerate(spec.get("rules") or []):
            for b, ref in enumerate(rule.get("backendRefs") or []):
                if ref.get("kind", "Service") == "Service":
                    yield f"spec.rules[{r}].backendRefs[{b}]", ref.get("name"), ref.get("port")


def rule_listener_exposed(pod: Pod) -> Iterator[Finding]:
    listener = pod.listener_port
    if listener is None:
        return
    why = (
        f"routes users to the probe listener's port {listener} (ZDT_PROBE_BIND): probes and "
        "/metrics are for the kubelet and Prometheus, and anyone who can reach them can "
        "flood them and get healthy pods restarted"
    )
    exposed: dict[str, set[Any]] = {}
    for svc in _services(pod):
        for name, number, reached in _service_ports(pod, svc):
            if reached != listener:
                continue
            exposed.setdefault(svc.name, set()).update({number, name})
            yield pod.on(
                svc,
                "listener-exposed",
                ERROR,
                f"spec.ports[{name}].targetPort",
                f"{why}; use targetPort: {pod.port_hint} (scrape /metrics with a PodMonitor "
                "or pod annotations, not through a Service)",
            )
    for route in pod.docs:
        if route.kind not in {"Ingress", "HTTPRoute"} or not _same_namespace(route, pod.workload):
            continue
        for fld, service, port in _route_backends(route):
            if service in exposed and port in exposed[service]:
                yield pod.on(
                    route,
                    "listener-exposed",
                    ERROR,
                    fld,
                    f"Service/{service} port {port} {why}; point it at the app's port",
                )


def rule_probe_listener(pod: Pod) -> Iterator[Finding]:
    live = pod.workload.probes.get("liveness")
    if live is None or live.handler != "httpGet" or pod.app_port is None:
        return
    if pod.workload.resolve_port(live.port) != pod.app_port:
        return
    cfg = pod.view.cfg
    worker_class = str(cfg.worker_class_str).rsplit(".", 1)[-1].lower()
    workers = cfg.workers
    if worker_class in {"gevent", "geventworker", "eventlet", "eventletworker"}:
        busy = (
            f"{worker_class} is cooperative, but one CPU-bound request or blocking call stalls "
            f"every greenlet of its worker ({workers} workers), and worker_connections caps "
            "the rest"
        )
    else:
        # Gunicorn reports a sync worker with threads > 1 as gthread: sync shows 1 thread
        threads = cfg.threads
        busy = f"{workers} workers x {threads} threads ({worker_class}) can all be busy"
    port = 8081 if 8081 not in pod.workload.container_ports else 18081
    fix = (
        f"set ZDT_PROBE_BIND=0.0.0.0:{port}, declare containerPort {port} (name: probes) "
        "and point the three probes at port: probes"
    )
    if pod.listener_port is not None:
        fix = f"point the three probes at the probe listener's port {pod.listener_port}"
    yield pod.finding(
        "probe-listener",
        WARNING,
        f"{live.field}.httpGet.port",
        f"liveness on the app's port {pod.app_port}: {busy}, and then the probe waits "
        "behind requests, times out, and the kubelet restarts a pod that is only busy; "
        f"{fix}",
    )


def rule_prestop_exec_sleep(pod: Pod) -> Iterator[Finding]:
    prestop = pod.workload.prestop
    if prestop.exec_sleep:
        yield pod.finding(
            "prestop-exec-sleep",
            WARNING,
            f"{prestop.field}.exec",
            f"exec sleep {fmt(prestop.seconds)} needs a sleep binary in the image: in "
            "distroless or scratch images the hook fails and SIGTERM comes at once; use "
            f"lifecycle.preStop.sleep.seconds: {fmt(prestop.seconds)} (Kubernetes >= 1.30)",
        )


# --- the other containers of the pod ------------------------------------------------


def _own_drain_seconds(words: Sequence[str]) -> float | None:
    """A proxy's own drain setting: cloud-sql-proxy ``--max-sigterm-delay=30s``."""
    for i, word in enumerate(words):
        if word.startswith("--max-sigterm-delay"):
            raw = (
                word.split("=", 1)[1]
                if "=" in word
                else (words[i + 1] if i + 1 < len(words) else "")
            )
            try:
                return float(raw.removesuffix("s"))
            except ValueError:
                return None
    return None


def rule_sidecar(pod: Pod) -> Iterator[Finding]:
    deadline = pod.budget.graceful_deadline_seconds
    needed = fmt(math.ceil(deadline))
    for n in pod.workload.neighbours:
        if n.role != "container":
            continue  # native sidecars stop after the app; init containers are done
        stays = n.prestop.seconds if n.prestop.sleeps else 0.0
        own = _own_drain_seconds(n.words)
        if max(stays, own or 0.0) >= deadline:
            continue
        fix = (
            f"make it a native sidecar (move it to initContainers with restartPolicy: Always, "
            f"Kubernetes >= 1.29: it stops after the app), or give it a preStop sleep of "
            f"{needed} s or more"
        )
        if n.prestop.sleeps:
            fld = f"{n.prestop.field}"
            problem = (
                f"its preStop sleep {fmt(n.prestop.seconds)} s ends before Gunicorn's graceful "
                f"deadline (preStop + drain + graceful_timeout = {fmt(deadline)} s)"
            )
        elif own is not None:
            fld = f"{n.field}.args"
            problem = (
                f"--max-sigterm-delay {fmt(own)} s ends before Gunicorn's graceful deadline "
                f"({fmt(deadline)} s)"
            )
            fix = f"raise --max-sigterm-delay to {needed}s, or {fix}"
        else:
            fld = n.field
            problem = "it gets SIGTERM at the same moment as Gunicorn and may exit at once"
        yield pod.finding(
            "sidecar",
            WARNING,
            fld,
            f"{problem}: a database or mesh proxy then takes the app's dependencies away in "
            f"the middle of its drain (writes and readiness checks fail for the wrong "
            f"reason); {fix}",
        )


def rule_port_clash(pod: Pod) -> Iterator[Finding]:
    taken = {pod.app_port: "the port Gunicorn binds", pod.listener_port: "the probe listener's"}
    for n in pod.workload.neighbours:
        if not n.runs_with_the_app:
            continue
        for port in n.ports:
            if port in taken and port is not None:
                yield pod.finding(
                    "port-clash",
                    ERROR,
                    f"{n.field}.ports",
                    f"containerPort {port} is {taken[port]}: the containers of a pod share "
                    "one network, so one of the two cannot bind it and probes or the Service "
                    "reach the wrong process; give it another port",
                )


# --- the manifest's ZDT_* env against the pod spec ------------------------------------


def rule_zdt_env(pod: Pod) -> Iterator[Finding]:
    w, view = pod.workload, pod.view
    for name, value in sorted(w.env.items()):
        if not name.startswith("ZDT_"):
            continue
        if name not in settings.BY_NAME:
            close = difflib.get_close_matches(name, list(settings.BY_NAME), n=1)
            hint = f"did you mean {close[0]}?" if close else "see gunicorn_zdt/settings.py"
            yield pod.finding(
                "zdt-env", WARNING, w.env_field(name), f"unknown setting, ignored; {hint}"
            )
            continue
        try:
            settings.BY_NAME[name].parse(name, value)
        except SettingError as exc:
            yield pod.finding("zdt-env", ERROR, w.env_field(name), str(exc))
    for name in sorted(n for n in w.env_indirect if n.startswith("ZDT_")):
        yield pod.finding(
            "zdt-env",
            WARNING,
            w.env_field(name),
            "set through valueFrom: the check cannot see its value; write the value in the "
            "manifest",
        )
    plan = view.plan
    if plan is None:
        return
    grace = w.grace_period_seconds
    fld = w.env_field("ZDT_GRACE_PERIOD_SECONDS")
    if plan.grace_period_seconds is None:
        if "ZDT_GRACE_PERIOD_SECONDS" not in w.env_indirect:
            yield pod.finding(
                "zdt-env",
                WARNING,
                fld,
                "not set: Gunicorn can neither derive graceful_timeout from the grace period "
                f'nor refuse a budget that does not fit; set it to "{fmt(grace)}" '
                "(= terminationGracePeriodSeconds)",
            )
    elif plan.grace_period_seconds != grace:
        yield pod.finding(
            "zdt-env",
            ERROR,
            fld,
            f"ZDT_GRACE_PERIOD_SECONDS {fmt(plan.grace_period_seconds)} != "
            f"terminationGracePeriodSeconds {fmt(grace)}: Gunicorn derives graceful_timeout "
            f'for the wrong grace period; set it to "{fmt(grace)}"',
        )
    prestop = w.prestop.seconds
    if plan.prestop_seconds != prestop:
        yield pod.finding(
            "zdt-env",
            ERROR,
            w.env_field("ZDT_PRESTOP_SECONDS"),
            f"ZDT_PRESTOP_SECONDS {fmt(plan.prestop_seconds)} != preStop sleep {fmt(prestop)}"
            f" ({w.prestop.field}): Gunicorn derives graceful_timeout for the wrong preStop; "
            f'set it to "{fmt(prestop)}"',
        )


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
    Rule("propagation", rule_propagation, "preStop + drain < ZDT_MIN_PROPAGATION_SECONDS"),
    Rule("hooks", rule_hooks, "the Gunicorn config does not install the drain hooks"),
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
    Rule(
        "lb-deregistration",
        rule_lb_deregistration,
        "the load balancer's deregistration delay < P + D + G",
    ),
)


def check_pod(pod: Pod) -> list[Finding]:
    """Every finding for one pod, in rule order."""
    return [finding for rule in RULES for finding in rule.check(pod)]
