"""What routes traffic to the pods: Services, Ingresses and HTTPRoutes, and their ports."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from typing import Any

from ...k8s import WORKLOAD_KINDS, Document, Workload, label_selector_matches
from ..pod import ERROR, WARNING, Finding, Pod


def _same_namespace(doc: Document, w: Workload) -> bool:
    return doc.namespace == w.doc.namespace


def rule_service_port(pod: Pod) -> Iterator[Finding]:
    w = pod.workload
    if pod.app_port is None:
        return
    for svc in _services(pod):
        spec = svc.obj.get("spec") or {}
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


def _backends_here(pod: Pod) -> Iterator[tuple[Document, str, Any, Any]]:
    """(route, field, Service name, port) of every Ingress and HTTPRoute backend in the
    workload's namespace: a route elsewhere reaches that namespace's Services."""
    for route in pod.docs:
        if _same_namespace(route, pod.workload):
            for fld, service, port in _route_backends(route):
                yield route, fld, service, port


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
                f"{why}; {_swapped_fix(pod, svc) or f'use targetPort: {pod.port_hint}'} "
                "(scrape /metrics with a PodMonitor or pod annotations, not through a Service)",
            )
    for route, fld, service, port in _backends_here(pod):
        if service in exposed and port in exposed[service]:
            yield pod.on(
                route,
                "listener-exposed",
                ERROR,
                fld,
                f"Service/{service} port {port} {why}; point it at the app's port",
            )


def _template_labels(docs: Sequence[Document], namespace: str | None) -> list[dict[str, str]]:
    """The pod template labels of every Deployment and StatefulSet of a namespace."""
    out = []
    for doc in docs:
        if doc.kind not in WORKLOAD_KINDS or doc.namespace != namespace:
            continue
        template = (doc.obj.get("spec") or {}).get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        out.append({str(k): str(v) for k, v in labels.items()})
    return out


def _near_misses(pod: Pod) -> Iterator[tuple[Document, str, str]]:
    """(object, field, what) for each Service, PDB or HPA meant for these pods that selects
    no pod template of the stream: it shares a label with them (an HPA: its target's name is
    a near miss of theirs, and no such workload is in the input)."""
    w = pod.workload
    labels = w.labels
    templates = _template_labels(pod.docs, w.doc.namespace)
    for doc in pod.docs:
        if not _same_namespace(doc, w):
            continue
        spec = doc.obj.get("spec") or {}
        if doc.kind == "Service" and isinstance(spec.get("selector"), dict) and spec["selector"]:
            wanted = {str(k): str(v) for k, v in spec["selector"].items()}
            matches = [all(t.get(k) == v for k, v in wanted.items()) for t in templates]
            if not any(matches) and any(labels.get(k) == v for k, v in wanted.items()):
                yield doc, "spec.selector", _labels_text(wanted)
        elif doc.kind == "PodDisruptionBudget" and isinstance(spec.get("selector"), dict):
            selector = spec["selector"]
            wanted = {str(k): str(v) for k, v in (selector.get("matchLabels") or {}).items()}
            if any(label_selector_matches(selector, t) for t in templates):
                continue
            if any(labels.get(k) == v for k, v in wanted.items()):
                yield doc, "spec.selector", _labels_text(wanted)
        elif doc.kind == "HorizontalPodAutoscaler":
            target = spec.get("scaleTargetRef") or {}
            kind, name = target.get("kind"), str(target.get("name"))
            names = {d.name for d in pod.docs if d.kind == kind and _same_namespace(d, w)}
            if kind == w.kind and name not in names and _close(name, w.doc.name, names):
                yield doc, "spec.scaleTargetRef", f"{kind}/{name}"


def _close(name: str, mine: str, names: set[str]) -> bool:
    """``name`` is a near miss of ``mine`` (``app-v2``, ``webapp``) more than of the rest."""
    best = difflib.get_close_matches(name, sorted(names), n=1)  # similarity >= 0.6
    return best == [mine]


def _labels_text(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def rule_selector(pod: Pod) -> Iterator[Finding]:
    """A Service, PDB or HPA that points next to the pods (a label or name off by one)."""
    w = pod.workload
    have = _labels_text(dict(w.labels))
    for doc, fld, wanted in _near_misses(pod):
        if doc.kind == "Service":
            yield pod.on(
                doc, "selector", ERROR, fld,
                f"selects {wanted}, which matches no pod template in the input ({w.ref}'s pods "
                f"carry {have}): the Service has no endpoints once the rollout replaced the "
                "pods, a total outage; select only labels spec.template.metadata.labels has",
            )  # fmt: skip
        elif doc.kind == "PodDisruptionBudget":
            yield pod.on(
                doc, "selector", WARNING, fld,
                f"matchLabels {wanted} matches no pod template in the input ({w.ref}'s pods "
                f"carry {have}): the budget protects nothing and a node drain may evict every "
                "pod at once; select only labels spec.template.metadata.labels has",
            )  # fmt: skip
        else:
            yield pod.on(
                doc, "selector", WARNING, fld,
                f"{wanted} is not in the input, while {w.ref} is: the autoscaler scales "
                f"nothing (or another workload); set scaleTargetRef to kind: {w.kind}, "
                f"name: {w.doc.name}",
            )  # fmt: skip


def rule_not_ready_addresses(pod: Pod) -> Iterator[Finding]:
    """``publishNotReadyAddresses`` on a Service that carries traffic to the app."""
    for svc in _services(pod):
        spec = svc.obj.get("spec") or {}
        if spec.get("publishNotReadyAddresses") is not True or spec.get("clusterIP") == "None":
            continue  # a headless Service for peer discovery: DNS, not traffic
        if not any(reached == pod.app_port for _, _, reached in _service_ports(pod, svc)):
            continue
        yield pod.on(
            svc,
            "not-ready-addresses",
            ERROR,
            "spec.publishNotReadyAddresses",
            "true on a Service that carries traffic to the app: its endpoints ignore "
            "readiness, so the drain's 503 removes the pod from nothing and new pods get "
            "traffic before they can serve; remove it (keep it only on a headless Service "
            "for peer discovery, clusterIP: None)",
        )


def rule_route_port(pod: Pod) -> Iterator[Finding]:
    """An Ingress or HTTPRoute backend port that its Service (one selecting the pods) lacks."""
    services = {svc.name: svc for svc in _services(pod)}
    for route, fld, service, port in _backends_here(pod):
        svc = services.get(service)
        if svc is None or port is None:
            continue
        known = [(name, number) for name, number, _ in _service_ports(pod, svc)]
        if any(port in (name, number) for name, number in known):
            continue
        shown = ", ".join(
            f"{number} ({name})" if not str(name).isdigit() else str(number)
            for name, number in known
        )
        yield pod.on(
            route,
            "route-port",
            ERROR,
            fld,
            f"Service/{service} has no port {port!r} (it has {shown or 'none'}): this "
            f"route sends traffic nowhere; use one of the Service's ports",
        )


def _swapped_fix(pod: Pod, svc: Document) -> str | None:
    """The fix when the container's two port names are swapped: the Service targets a name
    that is the listener's port, while the app's port carries the name the probes use."""
    w = pod.workload
    targets = {
        str(port.get("targetPort"))
        for port in (svc.obj.get("spec") or {}).get("ports") or []
        if isinstance(port.get("targetPort"), str)
    }
    to_listener = [n for n in targets if w.ports.get(n) == pod.listener_port]
    to_app = [n for n, p in w.ports.items() if p == pod.app_port and not n.isdigit()]
    probe_ports = {str(p.port) for p in w.probes.values() if p is not None}
    if not to_listener or not to_app or to_app[0] not in probe_ports:
        return None
    a, b = to_listener[0], to_app[0]
    return (
        f"the container's port names are swapped: {a} is {pod.listener_port} (the probe "
        f"listener's) and {b} is {pod.app_port} (Gunicorn's); swap them back ({a}: "
        f"{pod.app_port}, {b}: {pod.listener_port})"
    )
