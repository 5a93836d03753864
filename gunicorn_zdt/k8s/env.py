"""A container's environment as the kubelet builds it, from the objects in the stream.

Kubernetes' order (``kubelet_pods.go`` ``makeEnvironmentVariables``): each ``envFrom``
source in turn (a later source wins; ``prefix`` prepended), then each ``env`` entry (a
later duplicate wins over an earlier one and over ``envFrom``). ``value`` may use
``$(NAME)`` of a variable defined before it (``$$`` escapes; an unknown reference stays
as written); ``valueFrom`` reads a ConfigMap or Secret key, or a field of the pod.
``command`` and ``args`` expand ``$(NAME)`` with the finished environment.

A ConfigMap or Secret that is not in the input, a key it does not have, or a field only
the running pod knows (``status.podIP``, resource limits) makes the value *unknown*:
:class:`ResolvedEnv` says where it would come from, and nothing reports it as unset.
Stdlib only.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .documents import Document

__all__ = ["EnvSources", "ResolvedEnv", "expand", "resolve_env", "service_links"]

#: ``fieldRef`` paths whose value the manifest itself holds (the rest: the running pod).
_KNOWN_FIELDS = ("metadata.namespace",)
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass(frozen=True)
class EnvSources:
    """The ConfigMaps and Secrets of the stream, by (namespace, name)."""

    config_maps: Mapping[tuple[str | None, str], Mapping[str, str]]
    secrets: Mapping[tuple[str | None, str], Mapping[str, str]]

    @classmethod
    def of(cls, docs: Iterable[Document]) -> EnvSources:
        config_maps: dict[tuple[str | None, str], Mapping[str, str]] = {}
        secrets: dict[tuple[str | None, str], Mapping[str, str]] = {}
        for doc in docs:
            if doc.kind == "ConfigMap":
                data = doc.obj.get("data")
                data = data if isinstance(data, Mapping) else {}
                config_maps[(doc.namespace, doc.name)] = {str(k): str(v) for k, v in data.items()}
            elif doc.kind == "Secret":
                secrets[(doc.namespace, doc.name)] = _secret_values(doc.obj)
        return cls(config_maps, secrets)

    def lookup(self, kind: str, namespace: str | None, name: str) -> Mapping[str, str] | None:
        table = self.config_maps if kind == "ConfigMap" else self.secrets
        return table.get((namespace, name))


def _secret_values(obj: Mapping[str, Any]) -> dict[str, str]:
    """``data`` (base64) then ``stringData`` (plain, wins), as the API server merges them."""
    out = {}
    data, plain = obj.get("data"), obj.get("stringData")
    for key, raw in (data if isinstance(data, Mapping) else {}).items():
        try:
            out[str(key)] = base64.b64decode(str(raw), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue  # not a value the container could use as text: unknown
    out.update({str(k): str(v) for k, v in (plain if isinstance(plain, Mapping) else {}).items()})
    return out


@dataclass(frozen=True)
class ResolvedEnv:
    """``values``: every variable whose value is known; ``unknown``: name -> where it would
    come from; ``hidden``: whole ``envFrom`` sources that are not in the input (any name
    may come from them); ``origin``: name -> the manifest field that set it."""

    values: Mapping[str, str]
    unknown: Mapping[str, str] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()
    origin: Mapping[str, str] = field(default_factory=dict)


def expand(text: str, values: Mapping[str, str]) -> str:
    """``$(NAME)`` -> its value when known; ``$$`` -> ``$``; anything else as written."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return values.get(name, match.group(0))

    return _REFERENCE.sub(one, text)


def resolve_env(
    container: Mapping[str, Any],
    namespace: str | None,
    sources: EnvSources,
    field_path: str,
) -> ResolvedEnv:
    """The container's environment (see the module doc); ``field_path`` names the container."""
    values: dict[str, str] = {}
    unknown: dict[str, str] = {}
    origin: dict[str, str] = {}
    hidden: list[str] = []
    for source in container.get("envFrom") or []:
        if not isinstance(source, Mapping):
            continue
        prefix = str(source.get("prefix") or "")
        found = _env_from_ref(source)
        if found is None:
            continue
        kind, ref = found
        data = sources.lookup(kind, namespace, ref)
        if data is None:
            if not _optional(source, kind):
                hidden.append(f"{kind}/{ref}")
            continue
        for key, text in data.items():
            name = prefix + key
            values[name] = text
            origin[name] = f"{field_path}.envFrom[{kind}/{ref}].{key}"
    for var in container.get("env") or []:
        if not isinstance(var, Mapping):
            continue
        name = str(var.get("name"))
        origin[name] = f"{field_path}.env[{name}]"
        value: str | None
        if "valueFrom" in var:
            value, why = _value_from(var.get("valueFrom"), namespace, sources)
        else:
            raw = var.get("value")
            value, why = expand("" if raw is None else str(raw), values), None
        if value is None:
            values.pop(name, None)
            unknown[name] = why or "valueFrom"
        else:
            values[name] = value
            unknown.pop(name, None)
    return ResolvedEnv(values, unknown, tuple(hidden), origin)


