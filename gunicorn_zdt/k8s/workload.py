"""A Deployment's or StatefulSet's pod, reduced to what decides whether requests drop.

For each Deployment or StatefulSet, a :class:`Workload` with the pod's grace period,
preStop, probes, ports, env (resolved as the kubelet resolves it, :mod:`.env`) and
command, the rolling-update strategy and minReadySeconds, Kubernetes defaults applied,
and every other container of the pod (:class:`Neighbour`: plain containers, native
sidecars, init containers, mesh proxies injected by annotation), because they all receive
SIGTERM at the moment the pod is deleted. ``gunicorn-zdt check``/``timeline`` and the
drill (``gunicorn_zdt.drill.manifest``) all read workloads through here.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .commands import exec_sleep_seconds
from .documents import WORKLOAD_KINDS, Document, ManifestError
from .env import EnvSources, expand_words, resolve_env, service_links
from .mesh import InjectedProxy, injected_proxies
from .selectors import rolling_update_limits

__all__ = [
    "PROBE_DEFAULTS",
    "Neighbour",
    "PreStop",
    "Probe",
    "Workload",
    "workloads",
]


#: Kubernetes defaults (core/v1 types.go): the numbers a probe has when a field is left out.
PROBE_DEFAULTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "successThreshold": 1,
    "failureThreshold": 3,
}
DEFAULT_GRACE_PERIOD_SECONDS = 30
#: apps/v1 defaults (apps/v1 defaults.go).
DEFAULT_MAX_SURGE = DEFAULT_MAX_UNAVAILABLE = "25%"
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600


@dataclass(frozen=True)
class Probe:
    """One probe of the app container, Kubernetes defaults applied.

    Seconds are whole in a manifest; the drill's overrides may make them fractional.
    """

    kind: str  # readiness | liveness | startup
    field: str = ""  # e.g. spec.template.spec.containers[app].readinessProbe
    handler: str | None = "httpGet"  # httpGet | tcpSocket | exec | grpc
    path: str | None = None
    port: int | str | None = None
    initial_delay_seconds: float = PROBE_DEFAULTS["initialDelaySeconds"]
    period_seconds: float = PROBE_DEFAULTS["periodSeconds"]
    timeout_seconds: float = PROBE_DEFAULTS["timeoutSeconds"]
    success_threshold: int = PROBE_DEFAULTS["successThreshold"]
    failure_threshold: int = PROBE_DEFAULTS["failureThreshold"]
    #: Probe-level terminationGracePeriodSeconds (liveness/startup, GA 1.28): the grace of
    #: the restart this probe triggers; None: the pod's.
    termination_grace_period_seconds: float | None = None

    @property
    def path_only(self) -> str | None:
        """The httpGet path without its query string (``?exclude=`` is allowed)."""
        return None if self.path is None else self.path.split("?", 1)[0]


@dataclass(frozen=True)
class PreStop:
    """The container's preStop hook, as far as its duration is known."""

    handler: str | None = None  # sleep | exec | httpGet | None
    seconds: float = 0.0  # 0 when none or unknown
    field: str = "lifecycle.preStop"
    exec_sleep: bool = False  # exec of a ``sleep`` binary (needs one in the image)
    command: tuple[str, ...] | None = None  # exec: the command
    path: str | None = None  # httpGet: the path

    @classmethod
    def sleeping(cls, seconds: float) -> PreStop:
        """A native ``sleep`` preStop of ``seconds``; no preStop for 0."""
        return cls("sleep", float(seconds)) if seconds else cls()

    @property
    def sleeps(self) -> bool:
        """A sleep of ``seconds``: native, or an exec of ``sleep``."""
        return self.handler == "sleep" or self.exec_sleep

    @property
    def empty(self) -> bool:
        return self.handler is None or (self.handler == "sleep" and not self.seconds)

    def describe(self) -> str:
        if self.sleeps:
            return f"sleep {self.seconds:g} s"
        if self.handler == "exec":
            return "exec " + shlex.join(self.command or ())
        if self.handler == "httpGet":
            return f"httpGet {self.path}"
        return "none"


