"""The drain state shared by the Gunicorn master and all its workers.

An anonymous shared ``mmap`` made in the master before any fork is inherited by every
worker, including ones spawned later (``max_requests``, crashes, SIGHUP reloads), with
or without ``preload_app``. The master writes it; workers only read it, so a flip on
SIGTERM is seen by every worker at once, with no IPC on the request path. A USR2
re-exec starts a new interpreter and gets a state of its own. Stdlib only.
"""

from __future__ import annotations

import enum
import json
import mmap
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_LAYOUT = struct.Struct("<i i d d")  # phase, master pid, drain start, drain deadline (monotonic)

# Heartbeats and check verdicts (read by the probe listener, see probe_server.py).
# Every float is an aligned 8-byte ``time.monotonic()`` value (system-wide on Linux), written
# by one process only: an aligned 8-byte store is not torn on the platforms we run on.
_MASTER_BEAT = 32  # d: the master's loop, stamped every iteration (about once a second)
_STARTED = 40  # i: 1 once any worker's startup passed (sticky, like the kubelet's view)
_SLOTS = 4096  # first worker slot
SLOT_SIZE = 512
SLOT_COUNT = 248  # workers alive at once, at most
_SIZE = _SLOTS + SLOT_SIZE * SLOT_COUNT  # 128 KiB
# slot: pid (i), seq (I, odd while the verdict is being written), heartbeat (d),
# verdict valid until (d), verdict ok (i), verdict length (i), verdict JSON (bytes)
_SLOT = struct.Struct("<i I d d i i")
_VERDICT_MAX = SLOT_SIZE - _SLOT.size


class Phase(enum.IntEnum):
    STARTING = 0  # made by install(); when_ready has not run yet
    SERVING = 1
    DRAINING = 2  # SIGTERM seen: readiness 503, still serving, keep-alive closed per response
    STOPPING = 3  # Gunicorn's graceful stop runs: listeners closed


class SharedState:
    """A few numbers in shared memory. Writers: the master only."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, _SIZE, flags=mmap.MAP_SHARED)
        self._write(Phase.STARTING, os.getpid(), 0.0, 0.0)

    def _read(self) -> tuple[int, int, float, float]:
        return _LAYOUT.unpack_from(self._map, 0)

    def _write(self, phase: int, pid: int, started: float, deadline: float) -> None:
        _LAYOUT.pack_into(self._map, 0, phase, pid, started, deadline)

    @property
    def phase(self) -> Phase:
        return Phase(struct.unpack_from("<i", self._map, 0)[0])

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

    # -- heartbeats and verdicts (for the probe listener) ---------------------------

    def beat_master(self) -> None:
        """Master, every loop iteration."""
        struct.pack_into("<d", self._map, _MASTER_BEAT, time.monotonic())

    @property
    def master_beat(self) -> float:
        return struct.unpack_from("<d", self._map, _MASTER_BEAT)[0]

    def mark_started(self) -> None:
        struct.pack_into("<i", self._map, _STARTED, 1)

    @property
    def started(self) -> bool:
        return struct.unpack_from("<i", self._map, _STARTED)[0] == 1

    def reset_slot(self, index: int) -> None:
        """Master, before forking the worker that will own slot ``index``."""
        struct.pack_into(
            "<i I d d i i", self._map, _slot_at(index), 0, 0, time.monotonic(), 0, 0, 0
        )

    def claim_slot(self, index: int) -> None:
        """Worker, just forked: the slot is ours."""
        struct.pack_into("<i", self._map, _slot_at(index), os.getpid())
        self.beat_worker(index)

    def beat_worker(self, index: int) -> None:
        """Worker, whenever it tells Gunicorn it is alive (``worker.notify``)."""
        struct.pack_into("<d", self._map, _slot_at(index) + 8, time.monotonic())

    def publish_verdict(
        self, index: int, ok: bool, detail: dict[str, Any], valid_for: float
    ) -> None:
        """Worker (one thread): the result of its readiness checks, valid ``valid_for`` s.

        A seqlock (odd while writing) lets readers in other processes skip a torn copy.
        """
        base = _slot_at(index)
        data = json.dumps(detail, separators=(",", ":")).encode()[:_VERDICT_MAX]
        (seq,) = struct.unpack_from("<I", self._map, base + 4)
        struct.pack_into("<I", self._map, base + 4, (seq + 1) | 1)
        struct.pack_into(
            "<d i i", self._map, base + 16, time.monotonic() + valid_for, ok, len(data)
        )
        self._map[base + _SLOT.size : base + _SLOT.size + len(data)] = data
        struct.pack_into("<I", self._map, base + 4, ((seq + 1) | 1) + 1)

    def slots(self) -> list[Slot]:
        """Every slot a worker ever claimed (reader: the probe listener)."""
        out = []
        for index in range(SLOT_COUNT):
            base = _slot_at(index)
            for _ in range(5):
                pid, seq, beat, valid_until, ok, length = _SLOT.unpack_from(self._map, base)
                raw = bytes(self._map[base + _SLOT.size : base + _SLOT.size + length])
                if seq % 2 == 0 and struct.unpack_from("<I", self._map, base + 4)[0] == seq:
                    break
            else:  # a writer kept it busy: report no verdict rather than a torn one
                valid_until, ok, raw = 0.0, 0, b""
            if pid == 0 and beat == 0:
                continue
            try:
                detail = json.loads(raw) if raw else {}
            except ValueError:
                detail = {}
            out.append(Slot(index, pid, beat, valid_until, bool(ok), detail))
        return out


@dataclass(frozen=True)
class Slot:
    index: int
    pid: int
    beat: float  # monotonic time of the worker's last heartbeat
    verdict_valid_until: float  # 0: no verdict yet
    verdict_ok: bool
    detail: dict[str, Any]


def _slot_at(index: int) -> int:
    if not 0 <= index < SLOT_COUNT:
        raise IndexError(f"worker slot {index} out of range 0..{SLOT_COUNT - 1}")
    return _SLOTS + index * SLOT_SIZE


_state: SharedState | None = None
_worker_slot: int | None = None
_worker_boot_callbacks: list[Callable[[SharedState, int], None]] = []


def set_worker_slot(index: int) -> None:
    """Worker, in ``post_fork``: which slot this process writes."""
    global _worker_slot
    _worker_slot = index


def on_worker_boot(callback: Callable[[SharedState, int], None]) -> None:
    """Run ``callback(state, slot)`` in each worker once its app is loaded (probe listener on).

    The Flask extension registers its verdict publisher here; the hooks call them from
    ``post_worker_init``. Registering in a preloaded master is fine: forks inherit the list.
    """
    _worker_boot_callbacks.append(callback)


def run_worker_boot_callbacks() -> None:
    if _state is None or _worker_slot is None:
        return
    for callback in list(_worker_boot_callbacks):
        callback(_state, _worker_slot)


def create() -> SharedState:
    """Make (or, on a SIGHUP re-read of the config, reuse) this master's shared state."""
    global _state
    if _state is None:
        _state = SharedState()
    return _state


def current() -> SharedState | None:
    """The state inherited from the master, or None when the hooks were never installed."""
    return _state
