"""Rollouts and other disruptions: the update strategy, replicas, autoscalers, PodDisruptionBudgets."""

from __future__ import annotations

import math
from collections.abc import Iterator

from ...k8s import Document, label_selector_matches, resolve_int_or_percent
from ..pod import ERROR, FEW_REPLICAS, WARNING, Finding, Pod
from .routing import _same_namespace


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
