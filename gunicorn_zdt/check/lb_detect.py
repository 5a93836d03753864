"""The load balancers the stream itself names, for ``check`` without ``--lb``.

A cloud load balancer that targets pod IPs directly keeps sending new connections to a
deleted pod until its own health checks fail; its annotations say which one it is and
with which numbers. Recognised (``docs/k8s.md``, "Load balancers found in the stream"):

- AWS Load Balancer Controller, Ingress of class ``alb`` (``ingressClassName``, the
  ``kubernetes.io/ingress.class`` annotation, or an IngressClass whose controller is
  ``ingress.k8s.aws/alb``) with ``alb.ingress.kubernetes.io/target-type: ip``:
  ``aws-alb``, its ``healthcheck-interval-seconds``, ``unhealthy-threshold-count`` and
  ``target-group-attributes`` ``deregistration_delay.timeout_seconds``. Instance targets
  go through a NodePort and kube-proxy: nothing to add.
- AWS NLB with IP targets, a Service with ``service.beta.kubernetes.io/aws-load-balancer-type:
  nlb-ip``, or ``external`` plus ``aws-load-balancer-nlb-target-type: ip``: ``aws-nlb``,
  its ``aws-load-balancer-healthcheck-interval``/``-unhealthy-threshold`` and
  ``aws-load-balancer-target-group-attributes``.
- GKE container-native load balancing: a Service with ``cloud.google.com/neg`` naming
  ``ingress`` or ``exposed_ports``, or reached by an Ingress of class ``gce`` /
  ``gce-internal``: ``gke-neg``, with a BackendConfig of the stream (``healthCheck``,
  ``connectionDraining``) when the Service names one.

Several in front of one pod: the slowest decides. ``--lb`` overrides all of this.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..k8s import Document, Workload
from .lb import PRESETS, LoadBalancer

__all__ = ["detect_load_balancer", "load_balancers"]

ALB = "alb.ingress.kubernetes.io/"
NLB = "service.beta.kubernetes.io/aws-load-balancer-"
NEG = "cloud.google.com/neg"
BACKEND_CONFIG = ("cloud.google.com/backend-config", "beta.cloud.google.com/backend-config")
GCE_CLASSES = ("gce", "gce-internal")


def detect_load_balancer(workload: Workload, docs: Sequence[Document]) -> LoadBalancer | None:
    """The slowest load balancer the stream puts in front of these pods, or None."""
    found = list(load_balancers(workload, docs))
    if not found:
        return None
    return max(found, key=lambda lb: lb.propagation_seconds(0.0, 0.0, 0))


def load_balancers(workload: Workload, docs: Sequence[Document]) -> Iterator[LoadBalancer]:
    """Each load balancer found in front of the workload's pods (see the module doc)."""
    services = [d for d in docs if _selects(d, workload)]
    for svc in services:
        notes = _annotations(svc)
        kind = notes.get(NLB + "type", "")
        if kind == "nlb-ip" or (kind == "external" and notes.get(NLB + "nlb-target-type") == "ip"):
            yield _aws(PRESETS["aws-nlb"], svc.ref, notes, NLB + "healthcheck-interval",
                       NLB + "healthcheck-unhealthy-threshold", NLB + "target-group-attributes")  # fmt: skip
        if _neg_exposed(notes.get(NEG)):
            yield _gke(svc, docs)
    names = {svc.name: svc for svc in services}
    for ing in docs:
        if ing.kind != "Ingress" or ing.namespace != workload.doc.namespace:
            continue
        reached = [names[n] for n in _backend_services(ing) if n in names]
        if not reached:
            continue
        ing_class = _ingress_class(ing, docs)
        for svc in reached:
            notes = {**_annotations(ing), **_annotations(svc)}
            if ing_class == "alb" and notes.get(ALB + "target-type") == "ip":
                yield _aws(PRESETS["aws-alb"], ing.ref, notes, ALB + "healthcheck-interval-seconds",
                           ALB + "unhealthy-threshold-count", ALB + "target-group-attributes")  # fmt: skip
            elif ing_class in GCE_CLASSES and not _neg_exposed(_annotations(svc).get(NEG)):
                yield _gke(svc, docs, via=ing.ref)