@dataclass(frozen=True)
class Neighbour:
    """Another container of the pod than Gunicorn's.

    ``role``: ``container`` (a plain container: SIGTERM at the same moment as Gunicorn),
    ``sidecar`` (native: an init container with ``restartPolicy: Always``, stopped after
    the main containers) or ``init`` (runs to completion before the app starts).
    """

    name: str
    field: str
    role: str
    ports: tuple[int, ...]
    prestop: PreStop
    words: tuple[str, ...]  # command + args, as written
    mesh: InjectedProxy | None = None  # a proxy the mesh injects (not in the manifest)

    @property
    def runs_with_the_app(self) -> bool:
        return self.role in {"container", "sidecar"}


@dataclass(frozen=True)
class Workload:
    """A Deployment's or StatefulSet's pod, reduced to what decides whether requests drop."""

    doc: Document
    replicas: int
    strategy: Mapping[str, Any]
    labels: Mapping[str, str]
    grace_period_seconds: float
    grace_period_set: bool
    container_name: str
    container_field: str
    ports: Mapping[str, int]  # name (or str(port) when unnamed) -> containerPort
    env: Mapping[str, str]  # every value known from the stream (k8s.env.resolve_env)
    env_unknown: Mapping[str, str]  # name -> where its value would come from
    command: list[str] | None
    args: list[str] | None
    prestop: PreStop
    probes: Mapping[str, Probe | None] = field(default_factory=dict)
    min_ready_seconds: float = 0.0
    progress_deadline_seconds: float = DEFAULT_PROGRESS_DEADLINE_SECONDS
    replicas_set: bool = True  # spec.replicas written in the manifest (not defaulted)
    neighbours: tuple[Neighbour, ...] = ()
    pod_management_policy: str = "OrderedReady"  # StatefulSet only
    #: envFrom sources not in the input (any name may come from them): ``ConfigMap/name``
    env_hidden: tuple[str, ...] = ()
    env_origin: Mapping[str, str] = field(default_factory=dict)  # name -> manifest field
    annotations: Mapping[str, str] = field(default_factory=dict)  # the pod template's
    #: What the kubelet adds under the container's env: Service links (k8s.env.service_links)
    base_env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None  # the app container's workingDir

    @property
    def env_indirect(self) -> frozenset[str]:
        """Names whose value the check cannot see (a valueFrom it cannot resolve)."""
        return frozenset(self.env_unknown)

    @property
    def source(self) -> str:
        return self.doc.source

    @property
    def kind(self) -> str:
        return self.doc.kind

    @property
    def strategy_field(self) -> str:
        """Where the update strategy lives: Deployments and StatefulSets name it differently."""
        return "spec.updateStrategy" if self.kind == "StatefulSet" else "spec.strategy"

    @property
    def strategy_type(self) -> str:
        return str(self.strategy.get("type") or "RollingUpdate")

    @property
    def max_surge(self) -> int | str:
        return (self.strategy.get("rollingUpdate") or {}).get("maxSurge", DEFAULT_MAX_SURGE)

    @property
    def max_unavailable(self) -> int | str:
        rolling = self.strategy.get("rollingUpdate") or {}
        return rolling.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE)

    @property
    def ref(self) -> str:
        return self.doc.ref

    def env_field(self, name: str) -> str:
        """Where ``name`` is set (an ``envFrom`` entry when it comes from one)."""
        return self.env_origin.get(name) or f"{self.container_field}.env[{name}]"

    @property
    def container_ports(self) -> list[int]:
        return sorted(set(self.ports.values()))

    def resolve_port(self, port: int | str | None) -> int | None:
        """A probe's or Service's port, by number or by the container port's name."""
        if isinstance(port, int) and not isinstance(port, bool):
            return port
        if isinstance(port, str):
            if port.isdigit():
                return int(port)
            return self.ports.get(port)
        return None


