"""The Deployment fields the rehearsal needs, read from a manifest with PyYAML.

Only what decides whether requests drop: replicas, the rolling-update strategy,
minReadySeconds, the first container's probes, preStop, env and the grace period.
Probe ports are ignored: every probe goes to the pod's own ``{port}``.
(``gunicorn_zdt.k8s`` reads manifests for ``gunicorn-zdt check``; this small reader
stays here until the two are merged.)
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: Kubernetes defaults (pkg/apis/core/v1/defaults.go, apps/v1 defaults).
DEFAULT_GRACE_SECONDS = 30.0
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600.0
#: Extra time the kubelet grants after a preStop hook that used up the grace period.
PRESTOP_OVERRUN_SECONDS = 2.0


class ManifestError(ValueError):
    """The manifest cannot drive a rehearsal; the message says what to change."""


@dataclass(frozen=True)
class Probe:
    """An httpGet or tcpSocket probe; times in (unscaled) seconds."""

    kind: str  # "http" or "tcp"
    path: str = "/"
    period_seconds: float = 10.0
    timeout_seconds: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay_seconds: float = 0.0


@dataclass(frozen=True)
class PreStop:
    """What runs before SIGTERM: a sleep (native or ``exec sleep N``), a GET, or a command."""

    sleep_seconds: float = 0.0
    http_path: str | None = None
    command: tuple[str, ...] | None = None

    @property
    def empty(self) -> bool:
        return not self.sleep_seconds and self.http_path is None and self.command is None

    def describe(self) -> str:
        if self.command is not None:
            return "exec " + shlex.join(self.command)
        if self.http_path is not None:
            return f"httpGet {self.http_path}"
        return f"sleep {self.sleep_seconds:g} s" if self.sleep_seconds else "none"


@dataclass(frozen=True)
class DeploymentSpec:
    """One Deployment as the rehearsal models it (seconds unscaled)."""

    name: str = "app"
    replicas: int = 3
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"
    min_ready_seconds: float = 0.0
    progress_deadline_seconds: float = DEFAULT_PROGRESS_DEADLINE_SECONDS
    grace_period_seconds: float = DEFAULT_GRACE_SECONDS
    readiness: Probe | None = None
    liveness: Probe | None = None
    startup: Probe | None = None
    prestop: PreStop = field(default_factory=PreStop)
    env: dict[str, str] = field(default_factory=dict)

    def surge_and_unavailable(self) -> tuple[int, int]:
        """Absolute maxSurge / maxUnavailable, rounded like the Deployment controller."""
        surge = _absolute(self.max_surge, self.replicas, round_up=True, field_name="maxSurge")
        unavailable = _absolute(
            self.max_unavailable, self.replicas, round_up=False, field_name="maxUnavailable"
        )
        if surge == 0 and unavailable == 0:
            unavailable = 1  # what the controller does (deploymentutil.ResolveFenceposts)
        return surge, unavailable

    def with_overrides(self, **changes: Any) -> DeploymentSpec:
        """A copy with every non-None keyword applied."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _absolute(value: int | str, replicas: int, *, round_up: bool, field_name: str) -> int:
    if isinstance(value, int):
        if value < 0:
            raise ManifestError(f"{field_name} {value} must be >= 0")
        return value
    text = str(value).strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            raise ManifestError(f"{field_name} {value!r} is not a number or percentage") from None
        raw = pct * replicas / 100
        return math.ceil(raw) if round_up else math.floor(raw)
    try:
        return int(text)
    except ValueError:
        raise ManifestError(f"{field_name} {value!r} is not a number or percentage") from None


def _probe(raw: dict[str, Any] | None, where: str) -> Probe | None:
    if not raw:
        return None
    if "httpGet" in raw:
        kind, path = "http", str((raw["httpGet"] or {}).get("path", "/"))
    elif "tcpSocket" in raw:
        kind, path = "tcp", ""
    else:
        raise ManifestError(
            f"{where}: only httpGet and tcpSocket probes can be rehearsed; "
            "use httpGet on /healthz/* or remove the probe with a flag"
        )
    return Probe(
        kind=kind,
        path=path,
        period_seconds=float(raw.get("periodSeconds", 10)),
        timeout_seconds=float(raw.get("timeoutSeconds", 1)),
        failure_threshold=int(raw.get("failureThreshold", 3)),
        success_threshold=int(raw.get("successThreshold", 1)),
        initial_delay_seconds=float(raw.get("initialDelaySeconds", 0)),
    )


