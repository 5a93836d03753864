"""One rehearsal, start to verdict, with every process stopped on every exit path."""

from __future__ import annotations

import contextlib
import random
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import settings
from ..core.report import SETTING as REPORT_JSON_SETTING
from ..core.settings import SettingError
from .balancer import HealthCheck, Service
from .events import EventLog
from .kubelet import Kubelet
from .load import Load, LoadProfile, verify_writes
from .manifest import DeploymentSpec
from .nginx import NginxService
from .pinning import keepalive_pinning
from .pods import PodProcess, ProcessGroups, build_command, free_port, pod_environment
from .report import summarize
from .rollout import Deployment, RolloutError
from .services import make_service
from .streams import summarize_streams

#: Environment variables of the pods whose values are durations, scaled by --time-scale.
_SCALED_ENV = re.compile(r"^ZDT_\w*_SECONDS$")


class DrillError(RuntimeError):
    """The rehearsal could not run (pods never ready, bad settings); not a verdict."""


@dataclass
class DrillOptions:
    command: str  # pod command template with {port}
    spec: DeploymentSpec
    service: str = "kube-proxy"
    rollouts: int = 1
    time_scale: float = 1.0
    propagation_seconds: tuple[float, float] = (1.0, 3.0)  # unscaled
    health_check: HealthCheck = field(default_factory=HealthCheck)  # unscaled
    upstream_idle_seconds: float = 1.0  # l7: unscaled, it is about the app's keepalive
    load: LoadProfile = field(default_factory=LoadProfile)
    env: dict[str, str] = field(default_factory=dict)  # extra pod env, not scaled
    cwd: Path = field(default_factory=Path.cwd)
    work_dir: Path = field(default_factory=lambda: Path("drill-run"))
    warmup_seconds: float = 3.0  # unscaled: steady load before the first rollout
    settle_seconds: float = 3.0  # unscaled: load kept after the last pod exited
    port_range: tuple[int, int] | None = None  # pods' (and listeners') ports; None: any free
    seed: int | None = None

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def pod_env(self) -> dict[str, str]:
        env = {}
        for key, value in self.spec.env.items():
            if _SCALED_ENV.match(key):
                # A value that is no number is left for gunicorn-zdt itself to report.
                with contextlib.suppress(ValueError):
                    value = f"{float(value) * self.time_scale:g}"
            env[key] = value
        env.update(self.env)
        return env


def describe_settings(opts: DrillOptions) -> dict[str, Any]:
    surge, unavailable = opts.spec.surge_and_unavailable()
    hc = opts.health_check
    pod_env = opts.pod_env()
    return {
        "service": opts.service,
        "command": opts.command,
        "deployment": opts.spec.name,
        "rollouts": opts.rollouts,
        "replicas": opts.spec.replicas,
        "max_surge": surge,
        "max_unavailable": unavailable,
        "time_scale": opts.time_scale,
        "grace_period_seconds": opts.scaled(opts.spec.grace_period_seconds),
        "min_ready_seconds": opts.scaled(opts.spec.min_ready_seconds),
        "prestop": opts.spec.prestop.describe()
        + (f" (x{opts.time_scale:g})" if opts.spec.prestop.sleeps else ""),
        "readiness": None if opts.spec.readiness is None else opts.spec.readiness.__dict__,
        "liveness": None if opts.spec.liveness is None else opts.spec.liveness.__dict__,
        "pod_env": pod_env,
        "probe_listener": _listener_probes(opts.spec, pod_env),
        "propagation_seconds": [opts.scaled(v) for v in opts.propagation_seconds],
        "health_check": {
            "path": hc.path,
            "interval": opts.scaled(hc.interval),
            "timeout": hc.timeout,
            "healthy_threshold": hc.healthy_threshold,
            "unhealthy_threshold": hc.unhealthy_threshold,
        }
        if opts.service == "health-check"
        else None,
        "upstream_idle_seconds": opts.upstream_idle_seconds
        if opts.service in ("l7", "nginx")
        else None,
        "load": opts.load.__dict__,
        "seed": opts.seed,
    }


def _listener_probes(spec: DeploymentSpec, env: dict[str, str]) -> list[str] | None:
    """Probes aimed at the probe listener's port; None when the pods run no listener."""
    try:
        bind = settings.resolve("ZDT_PROBE_BIND", environ=env)
    except SettingError:
        return None  # every pod refuses to start with that one-line error; the drill reports it
    return None if bind is None else spec.probes_on_port(bind[1])


