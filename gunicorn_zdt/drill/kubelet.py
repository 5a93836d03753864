"""The kubelet's part, per pod: start, probes, endpoint updates, and termination.

Probes run as the kubelet runs them: a fresh connection per probe, every
``periodSeconds`` after ``initialDelaySeconds``, ``timeoutSeconds`` each, state changing
after ``successThreshold`` / ``failureThreshold`` results in a row; readiness and
liveness wait for the startup probe. Readiness keeps running during termination (its
first failure after deletion is recorded: that is when the pod said 503), liveness
and startup do not. Deletion is Kubernetes' order: endpoint removal starts
propagating and, at the same moment, preStop runs; then SIGTERM to the main process;
SIGKILL to the whole group when terminationGracePeriodSeconds (counted from
deletion, preStop included) runs out.

Every wait here is either a modelled period (probe period, preStop sleep) or a wait
for a process to exit bounded by a deadline.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable

from .balancer import Service
from .events import EventLog
from .manifest import PRESTOP_OVERRUN_SECONDS, DeploymentSpec, Probe
from .pods import PodProcess, ProcessGroups


class Kubelet:
    """Runs one pod; ``changed`` is called whenever readiness or existence changes."""

    def __init__(
        self,
        pod: PodProcess,
        spec: DeploymentSpec,
        *,
        scale: float,
        groups: ProcessGroups,
        event_log: EventLog,
        service: Service,
        changed: Callable[[], None],
    ) -> None:
        self.pod = pod
        self.spec = spec
        self.scale = scale
        self.groups = groups
        self.event_log = event_log
        self.service = service
        self.changed = changed
        self.failed: str | None = None  # set when the pod died before it was ever ready
        self._started = threading.Event()  # startup probe passed
        self._exited = threading.Event()
        self._stop_probes = threading.Event()
        self._restart_requested = False
        self._ever_ready = False
        self._lock = threading.Lock()

    def s(self, seconds: float) -> float:
        return seconds * self.scale

    # -- start ----------------------------------------------------------------------------
    def start(self) -> None:
        pod = self.pod
        pod.created_at = self.event_log.now()
        pod.start(self.groups)
        self.event_log.record(pod.name, "created", f"revision {pod.revision}, pid {pod.pid}")
        self.service.pod_created(pod.name, pod.port)
        self._spawn(self._watch, "watch")
        self._spawn(self._startup_loop, "startup")
        self._spawn(self._readiness_loop, "readiness")
        self._spawn(self._liveness_loop, "liveness")

    def _spawn(self, target: Callable[[], None], what: str) -> None:
        threading.Thread(target=target, name=f"{self.pod.name}-{what}", daemon=True).start()

    def _watch(self) -> None:
        """Wait for the main process; restart it after a crash or a liveness kill."""
        pod = self.pod
        while True:
            assert pod.proc is not None
            code = pod.proc.wait()
            pod.reap(self.groups)
            with self._lock:
                restart = not pod.terminating and (self._restart_requested or self._ever_ready)
                self._restart_requested = False
            if restart:
                pod.restarts += 1
                self.event_log.record(pod.name, "restarted", f"exit code {code}")
                self._set_ready(False)
                pod.start(self.groups)
                continue
            pod.exited_at = self.event_log.now()
            pod.exit_code = code
            detail = f"exit code {code}" + (" (SIGKILL)" if pod.sigkilled else "")
            self.event_log.record(pod.name, "exited", detail)
            if not pod.terminating:
                self.failed = f"exited with code {code} before it was ever ready"
            self._stop_probes.set()
            self._started.set()
            self._exited.set()
            self._set_ready(False)
            self.changed()
            return

    # -- probes -----------------------------------------------------------------------------
    def _probe(self, probe: Probe) -> tuple[bool, int | None]:
        """(passed, HTTP status); the status is None for tcpSocket and for a connection error."""
        # Not time-scaled: a timeout is about the app's latency, which a shorter rehearsal
        # does not shrink.
        timeout = probe.timeout_seconds
        port = self.pod.probe_ports.get(probe.kind, self.pod.port)
        try:
            if probe.handler == "tcpSocket":
                with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                    return True, None
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                conn.request("GET", probe.path or "/", headers={"User-Agent": "kube-probe/drill"})
                status = conn.getresponse().status
                return 200 <= status < 400, status
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            return False, None

    def _loop(self, probe: Probe, on_result: Callable[[bool, int | None], bool]) -> None:
        """Probe every period until ``on_result`` returns False or the pod is gone."""
        if self._stop_probes.wait(self.s(probe.initial_delay_seconds)):
            return
        next_at = time.monotonic()
        while not self._stop_probes.is_set():
            if not on_result(*self._probe(probe)):
                return
            next_at += self.s(probe.period_seconds)
            self._stop_probes.wait(max(0.0, next_at - time.monotonic()))  # the probe period

    def _startup_loop(self) -> None:
        probe = self.spec.startup
        if probe is None:
            self._started.set()
            return
        fails = 0
        # Booting takes real time, like a request: the period is scaled (a pod that is up is
        # seen soon) but the window, period x failureThreshold, keeps its manifest length.
        allowed = math.ceil(probe.failure_threshold / min(self.scale, 1.0))

        def result(ok: bool, _status: int | None) -> bool:
            nonlocal fails
            if ok:
                self.event_log.record(self.pod.name, "started")
                self._started.set()
                return False
            fails += 1
            if fails >= allowed and not self.pod.terminating:
                self.event_log.record(self.pod.name, "startup-probe-failed")
                fails = 0
                self._kill_for_restart()
            return True

        self._loop(probe, result)

    def _after_startup(self) -> bool:
        """Wait for the startup probe (or the pod's end); True when probing goes on."""
        self._started.wait()  # set by the startup probe, or when the pod is gone
        return not self._stop_probes.is_set()

    def _readiness_loop(self) -> None:
        probe = self.spec.readiness
        if not self._after_startup():
            return
        if probe is None:
            self._set_ready(True)
            return
        passes = fails = 0

        def result(ok: bool, status: int | None) -> bool:
            nonlocal passes, fails
            pod = self.pod
            if ok:
                passes, fails = passes + 1, 0
                if not pod.ready and passes >= probe.success_threshold and not pod.terminating:
                    self._set_ready(True)
            else:
                passes, fails = 0, fails + 1
                if pod.terminating and pod.readiness_failed_at is None:
                    pod.readiness_failed_at = self.event_log.now()
                    pod.readiness_failing_status = status
                    self.event_log.record(pod.name, "readiness-failing")
                if status == 503 and pod.sigterm_at is not None and pod.drain_seen_at is None:
                    # After SIGTERM a 503 is the drain's flip (as readiness_failing_status):
                    # from now on every request the pod starts must get Connection: close,
                    # what pinning.py counts on. A refusal or a timeout shows no flip.
                    pod.drain_seen_at = self.event_log.now()
                if pod.ready and fails >= probe.failure_threshold:
                    self._set_ready(False)
            return True

        self._loop(probe, result)

    def _liveness_loop(self) -> None:
        probe = self.spec.liveness
        if probe is None or not self._after_startup():
            return
        fails = 0

        def result(ok: bool, _status: int | None) -> bool:
            nonlocal fails
            if self.pod.terminating:
                return False  # liveness does not restart a terminating pod
            fails = 0 if ok else fails + 1
            if fails >= probe.failure_threshold:
                self.event_log.record(self.pod.name, "liveness-failed")
                fails = 0
                self._kill_for_restart()
            return True

        self._loop(probe, result)

    def _kill_for_restart(self) -> None:
        with self._lock:
            self._restart_requested = True
        self._set_ready(False)
        proc = self.pod.proc
        self.pod.signal_main(signal.SIGTERM)

        def kill_at_deadline() -> None:
            assert proc is not None
            try:
                proc.wait(timeout=self.s(self.spec.grace_period_seconds))
            except subprocess.TimeoutExpired:
                self.groups.kill_group(proc.pid)

        self._spawn(kill_at_deadline, "restart-kill")

    def _set_ready(self, ready: bool) -> None:
        pod = self.pod
        with self._lock:
            if pod.ready == ready:
                return
            pod.ready = ready
            pod.ready_since = self.event_log.now() if ready else None
            if ready:
                self._ever_ready = True
        self.event_log.record(pod.name, "ready" if ready else "not-ready")
        if not pod.terminating:
            if ready:
                self.service.pod_ready(pod.name, pod.port)
            else:
                self.service.pod_not_ready(pod.name, pod.port)
        self.changed()

    def available(self, now: float) -> bool:
        """Ready for minReadySeconds and not terminating (the Deployment's "available")."""
        pod = self.pod
        return (
            pod.ready
            and not pod.terminating
            and pod.ready_since is not None
            and now - pod.ready_since >= self.s(self.spec.min_ready_seconds)
        )

    # -- deletion ---------------------------------------------------------------------------
    def delete(self) -> None:
        """Start the pod's termination in the background (returns at once)."""
        pod = self.pod
        with self._lock:
            if pod.terminating:
                return
            pod.terminating = True
        pod.deleted_at = self.event_log.now()
        self.event_log.record(pod.name, "deleted")
        self.service.pod_not_ready(pod.name, pod.port)  # EndpointSlice: ready=false
        self.changed()
        self._spawn(self._terminate, "terminate")

    def _terminate(self) -> None:
        pod = self.pod
        start = time.monotonic()
        deadline = start + self.s(self.spec.grace_period_seconds)
        prestop = self.spec.prestop
        if not prestop.empty and not self._exited.is_set():
            self.event_log.record(pod.name, "prestop", prestop.describe())
            self._run_prestop(deadline)
            if time.monotonic() >= deadline:  # the kubelet grants 2 s more after an overrun
                deadline = time.monotonic() + self.s(PRESTOP_OVERRUN_SECONDS)
        if pod.signal_main(signal.SIGTERM):
            pod.sigterm_at = self.event_log.now()
            self.event_log.record(pod.name, "sigterm")
        if not self._exited.wait(max(0.0, deadline - time.monotonic())):
            pod.sigkilled = True
            self.event_log.record(pod.name, "sigkill", "terminationGracePeriodSeconds ran out")
            if pod.proc is not None:
                self.groups.kill_group(pod.proc.pid)
            self._exited.wait(10)

    def _run_prestop(self, deadline: float) -> None:
        prestop = self.spec.prestop
        remaining = max(0.0, deadline - time.monotonic())
        if prestop.sleeps:
            # The modelled preStop sleep; it ends early only if the container died.
            self._exited.wait(min(self.s(prestop.seconds), remaining))
        elif prestop.handler == "httpGet":
            conn = http.client.HTTPConnection("127.0.0.1", self.pod.port, timeout=remaining)
            try:
                conn.request("GET", prestop.path or "/")
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
        elif prestop.command is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(
                    list(prestop.command),
                    cwd=self.pod.cwd,
                    env=self.pod.env,
                    timeout=remaining,
                    check=False,
                    capture_output=True,
                )

    def wait_exited(self, timeout: float) -> bool:
        return self._exited.wait(timeout)

    def stop_now(self) -> None:
        """Teardown at the end of the rehearsal (not a modelled deletion)."""
        with self._lock:
            self.pod.terminating = True
        self._stop_probes.set()
        self._started.set()
        self.pod.signal_main(signal.SIGTERM)