def expand_words(words: Sequence[str] | None, values: Mapping[str, str]) -> list[str] | None:
    """``command``/``args`` with ``$(NAME)`` expanded, as the kubelet starts the container."""
    return None if words is None else [expand(str(w), values) for w in words]


def _env_from_ref(source: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of an envFrom source; None when it names nothing."""
    for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
        ref = source.get(key)
        if isinstance(ref, Mapping) and ref.get("name"):
            return kind, str(ref["name"])
    return None


def _optional(source: Mapping[str, Any], kind: str) -> bool:
    ref = source.get("configMapRef" if kind == "ConfigMap" else "secretRef") or {}
    return bool(ref.get("optional"))


def _value_from(
    spec: Any, namespace: str | None, sources: EnvSources
) -> tuple[str | None, str | None]:
    """(value, None) or (None, why it is unknown)."""
    if not isinstance(spec, Mapping):
        return None, "valueFrom"
    for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
        ref = spec.get(key)
        if not isinstance(ref, Mapping):
            continue
        name, item = str(ref.get("name")), str(ref.get("key"))
        data = sources.lookup(kind, namespace, name)
        if data is None:
            return None, f"{kind}/{name}, which is not in the input"
        if item not in data:
            return None, f"{kind}/{name}, which has no key {item}"
        return data[item], None
    ref = spec.get("fieldRef")
    if isinstance(ref, Mapping):
        path = str(ref.get("fieldPath"))
        if path in _KNOWN_FIELDS and namespace is not None:
            return namespace, None
        return None, f"the pod's {path}, known only when it runs"
    if isinstance(spec.get("resourceFieldRef"), Mapping):
        resource = spec["resourceFieldRef"].get("resource")
        return None, f"the container's {resource}, known only when it runs"
    return None, "valueFrom"


#: The address the check gives Services without a ``clusterIP`` (the API server assigns
#: one; any address shows a config what shape the value has).
PLACEHOLDER_CLUSTER_IP = "10.96.0.10"


def service_links(docs: Iterable[Document], namespace: str | None) -> dict[str, str]:
    """The variables the kubelet adds for Services (``enableServiceLinks``, on by default).

    Every Service of the pod's namespace with a cluster IP gives ``NAME_SERVICE_HOST``,
    ``NAME_SERVICE_PORT``, ``NAME_PORT=tcp://IP:PORT`` and the per-port forms (NAME upper
    case, ``-`` as ``_``), and every pod has the API server's ``KUBERNETES_SERVICE_*``. A
    Service named ``app`` thus gives every pod ``APP_PORT=tcp://...``: a config that reads
    ``APP_PORT`` as its own port number gets that instead.
    """
    out = {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
    }
    for doc in docs:
        if doc.kind != "Service" or doc.namespace != namespace:
            continue
        spec = doc.obj.get("spec")
        spec = spec if isinstance(spec, Mapping) else {}
        ip = spec.get("clusterIP") or PLACEHOLDER_CLUSTER_IP
        ports = [p for p in spec.get("ports") or [] if isinstance(p, Mapping) and "port" in p]
        if ip == "None" or not ports or spec.get("type") == "ExternalName":
            continue
        name = doc.name.upper().replace("-", "_")
        first = ports[0]
        out[f"{name}_SERVICE_HOST"] = str(ip)
        out[f"{name}_SERVICE_PORT"] = str(first["port"])
        out[f"{name}_PORT"] = (
            f"{str(first.get('protocol') or 'TCP').lower()}://{ip}:{first['port']}"
        )
        for port in ports:
            proto = str(port.get("protocol") or "TCP")
            stem = f"{name}_PORT_{port['port']}_{proto}"
            out[stem] = f"{proto.lower()}://{ip}:{port['port']}"
            out[f"{stem}_PROTO"] = proto.lower()
            out[f"{stem}_PORT"] = str(port["port"])
            out[f"{stem}_ADDR"] = str(ip)
            if port.get("name"):
                out[f"{name}_SERVICE_PORT_{str(port['name']).upper().replace('-', '_')}"] = str(
                    port["port"]
                )
    return out