def run_drill(opts: DrillOptions, log: Any = None) -> dict[str, Any]:
    """Rehearse ``opts.rollouts`` rolling updates under load; return the result dict.

    Raises :class:`DrillError` when the rehearsal itself cannot run. Every process it
    started is gone when it returns or raises (including on KeyboardInterrupt).
    """
    if opts.time_scale <= 0:
        raise DrillError("--time-scale must be > 0")
    build_command(opts.command, 1)  # fail early on a template without {port}
    opts.work_dir.mkdir(parents=True, exist_ok=True)
    rehearsal = _Rehearsal(opts, log or (lambda _msg: None))
    try:
        rehearsal.start_pods()
        rehearsal.steady_state_and_rollouts()
        lost, unverified = rehearsal.write_audit()
    finally:
        rehearsal.stop()
    return rehearsal.summary(lost, unverified)


class _Rehearsal:
    """One rehearsal's processes and records, step by step; :meth:`stop` ends every process."""

    def __init__(self, opts: DrillOptions, say: Callable[[str], None]) -> None:
        self.opts = opts
        self.say = say
        self.event_log = EventLog()
        self.groups = ProcessGroups()
        self.service = _make_service(opts, self.event_log, self.groups, random.Random(opts.seed))
        # Every pod logs its termination report as JSON too: the drill reads that one.
        self.env = pod_environment({**opts.pod_env(), REPORT_JSON_SETTING: "true"})
        self.listener_probes = _listener_probes(opts.spec, self.env)
        self.runtime_root = tempfile.TemporaryDirectory(prefix="zdt-drill-")
        self.deployment: Deployment | None = None
        self.load: Load | None = None

    def make_kubelet(self, revision: int, index: int) -> Kubelet:
        """Start pod ``index`` of ``revision`` on ports of its own, under its kubelet."""
        opts = self.opts
        assert self.deployment is not None
        port = free_port(opts.port_range)
        # What a container has of its own: Gunicorn's control socket directory (>= 25;
        # one shared path would have every master replace the others' socket) ...
        runtime_dir = Path(self.runtime_root.name) / f"pod-{index}"  # short: a unix socket path
        runtime_dir.mkdir()
        pod_env = {**self.env, "XDG_RUNTIME_DIR": str(runtime_dir)}
        probe_ports = {}
        if self.listener_probes is not None:  # ... and the probe listener's port
            listener = free_port(opts.port_range)
            pod_env["ZDT_PROBE_BIND"] = f"127.0.0.1:{listener}"
            probe_ports = dict.fromkeys(self.listener_probes, listener)
        pod = PodProcess(
            name=f"pod-{index}",
            revision=revision,
            port=port,
            command=build_command(opts.command, port),
            env=pod_env,
            cwd=opts.cwd,
            log_path=opts.work_dir / f"pod-{index}.log",
            probe_ports=probe_ports,
        )
        kubelet = Kubelet(
            pod,
            opts.spec,
            scale=opts.time_scale,
            groups=self.groups,
            event_log=self.event_log,
            service=self.service,
            changed=self.deployment.changed,
        )
        kubelet.start()
        return kubelet

    def start_pods(self) -> None:
        """The Service, then the first revision's pods, available and routed to."""
        opts, service = self.opts, self.service
        service.start()
        self.deployment = Deployment(
            opts.spec,
            scale=opts.time_scale,
            event_log=self.event_log,
            make_kubelet=self.make_kubelet,
        )
        self.say(f"starting {opts.spec.replicas} pods behind the {opts.service} service")
        try:
            self.deployment.rollout(1)
        except RolloutError as exc:
            raise DrillError(f"the first pods never became available: {exc}") from None
        if not service.wait_endpoints(opts.spec.replicas, timeout=_admit_timeout(opts)):
            raise DrillError(
                f"the {opts.service} service did not route to the first "
                f"{opts.spec.replicas} pods in time"
            )

    def steady_state_and_rollouts(self) -> None:
        """Load, a steady state, the rolling updates, every old pod gone, an observation tail."""
        opts, deployment = self.opts, self.deployment
        assert deployment is not None
        load = self.load = Load(
            self.service.port,
            opts.load,
            self.event_log.now,
            self.service.was_refused,
            pod_of=self.service.pod_of,
            time_scale=opts.time_scale,
        )
        load.start()
        self.event_log.record("", "load-started")
        warmup = opts.scaled(opts.warmup_seconds)
        self.say(f"load started; {warmup:g} s of steady state before the first update")
        _modelled_delay(warmup)  # modelled steady state
        for n in range(opts.rollouts):
            self.say(f"rolling update {n + 1}/{opts.rollouts}")
            try:
                deployment.rollout(n + 2)
            except RolloutError as exc:
                raise DrillError(str(exc)) from None
        grace = opts.scaled(opts.spec.grace_period_seconds)
        if not deployment.wait_terminated(grace + opts.scaled(2) + 10):
            raise DrillError("a deleted pod outlived its grace period by more than 10 s")
        settle = opts.scaled(opts.settle_seconds)
        self.say(f"every old pod exited; load goes on for {settle:g} s")
        _modelled_delay(settle)  # modelled observation tail
        load.stop()
        self.event_log.record("", "load-stopped")
        self.say(f"load stopped after {len(load.records)} requests")

    def write_audit(self) -> tuple[list[str], list[str]]:
        """The acknowledged writes a running pod cannot find (lost) or could not check."""
        load, deployment, write_path = self.load, self.deployment, self.opts.load.write_path
        assert load is not None and deployment is not None
        if not (write_path and load.acked):
            return [], []
        port = deployment.ready_port()
        if port is None:
            raise DrillError("no pod left running to verify the acknowledged writes against")
        self.say(f"verifying {len(load.acked)} acknowledged writes")
        return verify_writes(load.acked, port, write_path)

    def stop(self) -> None:
        """Stop the load, the pods, the Service and every process group; on every exit path."""
        if self.load is not None:
            self.load.stop()
        if self.deployment is not None:
            self.deployment.teardown()
        self.service.stop()
        self.groups.kill_all()
        self.runtime_root.cleanup()

    def summary(self, lost: list[str], unverified: list[str]) -> dict[str, Any]:
        """The result dict (:func:`.report.summarize`) of a rehearsal that ran to the end."""
        opts, service, load, deployment = self.opts, self.service, self.load, self.deployment
        assert load is not None and deployment is not None
        pods = [k.pod for k in deployment.kubelets]
        return summarize(
            settings=describe_settings(opts),
            records=sorted(load.records, key=lambda r: r.t),
            acked=len(load.acked),
            streams=summarize_streams(
                load.streams, path=opts.load.stream_path, clients=opts.load.stream_clients
            ),
            lost=lost,
            unverified=unverified,
            pods=pods,
            events=self.event_log.events(),
            pinning=_pinning(service, load, pods),
            service_stats={
                "new_connections_per_pod": dict(service.connections),
                "refused_for_clients": len(service.refused_ports),
                "l7_upstream_failures": dict(service.upstream_failures),
                **({"nginx": service.failures()} if isinstance(service, NginxService) else {}),
            },
            duration_seconds=self.event_log.now(),
        )