def _selects(svc: Document, workload: Workload) -> bool:
    if svc.kind != "Service" or svc.namespace != workload.doc.namespace:
        return False
    selector = _mapping(svc.obj.get("spec")).get("selector")
    if not isinstance(selector, Mapping) or not selector:
        return False
    return all(workload.labels.get(k) == str(v) for k, v in selector.items())


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _annotations(doc: Document) -> dict[str, str]:
    notes = _mapping(_mapping(doc.obj.get("metadata")).get("annotations"))
    return {str(k): str(v) for k, v in notes.items()}


def _number(notes: Mapping[str, str], key: str, default: float) -> float:
    try:
        value = float(notes.get(key, default))
    except ValueError:
        return default
    return value if value >= 0 else default


def _attributes(text: str | None) -> dict[str, str]:
    """``deregistration_delay.timeout_seconds=30,stickiness.enabled=true`` -> a mapping."""
    pairs = (item.split("=", 1) for item in (text or "").split(",") if "=" in item)
    return {k.strip(): v.strip() for k, v in pairs}


def _aws(
    preset: LoadBalancer,
    source: str,
    notes: Mapping[str, str],
    interval_key: str,
    threshold_key: str,
    attributes_key: str,
) -> LoadBalancer:
    attributes = _attributes(notes.get(attributes_key))
    delay = _number(attributes, "deregistration_delay.timeout_seconds", -1.0)
    return dataclasses.replace(
        preset,
        source=source,
        interval_seconds=_number(notes, interval_key, preset.interval_seconds),
        threshold=max(1, int(_number(notes, threshold_key, preset.threshold))),
        deregistration_delay_seconds=preset.deregistration_delay_seconds if delay < 0 else delay,
    )


def _neg_exposed(raw: str | None) -> bool:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return False
    return isinstance(value, Mapping) and bool(value.get("ingress") or value.get("exposed_ports"))


def _gke(svc: Document, docs: Sequence[Document], via: str | None = None) -> LoadBalancer:
    preset = PRESETS["gke-neg"]
    spec = _backend_config(svc, docs)
    check = {k: str(v) for k, v in _mapping(spec.get("healthCheck")).items()}
    draining = _number(
        {k: str(v) for k, v in _mapping(spec.get("connectionDraining")).items()},
        "drainingTimeoutSec",
        0.0,
    )
    return dataclasses.replace(
        preset,
        source=via or svc.ref,
        interval_seconds=_number(check, "checkIntervalSec", preset.interval_seconds),
        threshold=max(1, int(_number(check, "unhealthyThreshold", preset.threshold))),
        deregistration_delay_seconds=draining or None,
    )


def _backend_config(svc: Document, docs: Sequence[Document]) -> Mapping[str, Any]:
    """The spec of the BackendConfig the Service names (its ``default``), if in the stream."""
    notes = _annotations(svc)
    raw = next((notes[k] for k in BACKEND_CONFIG if k in notes), None)
    try:
        named = json.loads(raw or "{}")
    except ValueError:
        return {}
    name = named.get("default") if isinstance(named, Mapping) else None
    for doc in docs:
        if doc.kind == "BackendConfig" and doc.name == name and doc.namespace == svc.namespace:
            spec = doc.obj.get("spec")
            return spec if isinstance(spec, Mapping) else {}
    return {}


def _backend_services(ing: Document) -> Iterator[str]:
    spec = _mapping(ing.obj.get("spec"))
    default = _mapping(_mapping(spec.get("defaultBackend")).get("service"))
    if default.get("name"):
        yield str(default["name"])
    for rule in spec.get("rules") or []:
        for path in _mapping(_mapping(rule).get("http")).get("paths") or []:
            service = _mapping(_mapping(_mapping(path).get("backend")).get("service"))
            if service.get("name"):
                yield str(service["name"])


def _ingress_class(ing: Document, docs: Sequence[Document]) -> str | None:
    """``alb``, ``gce``... from the Ingress, or from its IngressClass's controller."""
    spec = _mapping(ing.obj.get("spec"))
    name = spec.get("ingressClassName") or _annotations(ing).get("kubernetes.io/ingress.class")
    for doc in docs:
        if doc.kind == "IngressClass" and doc.name == name:
            controller = str(_mapping(doc.obj.get("spec")).get("controller") or "")
            if controller == "ingress.k8s.aws/alb":
                return "alb"
    return None if name is None else str(name)
