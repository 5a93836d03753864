"""The master's side of a termination: drain on evidence, refuse late connections, report.

SIGTERM flips the pod to DRAINING and arms a timer; each tick (every 0.1 s once the
minimum has passed) asks :mod:`gunicorn_zdt.core.drain` whether the evidence the workers
recorded says the drain may end. When it may, the tick re-sends SIGTERM to the master,
whose handler hands over to Gunicorn's own graceful stop. The master's loop is never
blocked. When the graceful stop begins, new SYNs are dropped while the workers serve what
the kernel already queued (at least 0.1 s, a round trip), then the listening sockets are
shut down for every process that holds them, so a late connection is refused (safe to
retry on another pod) instead of being queued and reset when the last worker exits. One second
before ``graceful_timeout`` expires, each worker still serving a request is named in the
log and asked for its stacks (:mod:`gunicorn_zdt.runtime.stacks`); a worker that Gunicorn's
``timeout`` kills is treated the same way. At exit the master logs one report line (and,
with ``ZDT_REPORT_JSON``, one JSON object), then one line per request that was cut.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any

from ..core import budget, drain
from ..core.plan import DrainPlan
from ..core.report import JSON_MARK, render_text
from .backlog import drop_new_connections, listen_backlog
from .stacks import DUMP_SIGNAL
from .state import Phase, Serving, SharedState

__all__ = ["Cut", "Termination"]

_TICK_SECONDS = 0.1
_DUMP_LEAD_SECONDS = 1.0  # ask for stacks this long before graceful_timeout (at most half)
_FLUSH_SHARE = 0.5  # the queued connections may use at most this share of graceful_timeout
# How long new SYNs are dropped before the workers are told to stop, even with an empty
# queue: a handshake the kernel answered just before the filter completes into the queue
# (one round trip; 100 ms covers a pod network) and is served, not reset when the
# listener shuts. A stop tick: the hold ends at the second tick after it at the latest.
_SETTLE_SECONDS = _TICK_SECONDS


@dataclass(frozen=True)
class Cut:
    """A request that was still running when its worker was killed."""

    method: str
    path: str
    age_seconds: float
    pid: int
    by: str  # "graceful_timeout" or "timeout"

    def line(self) -> str:
        return f"{self.method} {self.path} after {self.age_seconds:.2f} s (worker {self.pid})"


class Termination:
    """The master's termination sequence, one per master, created in ``when_ready``.

    Read top to bottom: :meth:`take_over` puts the transitions in Gunicorn's hands (five
    methods Gunicorn looks up on the arbiter when it calls them); each transition says
    what a moment of Gunicorn's stop means for the drain; the actions below them do it.
    """

    def __init__(
        self, server: Any, plan: DrainPlan, shared: SharedState, listener: Any = None
    ) -> None:
        self.server = server
        self.shared = shared
        self.listener = listener  # the probe listener's supervisor, checked every loop turn
        self.window = plan.window
        self.report_json = plan.report_json
        self.reason: str | None = None  # why the drain ended, once it did
        self.in_flight_at_stop = 0
        self.stacks_asked = False  # once per termination, before graceful_timeout
        self.held_sigterm = False  # the workers' SIGTERM waits for the accept queue
        self.backlog_checked = False
        self.syns_dropped_since = 0.0  # when the hold began dropping new SYNs
        self.cut: list[Cut] = []  # killed while serving, since SIGTERM
        self.untracked_cut = 0  # cut requests the slots had no room to name
        # Our own handle on each listening socket: Gunicorn closes its copies at the stop,
        # the workers keep theirs; shutdown() through ours acts on the socket itself.
        self.listeners = [
            socket.socket(fileno=os.dup(lst.sock.fileno())) for lst in server.LISTENERS
        ]

    # -- the transitions: what each moment of Gunicorn's stop means -------------------

    def take_over(self) -> None:
        """when_ready: Gunicorn calls our transitions, each of which calls Gunicorn's own."""
        server = self.server
        self._murder_workers = server.murder_workers
        self._kill_workers = server.kill_workers
        self._kill_worker = server.kill_worker
        self._reap_workers = server.reap_workers
        server.handle_term = self.on_sigterm
        server.murder_workers = self.on_loop_turn
        server.kill_workers = self.on_kill_workers
        server.kill_worker = self.on_kill_worker
        server.reap_workers = self.on_reap

    def on_sigterm(self) -> None:
        """SIGTERM in the master's loop: the first starts the drain; one while draining ends
        it (ours from the tick, or the user's second signal)."""
        if self.shared.phase == Phase.DRAINING:
            self._hand_over(self.end_reason())
        if self.window.maximum_seconds <= 0:
            self._hand_over("drain off: its maximum is 0")
        self.begin()
        self.server.log.info(
            "gunicorn-zdt: SIGTERM: draining (readiness 503, still serving, keep-alive closed per "
            "response) for at least %s s, until no new connection for %s s, at most %s s; then "
            "graceful stop with graceful_timeout %s s",
            budget.fmt(self.window.minimum_seconds),
            budget.fmt(self.window.quiet_seconds),
            budget.fmt(self.window.maximum_seconds),
            budget.fmt(self.server.cfg.graceful_timeout),
        )

    def on_loop_turn(self) -> None:
        """Each turn of the master's loop (at least once a second): the master's heartbeat,
        Gunicorn's own timeouts, the probe listener, and the drain's backstop for the tick."""
        self.shared.beat_master()
        self._murder_workers()
        if self.listener is not None:
            self.listener.supervise(self.server.log)
        if self.shared.phase == Phase.DRAINING and self.reason is None:
            self.reason = self.due()
        if self.shared.phase == Phase.DRAINING and self.reason is not None:
            self._hand_over(self.reason)

    def on_kill_workers(self, sig: int) -> None:
        """Gunicorn signals every worker: at the stop, hold SIGTERM for the backlog, then
        refuse late connections; at ``graceful_timeout``, name what SIGKILL cuts."""
        stopping = self.shared.phase == Phase.STOPPING
        if sig == signal.SIGKILL and stopping:
            self.workers_killed()
        if sig == signal.SIGTERM and stopping and self.hold_workers_for_backlog():
            return  # the stop's tick sends it once the queued connections are served
        if sig in (signal.SIGQUIT, signal.SIGKILL) and self.held_sigterm:
            self.held_sigterm = False  # a quick stop or SIGKILL overrides the hold
            self.refuse_new_connections()
        self._kill_workers(sig)
        if sig == signal.SIGTERM and stopping:
            self.refuse_new_connections()  # every worker was told to stop: refuse late SYNs

    def on_kill_worker(self, pid: int, sig: int) -> None:
        """Gunicorn signals one worker; SIGABRT comes only from its ``timeout``."""
        if sig == signal.SIGABRT:
            self.worker_timed_out(pid)
        self._kill_worker(pid, sig)

    def on_reap(self) -> None:
        """Gunicorn reaps exited workers (its stop loop calls it every 0.1 s from 24.0 on)."""
        self._reap_workers()
        self.before_graceful_timeout()

    def _hand_over(self, reason: str) -> None:
        self.stop_begins(reason)
        self.server.log.info(
            "gunicorn-zdt: drain ended after %.2f s (%s); graceful stop begins: listeners "
            "closed, workers have graceful_timeout %s s to finish in-flight requests",
            time.monotonic() - self.shared.drain_started,
            reason,
            budget.fmt(self.server.cfg.graceful_timeout),
        )
        raise StopIteration  # Gunicorn's main loop answers with halt() -> stop(graceful=True)

    # -- the drain ----------------------------------------------------------------------

    def begin(self) -> None:
        """SIGTERM: flip to DRAINING, arm the ticks (first one at the minimum)."""
        self.shared.begin_drain()
        signal.signal(signal.SIGALRM, self._tick)
        signal.setitimer(signal.ITIMER_REAL, max(self.window.minimum_seconds, 0.001), _TICK_SECONDS)

    def due(self) -> str | None:
        """Why the drain may end now, or None (cheap: shared memory and one getsockopt)."""
        evidence = self.shared.evidence()
        backlog = self._queued()
        return self.window.end(
            self.shared.drain_started, time.monotonic(), evidence.last_arrival, backlog
        )

    def _tick(self, signum: int, frame: Any) -> None:
        """SIGALRM in the master: when the evidence says so, wake the loop.

        With SIGCHLD, not SIGTERM: Gunicorn would log a second "Handling signal: term",
        which reads like the second SIGTERM that cuts a drain short. SIGCHLD only makes
        it reap (logged at debug level); the loop's next ``murder_workers`` hands over.
        """
        if self.reason is None:
            self.reason = self.due()
        if self.reason is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            os.kill(os.getpid(), signal.SIGCHLD)

    def end_reason(self) -> str:
        """Master loop, SIGTERM while draining: ours (the drain is over) or a second signal."""
        return self.reason or drain.SIGNAL

    def stop_begins(self, reason: str) -> None:
        """The drain is over: from now on a 0.1 s timer watches the graceful stop (Gunicorn's
        own stop loop calls none of our methods before 24.0)."""
        self.reason = reason
        self.in_flight_at_stop = self.shared.evidence().in_flight
        self.shared.begin_stop()
        signal.signal(signal.SIGALRM, self._stop_tick)
        signal.setitimer(signal.ITIMER_REAL, _TICK_SECONDS, _TICK_SECONDS)

    def _stop_tick(self, signum: int, frame: Any) -> None:
        """SIGALRM in the master during the graceful stop: release held workers, name what
        is about to be cut."""
        if self.release_workers():
            self.on_kill_workers(signal.SIGTERM)  # the queued connections were served
        self.before_graceful_timeout()

    # -- late connections ---------------------------------------------------------------

    def _queued(self) -> int:
        """Connections waiting in the accept queues of the pod's listening sockets."""
        return sum(listen_backlog(s) for s in self.listeners)

    def hold_workers_for_backlog(self) -> bool:
        """Gunicorn is about to tell the workers to stop: True to hold that back.

        A connection the kernel already queued (every worker busy) would be reset when the
        last worker exits (gunicorn #3397), whatever the drain's length; so would one whose
        handshake the kernel answered a moment before the listeners shut (a proxy still
        routing here has sent its request on it by then, and does not retry it). So new
        SYNs are dropped first (clients retry, and are refused once the listeners shut) and
        the workers keep accepting; the stop's tick tells them to stop once the queue is
        empty and a round trip has passed (:data:`_SETTLE_SECONDS`), or when half of
        ``graceful_timeout`` is spent (:meth:`release_workers`).
        """
        reexec = bool(getattr(self.server, "reexec_pid", 0))  # the new master serves them
        if self.backlog_checked or reexec or not self.listeners:
            return False
        self.backlog_checked = True  # once: after the hold, the workers are told for good
        if not all(drop_new_connections(s) for s in self.listeners):
            return False
        self.held_sigterm = True
        self.syns_dropped_since = time.monotonic()
        queued = self._queued()
        if queued:
            self.server.log.info(
                "gunicorn-zdt: %s connection(s) wait in the listen backlog: new connections "
                "are dropped (clients retry), the workers serve the queued ones, then stop",
                queued,
            )
        return True

    def release_workers(self) -> bool:
        """Each pass of the graceful-stop loop while held: True once the workers may stop."""
        if not self.held_sigterm:
            return False
        limit = float(self.server.cfg.graceful_timeout) * _FLUSH_SHARE
        queued = self._queued()
        now = time.monotonic()
        settling = now < self.syns_dropped_since + _SETTLE_SECONDS
        if (queued or settling) and now < self.shared.stop_started + limit:
            return False
        self.held_sigterm = False
        if queued:
            self.server.log.warning(
                "gunicorn-zdt: %s queued connection(s) not served within %.1f s (half of "
                "graceful_timeout): the workers stop now and the kernel resets them",
                queued,
                limit,
            )
        return True

    def refuse_new_connections(self) -> None:
        """Right after Gunicorn told its workers to stop: no process accepts any more.

        Skipped after a USR2 re-exec: the new master serves on the same sockets.
        """
        if getattr(self.server, "reexec_pid", 0):
            return
        for sock in self.listeners:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
            sock.close()
        if self.listeners:
            self.server.log.info("gunicorn-zdt: listeners shut: new connections are refused")
        self.listeners = []

    # -- requests about to be cut ---------------------------------------------------

    def before_graceful_timeout(self) -> None:
        """Master, each pass of Gunicorn's graceful-stop loop (every 0.1 s): shortly before
        ``graceful_timeout`` expires, name each busy worker's requests and ask for stacks."""
        if self.stacks_asked or self.shared.phase != Phase.STOPPING:
            return
        limit = float(self.server.cfg.graceful_timeout)
        lead = min(_DUMP_LEAD_SECONDS, limit / 2)
        if time.monotonic() < self.shared.stop_started + limit - lead:
            return
        self.stacks_asked = True
        for pid, worker in list(self.server.WORKERS.items()):
            self._name_and_dump(
                pid, worker, f"graceful_timeout {budget.fmt(limit)} s expires in {lead:.1f} s"
            )

    def worker_timed_out(self, pid: int) -> None:
        """Master, just before Gunicorn's ``timeout`` kills a worker (SIGABRT)."""
        worker = self.server.WORKERS.get(pid)
        requests, untracked = self._name_and_dump(
            pid, worker, f"timeout {budget.fmt(float(self.server.cfg.timeout))} s: killed"
        )
        if self.shared.draining:  # the report covers this termination only
            now = time.monotonic()
            self.cut += [_cut(r, now, pid, "timeout") for r in requests]
            self.untracked_cut += untracked

    def workers_killed(self) -> None:
        """Master, as Gunicorn SIGKILLs the workers left at ``graceful_timeout``."""
        now = time.monotonic()
        for pid, worker in list(self.server.WORKERS.items()):
            requests, untracked = self._serving(worker)
            self.cut += [_cut(r, now, pid, "graceful_timeout") for r in requests]
            self.untracked_cut += untracked

    def _serving(self, worker: Any) -> tuple[list[Serving], int]:
        index = getattr(worker, "zdt_slot", None)
        return ([], 0) if index is None else self.shared.serving(index)

    def _name_and_dump(self, pid: int, worker: Any, why: str) -> tuple[list[Serving], int]:
        requests, untracked = self._serving(worker)
        if not requests and not untracked:
            return requests, untracked
        now = time.monotonic()
        named = [f"{r.method} {r.path} for {now - r.started:.2f} s" for r in requests]
        if untracked:
            named.append(f"{untracked} more")
        index = getattr(worker, "zdt_slot", None)
        armed = index is not None and self.shared.dump_armed(index)
        self.server.log.warning(
            "gunicorn-zdt: %s: worker %s still serving %s; %s",
            why,
            pid,
            ", ".join(named),
            "its Python stacks follow" if armed else "no stack dump (handler not armed)",
        )
        if armed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, DUMP_SIGNAL)
        return requests, untracked

    # -- the report ---------------------------------------------------------------------

    def report(self) -> None:
        """Master, on_exit: one line on what this termination saw (and a warning if cut)."""
        # No tick after this: the interpreter's exit resets SIGALRM to its default, and a
        # tick then would kill the master (exit status -14 instead of 0).
        signal.setitimer(signal.ITIMER_REAL, 0)
        started = self.shared.drain_started
        if not started:
            return
        now = time.monotonic()
        evidence = self.shared.evidence()
        stop = self.shared.stop_started or now
        last = evidence.last_arrival - started if evidence.last_arrival else None
        fields: dict[str, Any] = {
            "drain_seconds": round(stop - started, 3),
            "drain_ended_by": self.reason or drain.SIGNAL,
            "arrived_while_draining": evidence.arrived_while_draining,
            "last_new_connection_after_sigterm_seconds": None if last is None else round(last, 3),
            "connections_closed_by_drain": evidence.closed_by_drain,
            "in_flight_at_graceful_stop": self.in_flight_at_stop,
            "requests_cut": evidence.in_flight,
            "cut": [dataclasses.asdict(c) for c in self.cut],  # method, path, age, pid, by
            "exit_after_sigterm_seconds": round(now - started, 3),
        }
        log = self.server.log
        log.info("gunicorn-zdt: termination report: %s", render_text(fields))  # core/report.py
        if self.report_json:
            log.info("%s%s", JSON_MARK, json.dumps(fields))
        if self.reason == drain.MAXIMUM and last is not None:
            needed = last + self.window.quiet_seconds
            log.warning(
                "gunicorn-zdt: the drain hit ZDT_DRAIN_MAX_SECONDS=%s with traffic still "
                "arriving (last new connection %.2f s after SIGTERM): raise it to at least %s "
                "(and terminationGracePeriodSeconds by the same amount), or add a preStop sleep",
                budget.fmt(self.window.maximum_seconds),
                last,
                budget.fmt(float(int(needed) + 1)),
            )
        if evidence.in_flight:
            log.warning(
                "gunicorn-zdt: %s request(s) were still running when graceful_timeout expired "
                "and were cut; raise graceful_timeout (and the grace period) above the "
                "longest request",
                evidence.in_flight,
            )
        for cut in self.cut:
            log.warning("gunicorn-zdt: cut at %s: %s", cut.by, cut.line())
        if self.untracked_cut:
            log.warning(
                "gunicorn-zdt: %s more request(s) cut, not named (a worker serves more than its "
                "slot names)",
                self.untracked_cut,
            )


def _cut(request: Serving, now: float, pid: int, by: str) -> Cut:
    return Cut(request.method, request.path, round(now - request.started, 3), pid, by)
