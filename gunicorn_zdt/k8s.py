"""Read Kubernetes manifests and extract what the termination budget depends on.

Input: files, folders (their ``*.yaml``/``*.yml``/``*.json`` files, not subfolders),
multi-document YAML, ``kind: List`` objects, and ``-`` for standard input (e.g.
``kubectl kustomize k8s/ | gunicorn-zdt check -``). Output: :class:`Document` objects
and, for each Deployment or StatefulSet, a :class:`Workload` with the pod's grace
period, preStop, probes, ports, literal env and command, the rolling-update strategy and
minReadySeconds, Kubernetes defaults applied, and every other container of the pod
(:class:`Neighbour`: plain containers, native sidecars, init containers), because they
all receive SIGTERM at the moment the pod is deleted. ``gunicorn-zdt check``/``timeline``
and the drill (``gunicorn_zdt.drill.manifest``) all read workloads through here.

Problems with the input itself are raised as :class:`ManifestError` with a one-line
message; nothing here knows about Gunicorn or the rules. Needs PyYAML.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

__all__ = [
    "WORKLOAD_KINDS",
    "Document",
    "ManifestError",
    "Neighbour",
    "PreStop",
    "Probe",
    "Workload",
    "autoscaler_for",
    "label_selector_matches",
    "read_documents",
    "resolve_int_or_percent",
    "rolling_update_limits",
    "skipped_kinds",
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
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: Workload kinds whose pods the check reads (both replace pods one by one on an update).
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
#: Kinds read next to the workloads, or harmless to the termination: no note when skipped.
READ_KINDS = frozenset(
    {
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Ingress",
        "HTTPRoute",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "NetworkPolicy",
        "Namespace",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "PersistentVolumeClaim",
        "IngressClass",
        "Gateway",
        "GatewayClass",
        "ServiceMonitor",
        "PodMonitor",
        "Kustomization",
    }
)
STDIN_NAME = "<stdin>"


class ManifestError(Exception):
    """The input cannot be read as Kubernetes objects; ``str()`` is the one-line report."""


@dataclass(frozen=True)
class Document:
    """One Kubernetes object and where it came from."""

    source: str
    obj: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def name(self) -> str:
        metadata = self.obj.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        return str(name) if name else "<unnamed>"

    @property
    def namespace(self) -> str | None:
        metadata = self.obj.get("metadata")
        ns = metadata.get("namespace") if isinstance(metadata, Mapping) else None
        return str(ns) if ns else None

    @property
    def ref(self) -> str:
        return f"{self.kind or '<no kind>'}/{self.name}"


def read_documents(
    paths: Iterable[str], stdin: IO[str] | None = None
) -> tuple[list[Document], list[str]]:
    """Every object in ``paths``; plus one error line per path that could not be read."""
    docs: list[Document] = []
    errors: list[str] = []
    for raw in paths:
        try:
            if raw == "-":
                text = (stdin or sys.stdin).read()
                docs.extend(parse_documents(text, STDIN_NAME))
                continue
            path = Path(raw)
            if path.is_dir():
                files = sorted(p for p in path.iterdir() if p.suffix in MANIFEST_SUFFIXES)
                if not files:
                    raise ManifestError(
                        f"{raw}: no *.yaml, *.yml or *.json file in this folder; "
                        "pass the folder that holds your Deployment"
                    )
            elif path.exists():
                files = [path]
            else:
                raise ManifestError(f"{raw}: no such file or folder")
            for file in files:
                try:
                    text = file.read_text(encoding="utf-8")
                except UnicodeDecodeError as exc:
                    raise ManifestError(
                        f"{file}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                        f"{exc.start}); pass a YAML or JSON manifest"
                    ) from None
                except OSError as exc:
                    raise ManifestError(f"{file}: cannot read: {exc}") from None
                docs.extend(parse_documents(text, str(file)))
        except ManifestError as exc:
            errors.append(str(exc))
    return docs, errors


def parse_documents(text: str, source: str) -> list[Document]:
    """The objects of a (multi-document) YAML or JSON text; ``kind: List`` is flattened."""
    try:
        loaded = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ManifestError(
            f"{source}: not valid YAML{where}: {problem}; fix the syntax "
            "(or render templates first, e.g. kubectl kustomize DIR | gunicorn-zdt check -)"
        ) from None
    out: list[Document] = []
    for index, obj in enumerate(loaded, start=1):
        if not isinstance(obj, Mapping) or "kind" not in obj:
            raise ManifestError(
                f"{source}: document {index} is not a Kubernetes object (no kind); "
                "pass only manifests, one object per YAML document"
            )
        if obj.get("kind") == "List" and isinstance(obj.get("items"), list):
            out.extend(Document(source, item) for item in obj["items"] if isinstance(item, Mapping))
        else:
            out.append(Document(source, obj))
    return out


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """Kubernetes' IntOrString scaling: ``"25%"`` of ``total``, rounded as the controller does."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number or percentage")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        percent = int(text[:-1])
        scaled, remainder = divmod(percent * total, 100)
        return scaled + (1 if round_up and remainder else 0)
    return int(text)