def _make_service(
    opts: DrillOptions, event_log: EventLog, groups: ProcessGroups, rng: random.Random
) -> Service:
    """The Service in front of the pods, its periods time-scaled (not yet started)."""
    hc = opts.health_check
    return make_service(
        opts.service,
        event_log,
        groups=groups,
        work_dir=opts.work_dir,
        propagation_seconds=(
            opts.scaled(opts.propagation_seconds[0]),
            opts.scaled(opts.propagation_seconds[1]),
        ),
        health_check=HealthCheck(
            path=hc.path,
            interval=opts.scaled(hc.interval),
            timeout=hc.timeout,  # a latency bound: not time-scaled
            healthy_threshold=hc.healthy_threshold,
            unhealthy_threshold=hc.unhealthy_threshold,
        ),
        rng=rng,
        upstream_idle_seconds=opts.upstream_idle_seconds,
    )


def _pinning(service: Service, load: Load, pods: list[PodProcess]) -> dict[str, Any]:
    """Keep-alive connections still reused after a pod's drain was visible (pinning.py)."""
    # Where a keep-alive connection can stay pinned to a pod: the client's own behind an
    # L4 Service, the proxy's upstream one behind l7; HAProxy's are not visible.
    measured_at, uses = {
        "kube-proxy": ("client", load.uses),
        "health-check": ("client", load.uses),
        "l7": ("l7-upstream", service.upstream_uses),
    }.get(service.mode, (None, []))
    return keepalive_pinning(
        uses,
        {p.name: p.sigterm_at for p in pods if p.sigterm_at is not None},
        {p.name: p.drain_seen_at for p in pods if p.drain_seen_at is not None},
        measured_at=measured_at,
    )


def _admit_timeout(opts: DrillOptions) -> float:
    """Deadline for the first pods to reach the balancer: its slowest path plus 10 s."""
    hc = opts.health_check
    slowest = opts.propagation_seconds[1]
    if opts.service == "health-check":
        slowest = (hc.interval + hc.timeout) * (hc.healthy_threshold + 1)
    return opts.scaled(slowest) + 10.0


def _modelled_delay(seconds: float) -> None:
    """A period of the model (steady state, observation tail), never a synchronisation."""
    if seconds > 0:
        time.sleep(seconds)