def workloads(docs: Iterable[Document]) -> Iterator[Workload | ManifestError]:
    """A Workload per Deployment or StatefulSet; a ManifestError (one line) for a broken one.

    Env values come from the ConfigMaps and Secrets among ``docs`` (:mod:`.env`).
    """
    docs = list(docs)
    sources = EnvSources.of(docs)
    links = {ns: service_links(docs, ns) for ns in {d.namespace for d in docs}}
    namespaces = {
        d.name: d.obj["metadata"]
        for d in docs
        if d.kind == "Namespace" and isinstance(d.obj.get("metadata"), Mapping)
    }
    for doc in docs:
        if doc.kind not in WORKLOAD_KINDS:
            continue
        try:
            workload = _workload(doc, sources, namespaces.get(doc.namespace or "default") or {})
            pod = doc.obj["spec"]["template"]["spec"]
            if pod.get("enableServiceLinks") is not False:  # absent: true
                workload = dataclasses.replace(workload, base_env=links[doc.namespace])
            yield workload
        except ManifestError as exc:
            yield exc
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            yield ManifestError(
                f"{doc.source}: {doc.ref}: cannot read this {doc.kind} ({exc}); "
                "check it with kubectl apply --dry-run=client"
            )


def _need(obj: Any, key: str, doc: Document, path: str, kind: type = dict) -> Any:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if not isinstance(value, kind) or not value:
        expected = "a mapping" if kind is dict else "a non-empty list"
        raise ManifestError(
            f"{doc.source}: {doc.ref}: {path}: missing or not {expected}; "
            "give the complete Deployment (render kustomize/helm output first)"
        )
    return value


def _workload(doc: Document, sources: EnvSources, namespace: Mapping[str, Any]) -> Workload:
    spec = _need(doc.obj, "spec", doc, "spec")
    template = _need(spec, "template", doc, "spec.template")
    pod = _need(template, "spec", doc, "spec.template.spec")
    containers = _need(pod, "containers", doc, "spec.template.spec.containers", list)
    container = _app_container(containers)
    neighbours = _neighbours(pod, container)
    cname = str(container.get("name") or containers.index(container))
    cfield = f"spec.template.spec.containers[{cname}]"
    labels = {
        str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()
    }
    grace_raw = pod.get("terminationGracePeriodSeconds")
    env = resolve_env(container, doc.namespace, sources, cfield)
    annotations = _strings((template.get("metadata") or {}).get("annotations"))
    neighbours += _injected(labels, annotations, namespace)
    probes = {
        kind: _probe(kind, container.get(f"{kind}Probe"), f"{cfield}.{kind}Probe")
        for kind in ("readiness", "liveness", "startup")
    }
    strategy_key = "updateStrategy" if doc.kind == "StatefulSet" else "strategy"
    workload = Workload(
        doc=doc,
        replicas=int(spec.get("replicas", 1)),
        replicas_set=spec.get("replicas") is not None,
        neighbours=neighbours,
        pod_management_policy=str(spec.get("podManagementPolicy") or "OrderedReady"),
        strategy=spec.get(strategy_key) or {},
        labels=labels,
        grace_period_seconds=float(
            DEFAULT_GRACE_PERIOD_SECONDS if grace_raw is None else grace_raw
        ),
        grace_period_set=grace_raw is not None,
        container_name=cname,
        container_field=cfield,
        ports=_ports(container),
        env=dict(env.values),
        env_unknown=dict(env.unknown),
        env_hidden=env.hidden,
        env_origin={k: v for k, v in env.origin.items() if ".envFrom[" in v},
        annotations=annotations,
        working_dir=str(container["workingDir"]) if container.get("workingDir") else None,
        command=expand_words(_str_list(container.get("command")), env.values),
        args=expand_words(_str_list(container.get("args")), env.values),
        prestop=_prestop(container, f"{cfield}.lifecycle.preStop"),
        probes=probes,
        min_ready_seconds=float(spec.get("minReadySeconds", 0)),
        progress_deadline_seconds=float(
            spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_SECONDS)
        ),
    )
    if workload.kind == "Deployment" and workload.strategy_type == "RollingUpdate":
        # the rules and the drill resolve these: a malformed one is a ValueError, one line
        rolling_update_limits(workload.replicas, workload.max_surge, workload.max_unavailable)
    return workload