def rolling_update_limits(
    replicas: int, max_surge: int | str, max_unavailable: int | str
) -> tuple[int, int]:
    """Absolute (maxSurge, maxUnavailable) as the Deployment controller resolves them.

    Surge rounds up, unavailable down, and when both come to 0 unavailable becomes 1
    (deploymentutil.ResolveFenceposts). Raises ValueError for a negative or malformed value.
    """
    resolved = []
    for name, value, round_up in (
        ("maxSurge", max_surge, True),
        ("maxUnavailable", max_unavailable, False),
    ):
        try:
            number = resolve_int_or_percent(value, replicas, round_up=round_up)
        except ValueError:
            raise ValueError(
                f"{name} {value!r} is not a number or percentage; use e.g. 1 or '25%'"
            ) from None
        if number < 0:
            raise ValueError(f"{name} {value!r} must not be negative")
        resolved.append(number)
    surge, unavailable = resolved
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def label_selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a pod's labels."""
    if not isinstance(selector, Mapping):
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return True  # policy/v1: an empty selector selects every pod
    if any(labels.get(k) != str(v) for k, v in match_labels.items()):
        return False
    for expr in expressions:
        key, op = expr.get("key"), expr.get("operator")
        values = [str(v) for v in expr.get("values") or []]
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(op, False)
        if not ok:
            return False
    return True


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
    env: Mapping[str, str]  # literal values only
    env_indirect: frozenset[str]  # names set through valueFrom
    command: list[str] | None
    args: list[str] | None
    prestop: PreStop
    probes: Mapping[str, Probe | None] = field(default_factory=dict)
    min_ready_seconds: float = 0.0
    progress_deadline_seconds: float = DEFAULT_PROGRESS_DEADLINE_SECONDS
    replicas_set: bool = True  # spec.replicas written in the manifest (not defaulted)
    neighbours: tuple[Neighbour, ...] = ()
    pod_management_policy: str = "OrderedReady"  # StatefulSet only

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
        return f"{self.container_field}.env[{name}]"

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
    """A Workload per Deployment or StatefulSet; a ManifestError (one line) for a broken one."""
    for doc in docs:
        if doc.kind not in WORKLOAD_KINDS:
            continue
        try:
            yield _workload(doc)
        except ManifestError as exc:
            yield exc
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            yield ManifestError(
                f"{doc.source}: {doc.ref}: cannot read this {doc.kind} ({exc}); "
                "check it with kubectl apply --dry-run=client"
            )


def skipped_kinds(docs: Iterable[Document]) -> list[str]:
    """One note per object of a kind the check neither reads nor knows to be harmless."""
    return [
        f"{doc.source}: {doc.ref}: skipped: the check does not read {doc.kind or 'objects without a kind'}"
        for doc in docs
        if doc.kind not in WORKLOAD_KINDS and doc.kind not in READ_KINDS
    ]


def autoscaler_for(workload: Workload, docs: Iterable[Document]) -> Document | None:
    """The HorizontalPodAutoscaler whose scaleTargetRef is this workload, if one is in the stream.

    Its ``spec.minReplicas`` (the fewest pods a node drain can meet) must be a whole number
    >= 1 when given, as the API server requires; anything else is a ManifestError.
    """
    for doc in docs:
        if doc.kind != "HorizontalPodAutoscaler" or doc.namespace != workload.doc.namespace:
            continue
        spec = doc.obj.get("spec")
        if not isinstance(spec, Mapping):
            continue
        target = spec.get("scaleTargetRef")
        if (
            isinstance(target, Mapping)
            and target.get("kind") == workload.kind
            and target.get("name") == workload.doc.name
        ):
            least = spec.get("minReplicas")  # None: the API server's default, 1
            if least is not None and (
                isinstance(least, bool) or not isinstance(least, int) or least < 1
            ):
                raise ManifestError(
                    f"{doc.source}: {doc.ref}: spec.minReplicas: {least!r} is not a whole "
                    "number >= 1; write it as a number, e.g. minReplicas: 2"
                )
            return doc
    return None


def _need(obj: Any, key: str, doc: Document, path: str, kind: type = dict) -> Any:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if not isinstance(value, kind) or not value:
        expected = "a mapping" if kind is dict else "a non-empty list"
        raise ManifestError(
            f"{doc.source}: {doc.ref}: {path}: missing or not {expected}; "
            "give the complete Deployment (render kustomize/helm output first)"
        )
    return value


def _workload(doc: Document) -> Workload:
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
    ports = {}
    for port in container.get("ports") or []:
        number = int(port["containerPort"])
        ports[str(port.get("name") or number)] = number
    env: dict[str, str] = {}
    indirect: set[str] = set()
    for var in container.get("env") or []:
        name = str(var.get("name"))
        if "valueFrom" in var:
            indirect.add(name)
        else:
            env[name] = "" if var.get("value") is None else str(var.get("value"))
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
        ports=ports,
        env=env,
        env_indirect=frozenset(indirect),
        command=_str_list(container.get("command")),
        args=_str_list(container.get("args")),
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
        if any(str(v.get("name", "")).startswith("ZDT_") for v in c.get("env") or []):
            return c
    return mappings[0]


def _probe(kind: str, raw: Any, fld: str) -> Probe | None:
    if not isinstance(raw, Mapping):
        return None
    handler = next((h for h in ("httpGet", "tcpSocket", "exec", "grpc") if h in raw), None)
    action = raw.get(handler) if handler else None
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


def exec_sleep_seconds(command: list[str]) -> float | None:
    """``["sleep", "5"]`` or ``["/bin/sh", "-c", "sleep 5"]`` -> 5.0; anything else -> None."""
    words = command
    if len(command) >= 3 and Path(command[0]).name in SHELLS and command[1] == "-c":
        try:
            words = shlex.split(command[2])
        except ValueError:
            return None
    if len(words) == 2 and Path(words[0]).name == "sleep":
        try:
            return float(words[1].rstrip("s"))
        except ValueError:
            return None
    return None


SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"})
