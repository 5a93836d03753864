"""The one runtime object of a Gunicorn master: shared memory, worker slots, probe listener.

``install()`` creates it in the config module; the master and every worker it forks (and
a preloaded app) find it with :func:`current`. It replaces what used to be three
process-wide singletons, so there is one owner of each resource:

* ``state``: the shared memory (:mod:`gunicorn_zdt.runtime.state`), made before any fork;
* the slot table: which live worker writes which slot (master side);
* ``listener``: the probe listener's supervisor (:mod:`gunicorn_zdt.runtime.probe_supervisor`);
* the readiness publisher of each worker: one thread that runs the checks of every
  registered app (the Flask extension registers them) and publishes one verdict in the
  worker's slot, where every worker's views and the probe listener read it.

A SIGHUP re-runs the config module, which calls ``install()`` again: the same runtime is
returned, so slots and the listener survive a reload. Stdlib only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..core.readiness import Outcome
from .probe_supervisor import ListenerProcess
from .state import SLOT_COUNT, Phase, SharedState

__all__ = ["Runtime", "create", "current", "pod_state"]

log = logging.getLogger("gunicorn_zdt.runtime")

#: Runs an app's checks now: (started, outcome by check name). Called by the publisher.
VerdictSource = Callable[[], tuple[bool, dict[str, Outcome]]]
_REASON_CHARS = 120  # a slot holds about 1 KiB of verdict: keep each reason short


class Runtime:
    def __init__(self) -> None:
        self.state = SharedState()
        self.listener = ListenerProcess()
        self.worker_slot: int | None = None  # set in each worker by post_fork
        self.evidence_lock = threading.Lock()  # serialises a worker's evidence writes
        self.serving_entries: dict[int, int] = {}  # worker: id(req) -> its serving entry
        self.termination: Any = None  # master: the Termination, from when_ready on
        self._slot_owners: dict[int, Any] = {}  # master: slot -> Gunicorn worker object
        self._sources: list[tuple[VerdictSource, float]] = []
        self._wake = threading.Event()
        self._publishing = False

    # -- master --------------------------------------------------------------------

    def assign_slot(self, worker: Any, live_workers: list[Any]) -> int | None:
        """Master, pre_fork: a slot no live worker holds (None when all are taken)."""
        live = {id(w) for w in live_workers}
        for index in range(SLOT_COUNT):
            if id(self._slot_owners.get(index)) not in live:
                self._slot_owners[index] = worker
                self.state.reset_slot(index)
                return index
        return None

    # -- worker -------------------------------------------------------------------------

    def become_worker(self, slot: int) -> None:
        """Worker, just forked (post_fork): this process writes ``slot`` from now on."""
        self.worker_slot = slot
        self.evidence_lock = threading.Lock()  # a fresh one: the master's may have been held
        self.state.claim_slot(slot)

    # -- worker: the readiness publisher ----------------------------------------------

    def add_verdict_source(self, source: VerdictSource, period: float) -> None:
        """Publish ``source()`` every ``period`` s from each worker (any process may call)."""
        self._sources.append((source, period))
        self._wake.set()

    def wake_publisher(self) -> None:
        """Publish now (e.g. after ``mark_started()``), not at the end of the period."""
        self._wake.set()

    def start_publisher(self) -> None:
        """Worker, app loaded (post_worker_init): one publisher thread for every app."""
        if self.worker_slot is None or self._publishing:
            return
        self._publishing = True
        threading.Thread(target=self._publish_forever, name="zdt-publish", daemon=True).start()

    def _publish_forever(self) -> None:
        slot = self.worker_slot
        assert slot is not None
        while True:
            self._wake.clear()
            sources = list(self._sources)
            period = min((p for _, p in sources), default=1.0)
            try:
                started, outcomes = _merge([source() for source, _ in sources])
                if started:
                    self.state.mark_started()  # pod-wide and sticky, as the kubelet sees it
                detail = {
                    "started": started,
                    "checks": {  # [ok, seconds, reason, when its run began]
                        n: [
                            o.ok,
                            round(o.seconds or 0.0, 4),
                            (o.reason or "")[:_REASON_CHARS],
                            o.started,
                        ]
                        for n, o in outcomes.items()
                    },
                }
                # Valid for two periods plus the slowest run: a hung worker's verdict expires.
                self.state.publish_verdict(
                    slot, all(o.ok for o in outcomes.values()), detail, 2 * period + 2.0
                )
            except Exception:  # keep publishing; a stale verdict expires and reads as 503
                log.exception("gunicorn-zdt: publishing readiness failed")
            self._wake.wait(period)


def _merge(
    verdicts: list[tuple[bool, dict[str, Outcome]]],
) -> tuple[bool, dict[str, Outcome]]:
    """Several apps in one worker: started when any started; a check fails if it fails in any."""
    started = any(s for s, _ in verdicts) if verdicts else True
    merged: dict[str, Outcome] = {}
    for _, outcomes in verdicts:
        for name, outcome in outcomes.items():
            if name not in merged or not outcome.ok:
                merged[name] = outcome
    return started, merged


_current: Runtime | None = None


def create() -> Runtime:
    """This master's runtime (made once; a SIGHUP re-read of the config reuses it)."""
    global _current
    if _current is None:
        _current = Runtime()
    return _current


def current() -> Runtime | None:
    """The runtime inherited from the master, or None when ``install()`` never ran."""
    return _current


def pod_state() -> SharedState | None:
    """The shared state once our hooks ran in a master; None without them.

    ``install()`` alone (a config merely imported) leaves the phase at STARTING: that
    state belongs to no running pod.
    """
    rt = _current
    if rt is None or rt.state.phase == Phase.STARTING:
        return None
    return rt.state
