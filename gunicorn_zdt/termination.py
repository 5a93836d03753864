"""The master's side of a termination: drain on evidence, refuse late connections, report.

SIGTERM flips the pod to DRAINING and arms a timer; each tick (every 0.1 s once the
minimum has passed) asks :mod:`gunicorn_zdt.drain` whether the evidence the workers
recorded says the drain may end. When it may, the tick re-sends SIGTERM to the master,
whose handler hands over to Gunicorn's own graceful stop. The master's loop is never
blocked. When the graceful stop begins, the listening sockets are shut down for every
process that holds them, so a late connection is refused at once (safe to retry on
another pod) instead of being queued and reset when the last worker exits. At exit the
master logs one report line (and, with ``ZDT_REPORT_JSON``, one JSON object).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import time
from typing import Any

from . import budget, drain
from .plan import DrainPlan
from .state import SharedState

__all__ = ["Termination", "listen_backlog"]

_TICK_SECONDS = 0.1
# struct tcp_info: 8 one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked: on a
# listening socket Linux reports the accept queue's length in tcpi_unacked.
_TCPI_UNACKED = 24


def listen_backlog(sock: socket.socket) -> int:
    """Connections waiting in ``sock``'s accept queue (Linux TCP; 0 where unknown)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not hasattr(socket, "TCP_INFO"):
        return 0
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return 0
    return int(struct.unpack_from("<I", info, _TCPI_UNACKED)[0]) if len(info) >= 28 else 0


class Termination:
    """One per master; created in ``when_ready``."""

    def __init__(self, server: Any, plan: DrainPlan, shared: SharedState) -> None:
        self.server = server
        self.shared = shared
        self.window = drain.DrainWindow(
            plan.drain_seconds, plan.drain_quiet_seconds, plan.drain_cap_seconds
        )
        self.report_json = plan.report_json
        self.reason: str | None = None  # why the drain ended, once it did
        self.in_flight_at_stop = 0
        # Our own handle on each listening socket: Gunicorn closes its copies at the stop,
        # the workers keep theirs; shutdown() through ours acts on the socket itself.
        self.listeners = [
            socket.socket(fileno=os.dup(lst.sock.fileno())) for lst in server.LISTENERS
        ]

    # -- the drain ----------------------------------------------------------------------

    def begin(self) -> None:
        """SIGTERM: flip to DRAINING, arm the ticks (first one at the minimum)."""
        self.shared.begin_drain(self.window.minimum_seconds)
        signal.signal(signal.SIGALRM, self._tick)
        signal.setitimer(signal.ITIMER_REAL, max(self.window.minimum_seconds, 0.001), _TICK_SECONDS)

    def due(self) -> str | None:
        """Why the drain may end now, or None (cheap: shared memory and one getsockopt)."""
        evidence = self.shared.evidence()
        backlog = sum(listen_backlog(s) for s in self.listeners)
        return self.window.end(
            self.shared.drain_started, time.monotonic(), evidence.last_arrival, backlog
        )

    def _tick(self, signum: int, frame: Any) -> None:
        """SIGALRM in the master: when the evidence says so, wake the loop with SIGTERM."""
        if self.reason is None:
            self.reason = self.due()
        if self.reason is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            os.kill(os.getpid(), signal.SIGTERM)

    def end_reason(self) -> str:
        """Master loop, SIGTERM while draining: ours (the drain is over) or a second signal."""
        return self.reason or drain.SIGNAL

    def stop_begins(self, reason: str) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.reason = reason
        self.in_flight_at_stop = self.shared.evidence().in_flight
        self.shared.begin_stop()

    # -- late connections ---------------------------------------------------------------

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
        self.listeners = []

    # -- the report ---------------------------------------------------------------------

    def report(self) -> None:
        """Master, on_exit: one line on what this termination saw (and a warning if cut)."""
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
            "exit_after_sigterm_seconds": round(now - started, 3),
        }
        log = self.server.log
        log.info(
            "gunicorn-zdt: termination report: drain %s s (%s); %s request(s) arrived while "
            "draining, last new connection %s after SIGTERM; %s connection(s) closed by the "
            "drain; %s in flight when the graceful stop began, %s cut at graceful_timeout; "
            "exit %s s after SIGTERM",
            budget.fmt(fields["drain_seconds"]),
            fields["drain_ended_by"],
            fields["arrived_while_draining"],
            "none" if last is None else f"{last:.2f} s",
            fields["connections_closed_by_drain"],
            fields["in_flight_at_graceful_stop"],
            fields["requests_cut"],
            budget.fmt(fields["exit_after_sigterm_seconds"]),
        )
        if self.report_json:
            log.info("gunicorn-zdt: termination report json %s", json.dumps(fields))
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
