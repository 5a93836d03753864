"""Mesh proxies the manifest does not list: injected by annotation or label at admission.

An injected proxy is a container of the pod like any other: a plain one gets SIGTERM at
the moment the app does, and when it exits, the app's connections through it end. What
decides is its own drain, read from the annotations that configure it:

- Istio (``sidecar.istio.io/inject: "true"`` as pod label or annotation, or the
  namespace label ``istio-injection: enabled`` / ``istio.io/rev`` in the stream): on
  SIGTERM the proxy keeps serving (discouraging new connections) for
  ``terminationDrainDuration`` (default 5 s) from the ``proxy.istio.io/config``
  annotation, then exits. With ``EXIT_ON_ZERO_ACTIVE_CONNECTIONS: "true"`` in its
  ``proxyMetadata`` it exits once ``MINIMUM_DRAIN_DURATION`` (default 5 s) passed and no
  connection is open, so that minimum must cover preStop + drain (the graceful stop keeps
  connections open). ``sidecar.istio.io/nativeSidecar: "true"``: a native sidecar.
- Linkerd (``linkerd.io/inject: enabled`` on the pod or its namespace): the proxy
  stops at SIGTERM unless ``config.alpha.linkerd.io/proxy-wait-before-exit-seconds``
  gives it a preStop sleep; its shutdown grace period only lets open connections finish,
  it takes no new ones. ``config.alpha.linkerd.io/proxy-enable-native-sidecar: "true"``:
  a native sidecar (Linkerd 2.20 makes that the default: say so with the annotation).

Stdlib only (PyYAML for Istio's config annotation, as the rest of the reader).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

__all__ = ["InjectedProxy", "injected_proxies"]

ISTIO_INJECT = "sidecar.istio.io/inject"
ISTIO_CONFIG = "proxy.istio.io/config"
ISTIO_NATIVE = "sidecar.istio.io/nativeSidecar"
LINKERD_INJECT = "linkerd.io/inject"
LINKERD_WAIT = "config.alpha.linkerd.io/proxy-wait-before-exit-seconds"
LINKERD_NATIVE = "config.alpha.linkerd.io/proxy-enable-native-sidecar"
ISTIO_DEFAULT_DRAIN_SECONDS = 5.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


@dataclass(frozen=True)
class InjectedProxy:
    """A proxy container the mesh adds to the pod.

    ``stays_seconds``: how long after SIGTERM it still carries the app's traffic, new
    connections included; ``exits_when_idle``: it may leave earlier, once no connection is
    open after ``stays_seconds`` (Istio's EXIT_ON_ZERO_ACTIVE_CONNECTIONS).
    """

    mesh: str  # istio | linkerd
    name: str  # the container it becomes: istio-proxy | linkerd-proxy
    field: str  # the annotation or label that injects it
    native: bool
    stays_seconds: float
    setting: str  # the annotation that sets stays_seconds
    exits_when_idle: bool = False
    key: str = ""  # Istio: the field inside the proxy.istio.io/config annotation


def injected_proxies(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    namespace_labels: Mapping[str, str],
    namespace_annotations: Mapping[str, str],
) -> list[InjectedProxy]:
    """The proxies injected into a pod with these labels/annotations in that namespace."""
    out = []
    istio = _istio_field(labels, annotations, namespace_labels)
    if istio is not None:
        out.append(_istio(istio, annotations))
    linkerd = _linkerd_field(annotations, namespace_annotations)
    if linkerd is not None:
        wait = _seconds(annotations.get(LINKERD_WAIT)) or 0.0
        native = annotations.get(LINKERD_NATIVE, "").lower() == "true"
        out.append(InjectedProxy("linkerd", "linkerd-proxy", linkerd, native, wait, LINKERD_WAIT))
    return out


def _istio_field(
    labels: Mapping[str, str], annotations: Mapping[str, str], namespace: Mapping[str, str]
) -> str | None:
    for where, values in (("labels", labels), ("annotations", annotations)):
        value = values.get(ISTIO_INJECT, "").lower()
        if value == "false":
            return None
        if value == "true":
            return f"spec.template.metadata.{where}[{ISTIO_INJECT}]"
    if namespace.get("istio-injection") == "enabled" or "istio.io/rev" in namespace:
        return "Namespace.metadata.labels[istio-injection]"
    return None


def _linkerd_field(annotations: Mapping[str, str], namespace: Mapping[str, str]) -> str | None:
    value = annotations.get(LINKERD_INJECT)
    if value == "enabled":
        return f"spec.template.metadata.annotations[{LINKERD_INJECT}]"
    if value is None and namespace.get(LINKERD_INJECT) == "enabled":
        return f"Namespace.metadata.annotations[{LINKERD_INJECT}]"
    return None


def _istio(fld: str, annotations: Mapping[str, str]) -> InjectedProxy:
    native = str(annotations.get(ISTIO_NATIVE)).lower() == "true"
    config = _yaml_mapping(annotations.get(ISTIO_CONFIG))
    metadata = config.get("proxyMetadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    if str(metadata.get("EXIT_ON_ZERO_ACTIVE_CONNECTIONS")).lower() == "true":
        minimum = _seconds(metadata.get("MINIMUM_DRAIN_DURATION"))
        stays = ISTIO_DEFAULT_DRAIN_SECONDS if minimum is None else minimum
        key = "proxyMetadata.MINIMUM_DRAIN_DURATION"
        setting = f"{ISTIO_CONFIG} {key}"
        return InjectedProxy("istio", "istio-proxy", fld, native, stays, setting, True, key)
    drain = _seconds(config.get("terminationDrainDuration"))
    stays = ISTIO_DEFAULT_DRAIN_SECONDS if drain is None else drain
    key = "terminationDrainDuration"
    setting = f"{ISTIO_CONFIG} {key}"
    return InjectedProxy("istio", "istio-proxy", fld, native, stays, setting, False, key)


def _yaml_mapping(text: str | None) -> Mapping[str, object]:
    """An annotation that holds YAML (Istio's proxy config) as a mapping; {} if it is not one."""
    try:
        loaded = yaml.safe_load(text or "")
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, Mapping) else {}


def _seconds(raw: object) -> float | None:
    """``"30s"``, ``"1m"``, ``"500ms"``, ``30`` -> seconds; None when not a duration."""
    match = _DURATION.match(str(raw))  # None, True: no match
    if match is None:
        return None
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
