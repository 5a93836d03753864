"""What routes traffic to the pods: Services, Ingresses and HTTPRoutes, and their ports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...k8s import Document, Workload
from ..pod import ERROR, Finding, Pod


def _same_namespace(doc: Document, w: Workload) -> bool:
    return doc.namespace == w.doc.namespace


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
