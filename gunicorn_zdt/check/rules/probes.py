"""The kubelet's probes: which endpoint, which port, how fast they see the drain."""

from __future__ import annotations

import math
from collections.abc import Iterator

from ...core import workers
from ...core.budget import fmt
from ...k8s import Probe
from ..pod import ERROR, SLOW_START_SECONDS, WARNING, Finding, Pod


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


def rule_probe_listener(pod: Pod) -> Iterator[Finding]:
    live = pod.workload.probes.get("liveness")
    if live is None or live.handler != "httpGet" or pod.app_port is None:
        return
    if pod.workload.resolve_port(live.port) != pod.app_port:
        return
    cfg = pod.view.cfg
    worker_class = workers.kind(cfg.worker_class_str)
    cooperative = worker_class in workers.COOPERATIVE
    count = cfg.workers
    if cooperative:
        busy = (
            f"{worker_class} is cooperative, but one CPU-bound request or blocking call stalls "
            f"every greenlet of its worker ({count} workers), and worker_connections caps "
            "the rest"
        )
    else:
        # Gunicorn reports a sync worker with threads > 1 as gthread: sync shows 1 thread
        threads = cfg.threads
        busy = f"{count} workers x {threads} threads ({worker_class}) can all be busy"
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
