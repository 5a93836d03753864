"""The Deployment controller's RollingUpdate, reduced to what decides availability.

Per revision: create new pods while (old + new, not terminating) < replicas + maxSurge;
delete old pods while the available ones (ready for minReadySeconds) stay >=
replicas - maxUnavailable, unavailable old pods first. Terminating pods count for
neither side, as in Kubernetes. The controller sleeps on a condition that every
kubelet signals (the "watch"), with a timeout only when a pod will become available
by the passage of minReadySeconds, and gives up at the progress deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .events import EventLog
from .kubelet import Kubelet
from .manifest import DeploymentSpec


class RolloutError(RuntimeError):
    """The rollout could not progress; the message says which pod and why."""


class Deployment:
    def __init__(
        self,
        spec: DeploymentSpec,
        *,
        scale: float,
        event_log: EventLog,
        make_kubelet: Callable[[int, int], Kubelet],
    ) -> None:
        self.spec = spec
        self.scale = scale
        self.event_log = event_log
        self.make_kubelet = make_kubelet  # (revision, index) -> a started Kubelet
        self.kubelets: list[Kubelet] = []
        self.cond = threading.Condition()
        self.revision = 0
        self._next_index = 0

    def changed(self) -> None:
        """Called by kubelets on any pod change."""
        with self.cond:
            self.cond.notify_all()

    def _create(self, revision: int) -> Kubelet:
        self._next_index += 1
        kubelet = self.make_kubelet(revision, self._next_index)
        self.kubelets.append(kubelet)
        return kubelet

    def _live(self) -> list[Kubelet]:
        return [k for k in self.kubelets if not k.pod.terminating]

    def _check_failed(self) -> None:
        for k in self.kubelets:
            if k.failed:
                raise RolloutError(
                    f"pod {k.pod.name} {k.failed}; its log ends with:\n{k.pod.log_tail()}"
                )

    def rollout(self, revision: int) -> None:
        """Replace every pod by one of ``revision``; returns when all new pods are available
        (for the first revision: when ``replicas`` pods are available)."""
        self.revision = revision
        replicas = self.spec.replicas
        surge, unavailable = self.spec.surge_and_unavailable()
        min_available = replicas - unavailable
        deadline = time.monotonic() + self.spec.progress_deadline_seconds * self.scale
        self.event_log.record("", "rollout-started", f"revision {revision}")
        with self.cond:
            while True:
                self._check_failed()
                now = self.event_log.now()
                live = self._live()
                new = [k for k in live if k.pod.revision == revision]
                old = [k for k in live if k.pod.revision != revision]
                new_available = [k for k in new if k.available(now)]
                if len(new_available) >= replicas and not old:
                    break
                # Scale the new ReplicaSet up within maxSurge.
                total = len(live)
                while len(new) < replicas and total < replicas + surge:
                    new.append(self._create(revision))
                    total += 1
                # Scale old ReplicaSets down, keeping minAvailable.
                available = sum(k.available(now) for k in live)
                for k in sorted(old, key=lambda k: k.available(now)):
                    if not k.available(now):
                        k.delete()
                    elif available - 1 >= min_available:
                        k.delete()
                        available -= 1
                if time.monotonic() >= deadline:
                    raise RolloutError(
                        f"revision {revision} did not become available within "
                        f"progressDeadlineSeconds {self.spec.progress_deadline_seconds:g} "
                        f"(x time scale {self.scale:g}); pods: "
                        + ", ".join(f"{k.pod.name} ready={k.pod.ready}" for k in live)
                    )
                self.cond.wait(self._wake_after(now, deadline))
        self.event_log.record("", "rollout-complete", f"revision {revision}")

    def _wake_after(self, now: float, deadline: float) -> float:
        """Seconds until the next pod turns available by minReadySeconds alone, or the
        progress deadline; pod changes wake us earlier through ``changed``."""
        wait = max(0.0, deadline - time.monotonic())
        min_ready = self.spec.min_ready_seconds * self.scale
        for k in self._live():
            if k.pod.ready and k.pod.ready_since is not None:
                due = k.pod.ready_since + min_ready - now
                if due > 0:
                    wait = min(wait, due + 0.001)
        return wait

    def wait_terminated(self, timeout: float) -> bool:
        """Wait until every deleted pod's process exited."""
        deadline = time.monotonic() + timeout
        for k in self.kubelets:
            if k.pod.terminating and not k.wait_exited(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def ready_port(self) -> int | None:
        """A ready pod's port; else a running one's (busy pods fail readiness on the app's
        port, yet answer a read in the end); None when no pod runs."""
        live = list(self._live())
        for k in live:
            if k.pod.ready:
                return k.pod.port
        return live[0].pod.port if live else None

    def teardown(self, timeout: float = 5.0) -> None:
        """End of rehearsal: SIGTERM every pod still running, then SIGKILL the groups."""
        for k in self.kubelets:
            k.stop_now()
        deadline = time.monotonic() + timeout
        for k in self.kubelets:
            k.wait_exited(max(0.0, deadline - time.monotonic()))
