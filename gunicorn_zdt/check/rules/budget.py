"""The budget rules: the termination timings; their texts are :mod:`gunicorn_zdt.core.budget`'s."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

from ...core.budget import Problem, fmt
from ..pod import ERROR, WARNING, Finding, Pod


def _problems(pod: Pod, kind: str) -> Iterator[Problem]:
    """The budget's problems of one kind (a rule each), as data."""
    return (p for p in pod.budget.problems() if p.kind == kind)


def rule_grace_period(pod: Pod) -> Iterator[Finding]:
    fld = "spec.template.spec.terminationGracePeriodSeconds"
    for p in _problems(pod, "grace-period"):
        yield pod.finding("grace-period", ERROR, fld, p.message)


def rule_prestop_grace(pod: Pod) -> Iterator[Finding]:
    for p in _problems(pod, "prestop-grace"):
        yield pod.finding("prestop-grace", ERROR, pod.workload.prestop.field, p.message)


def rule_propagation(pod: Pod) -> Iterator[Finding]:
    if not pod.view.installed:
        return  # no drain at all: the hooks rule says so
    for p in _problems(pod, "propagation"):
        fld = pod.workload.env_field(p.setting)
        message = p.message
        if pod.lb is not None and pod.lb_explain is not None:
            # the budget's comparison, with the load balancer's reasons and fix
            n = p.numbers
            uncovered = n["propagation"] - n["prestop"] - n["drain"]
            message = (
                f"preStop {fmt(n['prestop'])} + drain {fmt(n['drain'])} < propagation "
                f"{fmt(n['propagation'])} ({pod.lb_explain}): new connections may still arrive "
                f"after the listeners close; {pod.lb.fix(uncovered, p.setting)}"
            )
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
            lb.source or f"--lb {lb.name}",
            f"deregistration delay {fmt(lb.deregistration_delay_seconds)} < preStop "
            f"{fmt(b.prestop_seconds)} + drain {fmt(b.drain_seconds)} + graceful_timeout "
            f"{fmt(b.graceful_timeout)} = {fmt(deadline)}: the load balancer closes "
            "connections of requests the pod is still answering; raise the delay to "
            f"{fmt(math.ceil(deadline))} (e.g. deregistration_delay.timeout_seconds) or lower "
            "graceful_timeout",
        )


def rule_worker_timeout(pod: Pod) -> Iterator[Finding]:
    for p in _problems(pod, "worker-timeout"):
        yield pod.finding("worker-timeout", WARNING, "gunicorn.timeout", p.message)


def rule_keepalive(pod: Pod) -> Iterator[Finding]:
    for p in _problems(pod, "keepalive"):  # an error where --lb knows the idle timeout
        yield pod.finding("keepalive", p.severity, "gunicorn.keepalive", p.message)


def rule_probe_grace(pod: Pod) -> Iterator[Finding]:
    """A liveness/startup probe's own terminationGracePeriodSeconds (GA 1.28): the grace of
    the restart it triggers, which runs the same preStop, drain and graceful stop."""
    for kind in ("liveness", "startup"):
        probe = pod.workload.probes.get(kind)
        if probe is None or probe.termination_grace_period_seconds is None:
            continue
        grace = probe.termination_grace_period_seconds
        restart = dataclasses.replace(pod.budget, grace_period_seconds=grace)
        short = next((p for p in restart.problems() if p.kind == "grace-period"), None)
        if short is None:
            continue
        yield pod.finding(
            "probe-grace",
            ERROR,
            f"{probe.field}.terminationGracePeriodSeconds",
            f"{short.problem}: a {kind} restart SIGKILLs the requests still in flight; raise "
            f"it to {fmt(math.ceil(short.numbers['required']))}, or remove it (the pod's "
            f"{fmt(pod.workload.grace_period_seconds)} s then applies)",
        )
