"""The budget rules: the termination timings; their texts are :mod:`gunicorn_zdt.budget`'s."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

from ...budget import Budget, fmt
from ..pod import ERROR, WARNING, Finding, Pod


def _only(b: Budget, **keep: bool) -> Budget:
    """The budget with only some optional inputs, so its messages come one rule at a time."""
    return dataclasses.replace(
        b,
        worker_timeout=b.worker_timeout if keep.get("worker_timeout") else None,
        keepalive_seconds=b.keepalive_seconds if keep.get("keepalive") else None,
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
    for message in _only(pod.budget, keepalive=True).warnings():
        yield pod.finding("keepalive", WARNING, "gunicorn.keepalive", message)