def _neighbours(pod: Mapping[str, Any], app: Mapping[str, Any]) -> tuple[Neighbour, ...]:
    out = []
    for key in ("initContainers", "containers"):
        for index, c in enumerate(pod.get(key) or []):
            if not isinstance(c, Mapping) or c is app:
                continue
            name = str(c.get("name") or index)
            if key == "containers":
                role = "container"
            else:
                role = "sidecar" if c.get("restartPolicy") == "Always" else "init"
            fld = f"spec.template.spec.{key}[{name}]"
            ports = tuple(
                int(p["containerPort"])
                for p in c.get("ports") or []
                if isinstance(p, Mapping) and "containerPort" in p
            )
            words = (*(_str_list(c.get("command")) or []), *(_str_list(c.get("args")) or []))
            prestop = _prestop(c, f"{fld}.lifecycle.preStop")
            out.append(Neighbour(name, fld, role, ports, prestop, words))
    return tuple(out)


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _ports(container: Mapping[str, Any]) -> dict[str, int]:
    """name (or str(port) when unnamed) -> containerPort."""
    ports = {}
    for port in container.get("ports") or []:
        number = int(port["containerPort"])
        ports[str(port.get("name") or number)] = number
    return ports


def _injected(
    labels: Mapping[str, str], annotations: Mapping[str, str], namespace: Mapping[str, Any]
) -> tuple[Neighbour, ...]:
    """The mesh proxies admission will add to the pod (:mod:`.mesh`), as containers."""
    proxies = injected_proxies(
        labels,
        annotations,
        _strings(namespace.get("labels")),
        _strings(namespace.get("annotations")),
    )
    return tuple(_proxy_neighbour(proxy) for proxy in proxies)


def _proxy_neighbour(proxy: InjectedProxy) -> Neighbour:
    """An injected mesh proxy as a container (its drain is in ``proxy``, not a preStop)."""
    role = "sidecar" if proxy.native else "container"
    return Neighbour(proxy.name, proxy.field, role, (), PreStop(), (), proxy)


def _str_list(value: Any) -> list[str] | None:
    return None if value is None else [str(v) for v in value]


def _mentions_gunicorn(container: Mapping[str, Any]) -> bool:
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    return any("gunicorn" in str(w) for w in words)


def _app_container(containers: list[Any]) -> Mapping[str, Any]:
    """The container that runs Gunicorn: named in its command, else has ZDT_* env, else first."""
    mappings = [c for c in containers if isinstance(c, Mapping)]
    if not mappings:
        raise TypeError("containers must be mappings")
    for c in mappings:
        if _mentions_gunicorn(c):
            return c
    for c in mappings:
        if any(str(v.get("name")).startswith("ZDT_") for v in c.get("env") or []):
            return c
    return mappings[0]


def _probe(kind: str, raw: Any, fld: str) -> Probe | None:
    if not isinstance(raw, Mapping):
        return None
    handler = next((h for h in ("httpGet", "tcpSocket", "exec", "grpc") if h in raw), None)
    action = raw.get(handler)  # None without a handler
    action = action if isinstance(action, Mapping) else {}
    numbers = {key: int(raw.get(key, default)) for key, default in PROBE_DEFAULTS.items()}
    return Probe(
        kind=kind,
        field=fld,
        handler=handler,
        path=str(action.get("path", "/")) if handler == "httpGet" else None,
        port=action.get("port"),
        initial_delay_seconds=numbers["initialDelaySeconds"],
        period_seconds=numbers["periodSeconds"],
        timeout_seconds=numbers["timeoutSeconds"],
        success_threshold=numbers["successThreshold"],
        failure_threshold=numbers["failureThreshold"],
        termination_grace_period_seconds=(
            None
            if raw.get("terminationGracePeriodSeconds") is None
            else float(raw["terminationGracePeriodSeconds"])
        ),
    )


def _prestop(container: Mapping[str, Any], fld: str) -> PreStop:
    hook = (container.get("lifecycle") or {}).get("preStop")
    if not isinstance(hook, Mapping):
        return PreStop(None, 0.0, fld)
    if isinstance(hook.get("sleep"), Mapping):
        return PreStop("sleep", float(hook["sleep"].get("seconds", 0)), fld)
    if isinstance(hook.get("exec"), Mapping):
        command = _str_list(hook["exec"].get("command")) or []
        seconds = exec_sleep_seconds(command)
        return PreStop(
            "exec", seconds or 0.0, fld, exec_sleep=seconds is not None, command=tuple(command)
        )
    if "httpGet" in hook:
        action = hook["httpGet"] if isinstance(hook["httpGet"], Mapping) else {}
        return PreStop("httpGet", 0.0, fld, path=str(action.get("path", "/")))
    return PreStop(None, 0.0, fld)
