"""The drain state shared by the Gunicorn master and all its workers.

An anonymous shared ``mmap`` made in the master before any fork is inherited by every
worker, including ones spawned later (``max_requests``, crashes, SIGHUP reloads), with
or without ``preload_app``. The master writes it; workers only read it, so a flip on
SIGTERM is seen by every worker at once, with no IPC on the request path. A USR2
re-exec starts a new interpreter and gets a state of its own. Stdlib only.
"""

from __future__ import annotations

import enum
import mmap
import os
import struct
import time

_LAYOUT = struct.Struct("<i i d d")  # phase, master pid, drain start, drain deadline (monotonic)


class Phase(enum.IntEnum):
    STARTING = 0  # made by install(); when_ready has not run yet
    SERVING = 1
    DRAINING = 2  # SIGTERM seen: readiness 503, still serving, keep-alive closed per response
    STOPPING = 3  # Gunicorn's graceful stop runs: listeners closed


class SharedState:
    """A few numbers in shared memory. Writers: the master only."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED)
        self._write(Phase.STARTING, os.getpid(), 0.0, 0.0)

    def _read(self) -> tuple[int, int, float, float]:
        return _LAYOUT.unpack_from(self._map, 0)

    def _write(self, phase: int, pid: int, started: float, deadline: float) -> None:
        _LAYOUT.pack_into(self._map, 0, phase, pid, started, deadline)

    @property
    def phase(self) -> Phase:
        return Phase(struct.unpack_from("<i", self._map, 0)[0])

    @property
    def master_pid(self) -> int:
        return self._read()[1]

    @property
    def drain_started(self) -> float:
        """``time.monotonic()`` at SIGTERM (the clock is system-wide on Linux), 0 before."""
        return self._read()[2]

    @property
    def drain_deadline(self) -> float:
        return self._read()[3]

    def set_serving(self) -> None:
        """Called in the master once its listeners exist (also after daemonizing)."""
        self._write(Phase.SERVING, os.getpid(), 0.0, 0.0)

    def begin_drain(self, drain_seconds: float) -> float:
        """Flip to DRAINING; returns the monotonic deadline of the drain."""
        _, pid, _, _ = self._read()
        now = time.monotonic()
        deadline = now + drain_seconds
        # Times first, phase last: a reader that sees DRAINING also sees the times.
        self._write(Phase.SERVING, pid, now, deadline)
        struct.pack_into("<i", self._map, 0, Phase.DRAINING)
        return deadline

    def begin_stop(self) -> None:
        struct.pack_into("<i", self._map, 0, Phase.STOPPING)

    @property
    def draining(self) -> bool:
        """True from SIGTERM on: the one read on the request path."""
        return struct.unpack_from("<i", self._map, 0)[0] >= Phase.DRAINING


_state: SharedState | None = None


def create() -> SharedState:
    """Make (or, on a SIGHUP re-read of the config, reuse) this master's shared state."""
    global _state
    if _state is None:
        _state = SharedState()
    return _state


def current() -> SharedState | None:
    """The state inherited from the master, or None when the hooks were never installed."""
    return _state
