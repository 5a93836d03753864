"""The Deployment as the rehearsal models it, read through :mod:`gunicorn_zdt.k8s`.

``gunicorn_zdt.k8s`` parses the manifest (the same reader as ``gunicorn-zdt check``);
this module keeps what only the rehearsal needs: which Deployments it can rehearse
(RollingUpdate, httpGet or tcpSocket probes) and a spec the command line can override.
Probes go to the pod's own ``{port}``, except those aimed at the probe listener's port
(``ZDT_PROBE_BIND``): each pod gets a listener port of its own for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..k8s import (
    DEFAULT_GRACE_PERIOD_SECONDS,
    DEFAULT_MAX_SURGE,
    DEFAULT_MAX_UNAVAILABLE,
    DEFAULT_PROGRESS_DEADLINE_SECONDS,
    Document,
    ManifestError,
    PreStop,
    Probe,
    Workload,
    read_documents,
    rolling_update_limits,
    workloads,
)

__all__ = [
    "DeploymentSpec",
    "ManifestError",
    "PreStop",
    "Probe",
    "load_deployment",
    "parse_deployment",
]

#: Extra time the kubelet grants after a preStop hook that used up the grace period.
PRESTOP_OVERRUN_SECONDS = 2.0
#: Probe handlers the rehearsal can run against a local pod.
REHEARSABLE_PROBES = ("httpGet", "tcpSocket")


@dataclass(frozen=True)
class DeploymentSpec:
    """One Deployment as the rehearsal models it (seconds unscaled)."""

    name: str = "app"
    replicas: int = 3
    max_surge: int | str = DEFAULT_MAX_SURGE
    max_unavailable: int | str = DEFAULT_MAX_UNAVAILABLE
    min_ready_seconds: float = 0.0
    progress_deadline_seconds: float = DEFAULT_PROGRESS_DEADLINE_SECONDS
    grace_period_seconds: float = DEFAULT_GRACE_PERIOD_SECONDS
    readiness: Probe | None = None
    liveness: Probe | None = None
    startup: Probe | None = None
    prestop: PreStop = field(default_factory=PreStop)
    env: Mapping[str, str] = field(default_factory=dict)
    #: kind -> the container port a probe targets (a name resolved), None if unknown.
    probe_ports: Mapping[str, int | None] = field(default_factory=dict)

    @classmethod
    def from_workload(cls, workload: Workload) -> DeploymentSpec:
        """The rehearsable part of ``workload``; ManifestError says what cannot be rehearsed."""
        where = f"{workload.source}: {workload.ref}"
        if workload.strategy_type != "RollingUpdate":
            raise ManifestError(
                f"{where}: strategy {workload.strategy_type!r} cannot be rehearsed; "
                "only RollingUpdate keeps serving during an update"
            )
        for probe in workload.probes.values():
            if probe is not None and probe.handler not in REHEARSABLE_PROBES:
                raise ManifestError(
                    f"{where}: {probe.field}: only httpGet and tcpSocket probes can be "
                    "rehearsed; use httpGet on /healthz/* or remove the probe with a flag"
                )
        spec = cls(
            name=workload.doc.name,
            replicas=workload.replicas,
            max_surge=workload.max_surge,
            max_unavailable=workload.max_unavailable,
            min_ready_seconds=workload.min_ready_seconds,
            progress_deadline_seconds=workload.progress_deadline_seconds,
            grace_period_seconds=workload.grace_period_seconds,
            readiness=workload.probes.get("readiness"),
            liveness=workload.probes.get("liveness"),
            startup=workload.probes.get("startup"),
            prestop=workload.prestop,
            env=dict(workload.env),
            probe_ports={
                kind: workload.resolve_port(probe.port)
                for kind, probe in workload.probes.items()
                if probe is not None
            },
        )
        try:
            spec.surge_and_unavailable()
        except ValueError as exc:
            raise ManifestError(f"{where}: {exc}") from None
        return spec

    def surge_and_unavailable(self) -> tuple[int, int]:
        """Absolute maxSurge / maxUnavailable, rounded like the Deployment controller."""
        return rolling_update_limits(self.replicas, self.max_surge, self.max_unavailable)

    def probes_on_port(self, port: int) -> list[str]:
        """Kinds of the probes aimed at container port ``port``."""
        return sorted(kind for kind, p in self.probe_ports.items() if p == port)

    def with_overrides(self, **changes: Any) -> DeploymentSpec:
        """A copy with every non-None keyword applied."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def parse_deployment(
    documents: list[Any], name: str | None = None, source: str = "<manifest>"
) -> DeploymentSpec:
    """The first Deployment (or the one called ``name``) among parsed Kubernetes objects."""
    docs = [d if isinstance(d, Document) else Document(source, d) for d in documents]
    return _select([d for d in docs if isinstance(d.obj, Mapping)], name, source)


def load_deployment(path: str | Path, name: str | None = None) -> DeploymentSpec:
    """Read ``path`` (multi-document YAML or JSON) and return its Deployment."""
    docs, errors = read_documents([str(path)])
    if errors:
        raise ManifestError(errors[0])
    return _select(docs, name, str(path))


def _select(docs: list[Document], name: str | None, source: str) -> DeploymentSpec:
    deployments = [d for d in docs if d.kind == "Deployment"]
    if name is not None:
        deployments = [d for d in deployments if d.name == name]
    if not deployments:
        wanted = f" named {name!r}" if name else ""
        raise ManifestError(
            f"{source}: no Deployment{wanted} in the manifest; pass the file that holds it"
        )
    workload = next(workloads(deployments[:1]))
    if isinstance(workload, ManifestError):
        raise workload
    return DeploymentSpec.from_workload(workload)