def _sleep_seconds_of(command: list[str]) -> float | None:
    """``["sleep", "5"]`` or ``["/bin/sh", "-c", "sleep 5"]`` -> 5.0; other commands -> None."""
    words = list(command)
    if len(words) == 3 and words[0].endswith("sh") and words[1] == "-c":
        words = shlex.split(words[2])
    if len(words) == 2 and words[0].rsplit("/", 1)[-1] == "sleep":
        try:
            return float(words[1])
        except ValueError:
            return None
    return None


def _prestop(raw: dict[str, Any] | None) -> PreStop:
    if not raw:
        return PreStop()
    if "sleep" in raw:
        return PreStop(sleep_seconds=float((raw["sleep"] or {}).get("seconds", 0)))
    if "exec" in raw:
        command = [str(w) for w in (raw["exec"] or {}).get("command", [])]
        seconds = _sleep_seconds_of(command)
        if seconds is not None:
            return PreStop(sleep_seconds=seconds)
        return PreStop(command=tuple(command))
    if "httpGet" in raw:
        return PreStop(http_path=str((raw["httpGet"] or {}).get("path", "/")))
    raise ManifestError("preStop: only sleep, exec and httpGet handlers exist")


def parse_deployment(documents: list[Any], name: str | None = None) -> DeploymentSpec:
    """The first Deployment (or the one called ``name``) among parsed YAML documents."""
    deployments = [d for d in documents if isinstance(d, dict) and d.get("kind") == "Deployment"]
    if name is not None:
        deployments = [d for d in deployments if (d.get("metadata") or {}).get("name") == name]
    if not deployments:
        wanted = f" named {name!r}" if name else ""
        raise ManifestError(f"no Deployment{wanted} in the manifest")
    dep = deployments[0]
    dep_name = str((dep.get("metadata") or {}).get("name", "app"))
    spec = dep.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        raise ManifestError(
            f"Deployment/{dep_name}: strategy {strategy.get('type')!r} cannot be rehearsed; "
            "only RollingUpdate keeps serving during an update"
        )
    rolling = strategy.get("rollingUpdate") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    containers = pod_spec.get("containers") or []
    if not containers:
        raise ManifestError(f"Deployment/{dep_name}: the pod template has no containers")
    container = containers[0]
    where = f"Deployment/{dep_name}: container {container.get('name', '?')}"
    env = {
        str(e["name"]): str(e["value"])
        for e in container.get("env") or []
        if isinstance(e, dict) and "name" in e and "value" in e
    }
    return DeploymentSpec(
        name=dep_name,
        replicas=int(spec.get("replicas", 1)),
        max_surge=rolling.get("maxSurge", "25%"),
        max_unavailable=rolling.get("maxUnavailable", "25%"),
        min_ready_seconds=float(spec.get("minReadySeconds", 0)),
        progress_deadline_seconds=float(
            spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_SECONDS)
        ),
        grace_period_seconds=float(
            pod_spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        ),
        readiness=_probe(container.get("readinessProbe"), f"{where}: readinessProbe"),
        liveness=_probe(container.get("livenessProbe"), f"{where}: livenessProbe"),
        startup=_probe(container.get("startupProbe"), f"{where}: startupProbe"),
        prestop=_prestop((container.get("lifecycle") or {}).get("preStop")),
        env=env,
    )


def load_deployment(path: str | Path, name: str | None = None) -> DeploymentSpec:
    """Read ``path`` (multi-document YAML) and return its Deployment."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ManifestError(f"{path}: {exc.strerror or exc}") from None
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    try:
        return parse_deployment(documents, name)
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from None
