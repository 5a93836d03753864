"""The memory layout shared by the Gunicorn master, its workers and the probe listener.

An anonymous shared ``mmap`` made in the master before any fork is inherited by every
worker, including ones spawned later (``max_requests``, crashes, SIGHUP reloads), with
or without ``preload_app``. A USR2 re-exec starts a new interpreter and gets its own.

Who writes what: the master writes the pod header (phase, drain times, its heartbeat);
each worker writes only its own slot (heartbeat, request evidence, check verdict). So a
flip on SIGTERM is seen by every worker at once, with no IPC on the request path.
Every float is an aligned 8-byte ``time.monotonic()`` value (system-wide on Linux): an
aligned 8-byte store is not torn on the platforms we run on. Stdlib only.
"""

from __future__ import annotations

import enum
import json
import mmap
import os
import struct
import time
from dataclasses import dataclass
from typing import Any

# Pod header: phase, master pid, drain start (then 16 bytes unused). The drain's window is
# the master's alone (:class:`gunicorn_zdt.core.drain.DrainWindow`): no worker needs it.
_HEADER = struct.Struct("<i i d 16x")
_MASTER_BEAT = 32  # d: the master's loop, stamped every iteration (about once a second)
_STARTED = 40  # i: 1 once the pod has started (sticky, like the kubelet's view)
_STOP_STARTED = 48  # d: monotonic time Gunicorn's graceful stop began (0 before)
_LISTENER_RESTARTS = 60  # I: how often the probe listener was respawned
_WORKER_THREADS = 64  # i: request threads per worker (capacity, for metrics)
_SLOTS = 4096  # first worker slot
SLOT_SIZE = 2048
SLOT_COUNT = 248  # workers alive at once, at most
_SIZE = _SLOTS + SLOT_SIZE * SLOT_COUNT  # about 500 KiB

# Worker slot. Identity and heartbeat: pid (i), verdict seq (I, odd while writing),
# heartbeat (d). Verdict: published at (d), valid until (d), ok (i), JSON length (i).
_SLOT_HEAD = struct.Struct("<i I d d d i i")
# Request evidence, at _EVIDENCE: the last request that arrived on a new connection while
# draining, probes excluded (d), requests served (Q), requests that arrived while draining
# (Q), requests in flight (i), connections closed after their response by the drain (I).
_EVIDENCE = 64
_EVIDENCE_LAYOUT = struct.Struct("<d Q Q i I")
# What the worker serves now, at _SERVING_HEAD: requests not in the table for want of room
# (I), stack dump armed (i: the worker's dump signal has its handler). Then SERVING_ENTRIES
# entries from _SERVING, one per request in flight: started (d, 0 = free), method (8s),
# path length (H), path (UTF-8, no query string, cut to SERVING_PATH_MAX bytes).
_SERVING_HEAD = 96
_SERVING = 128
_SERVING_ENTRY = struct.Struct("<d 8s H 110s")  # 128 bytes
SERVING_ENTRIES = 6
SERVING_PATH_MAX = 110
_VERDICT = 1024  # verdict JSON from here to the end of the slot
VERDICT_MAX = SLOT_SIZE - _VERDICT
assert _EVIDENCE + _EVIDENCE_LAYOUT.size <= _SERVING_HEAD
assert _SERVING + SERVING_ENTRIES * _SERVING_ENTRY.size <= _VERDICT


class Phase(enum.IntEnum):
    STARTING = 0  # made by install(); when_ready has not run yet
    SERVING = 1
    DRAINING = 2  # SIGTERM seen: readiness 503, still serving, keep-alive closed per response
    STOPPING = 3  # Gunicorn's graceful stop runs: listeners closed


class SharedState:
    """The shared mapping and typed access to it; one per Gunicorn master."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, _SIZE, flags=mmap.MAP_SHARED)
        _HEADER.pack_into(self._map, 0, Phase.STARTING, os.getpid(), 0.0)

    # -- pod header (master writes) ---------------------------------------------------

    @property
    def phase(self) -> Phase:
        return Phase(struct.unpack_from("<i", self._map, 0)[0])

    @property
    def draining(self) -> bool:
        """True from SIGTERM on: the one read on the request path."""
        return struct.unpack_from("<i", self._map, 0)[0] >= Phase.DRAINING

    @property
    def drain_started(self) -> float:
        """``time.monotonic()`` at SIGTERM, 0 before."""
        return float(_HEADER.unpack_from(self._map, 0)[2])

    def set_serving(self) -> None:
        """Master, once its listeners exist (also after daemonizing)."""
        _HEADER.pack_into(self._map, 0, Phase.SERVING, os.getpid(), 0.0)

    def begin_drain(self) -> None:
        """Flip to DRAINING (SIGTERM): every worker's readiness answers 503 from now on."""
        _, pid, _ = _HEADER.unpack_from(self._map, 0)
        # The time first, the phase last: a reader that sees DRAINING also sees the time.
        _HEADER.pack_into(self._map, 0, Phase.SERVING, pid, time.monotonic())
        struct.pack_into("<i", self._map, 0, Phase.DRAINING)

    def begin_stop(self) -> None:
        struct.pack_into("<d", self._map, _STOP_STARTED, time.monotonic())
        struct.pack_into("<i", self._map, 0, Phase.STOPPING)

    @property
    def stop_started(self) -> float:
        return float(struct.unpack_from("<d", self._map, _STOP_STARTED)[0])

    def beat_master(self) -> None:
        """Master, every loop iteration."""
        struct.pack_into("<d", self._map, _MASTER_BEAT, time.monotonic())

    @property
    def master_beat(self) -> float:
        return float(struct.unpack_from("<d", self._map, _MASTER_BEAT)[0])

    def mark_started(self) -> None:
        struct.pack_into("<i", self._map, _STARTED, 1)

    @property
    def started(self) -> bool:
        return bool(struct.unpack_from("<i", self._map, _STARTED)[0] == 1)

    def set_worker_threads(self, threads: int) -> None:
        struct.pack_into("<i", self._map, _WORKER_THREADS, threads)

    @property
    def worker_threads(self) -> int:
        return int(struct.unpack_from("<i", self._map, _WORKER_THREADS)[0])

    def count_listener_restart(self) -> None:
        (n,) = struct.unpack_from("<I", self._map, _LISTENER_RESTARTS)
        struct.pack_into("<I", self._map, _LISTENER_RESTARTS, n + 1)

    @property
    def listener_restarts(self) -> int:
        return int(struct.unpack_from("<I", self._map, _LISTENER_RESTARTS)[0])

    # -- worker slots (each worker writes its own) --------------------------------------

    def reset_slot(self, index: int) -> None:
        """Master, before forking the worker that will own slot ``index``."""
        base = _slot_at(index)
        self._map[base : base + SLOT_SIZE] = bytes(SLOT_SIZE)
        struct.pack_into("<d", self._map, base + 8, time.monotonic())

    def claim_slot(self, index: int) -> None:
        """Worker, just forked: the slot is ours."""
        struct.pack_into("<i", self._map, _slot_at(index), os.getpid())
        self.beat_worker(index)

    def beat_worker(self, index: int) -> None:
        """Worker, whenever it tells Gunicorn it is alive (``worker.notify``)."""
        struct.pack_into("<d", self._map, _slot_at(index) + 8, time.monotonic())

    def request_started(
        self, index: int, draining: bool, traffic: bool, new_connection: bool
    ) -> None:
        """Worker, ``pre_request`` (callers serialise per worker): one more in flight.

        ``traffic``: not a probe or load balancer health check. A traffic request on a new
        connection while draining is the evidence that the cluster still routes to the pod.
        Both drain counters count traffic only: probes arrive on a terminating pod anyway.
        """
        base = _slot_at(index) + _EVIDENCE
        last, served, arrived, in_flight, closed = _EVIDENCE_LAYOUT.unpack_from(self._map, base)
        if draining and traffic:
            arrived += 1
            if new_connection:
                last = time.monotonic()
            else:  # a later request on a connection: opened before SIGTERM (the drain
                closed += 1  # closes each one after a response), must_close ends it now
        _EVIDENCE_LAYOUT.pack_into(self._map, base, last, served, arrived, in_flight + 1, closed)

    def request_finished(self, index: int) -> None:
        """Worker, ``post_request`` (callers serialise per worker)."""
        base = _slot_at(index) + _EVIDENCE
        last, served, arrived, in_flight, closed = _EVIDENCE_LAYOUT.unpack_from(self._map, base)
        _EVIDENCE_LAYOUT.pack_into(
            self._map, base, last, served + 1, arrived, max(in_flight - 1, 0), closed
        )

    def serving_started(self, index: int, method: str, path: str) -> int:
        """Worker, ``pre_request`` (callers serialise per worker): publish what it serves.

        Returns the entry to clear in ``post_request``; -1 when every entry is taken (the
        request is only counted). Started time last: a reader that sees it sees the rest.
        """
        base = _slot_at(index)
        for entry in range(SERVING_ENTRIES):
            at = base + _SERVING + entry * _SERVING_ENTRY.size
            if struct.unpack_from("<d", self._map, at)[0] == 0.0:
                raw = path.encode("utf-8", "replace")[:SERVING_PATH_MAX]
                _SERVING_ENTRY.pack_into(self._map, at, 0.0, method.encode()[:8], len(raw), raw)
                struct.pack_into("<d", self._map, at, time.monotonic())
                return entry
        (untracked,) = struct.unpack_from("<I", self._map, base + _SERVING_HEAD)
        struct.pack_into("<I", self._map, base + _SERVING_HEAD, untracked + 1)
        return -1

    def serving_finished(self, index: int, entry: int) -> None:
        """Worker, ``post_request``: the entry ``serving_started`` returned is free again."""
        base = _slot_at(index)
        if 0 <= entry < SERVING_ENTRIES:
            struct.pack_into("<d", self._map, base + _SERVING + entry * _SERVING_ENTRY.size, 0.0)
        else:
            (untracked,) = struct.unpack_from("<I", self._map, base + _SERVING_HEAD)
            struct.pack_into("<I", self._map, base + _SERVING_HEAD, max(untracked - 1, 0))

    def serving(self, index: int) -> tuple[list[Serving], int]:
        """Any process: what the worker in slot ``index`` serves now, and how many more."""
        base = _slot_at(index)
        out = []
        for entry in range(SERVING_ENTRIES):
            at = base + _SERVING + entry * _SERVING_ENTRY.size
            started, method, length, raw = _SERVING_ENTRY.unpack_from(self._map, at)
            if started and struct.unpack_from("<d", self._map, at)[0] == started:
                path = raw[: min(length, SERVING_PATH_MAX)].decode("utf-8", "ignore")
                out.append(Serving(method.rstrip(b"\0").decode("ascii", "replace"), path, started))
        return out, int(struct.unpack_from("<I", self._map, base + _SERVING_HEAD)[0])

    def arm_dump(self, index: int) -> None:
        """Worker, once its stack-dump signal has a handler: the master may send it."""
        struct.pack_into("<i", self._map, _slot_at(index) + _SERVING_HEAD + 4, 1)

    def dump_armed(self, index: int) -> bool:
        return bool(struct.unpack_from("<i", self._map, _slot_at(index) + _SERVING_HEAD + 4)[0])

    def evidence(self, index: int | None = None) -> Evidence:
        """One worker's evidence, or (``index`` None) the sum over every slot ever claimed."""
        indexes = range(SLOT_COUNT) if index is None else (index,)
        rows = [_EVIDENCE_LAYOUT.unpack_from(self._map, _slot_at(i) + _EVIDENCE) for i in indexes]
        return Evidence(
            last_arrival=max((r[0] for r in rows), default=0.0),
            served=sum(r[1] for r in rows),
            arrived_while_draining=sum(r[2] for r in rows),
            in_flight=sum(r[3] for r in rows),
            closed_by_drain=sum(r[4] for r in rows),
        )

    def publish_verdict(
        self, index: int, ok: bool, detail: dict[str, Any], valid_for: float
    ) -> None:
        """Worker (its publisher thread): its check results, valid ``valid_for`` s.

        A seqlock (odd while writing) lets readers in other processes skip a torn copy.
        """
        base = _slot_at(index)
        data = json.dumps(detail, separators=(",", ":")).encode()
        if len(data) > VERDICT_MAX:  # never publish half a JSON document
            data = json.dumps({"checks": {}, "truncated": True}).encode()
        (seq,) = struct.unpack_from("<I", self._map, base + 4)
        struct.pack_into("<I", self._map, base + 4, (seq + 1) | 1)
        now = time.monotonic()
        struct.pack_into("<d d i i", self._map, base + 16, now, now + valid_for, ok, len(data))
        self._map[base + _VERDICT : base + _VERDICT + len(data)] = data
        struct.pack_into("<I", self._map, base + 4, ((seq + 1) | 1) + 1)

    def slots(self) -> list[Slot]:
        """Every slot a worker ever claimed, freshest data, torn verdicts skipped."""
        out = []
        for index in range(SLOT_COUNT):
            base = _slot_at(index)
            for _ in range(5):
                pid, seq, beat, published, valid_until, ok, length = _SLOT_HEAD.unpack_from(
                    self._map, base
                )
                raw = bytes(self._map[base + _VERDICT : base + _VERDICT + length])
                if seq % 2 == 0 and struct.unpack_from("<I", self._map, base + 4)[0] == seq:
                    break
            else:  # a writer kept it busy: report no verdict rather than a torn one
                published, valid_until, ok, raw = 0.0, 0.0, 0, b""
            if pid == 0 and beat == 0:
                continue
            try:
                detail = json.loads(raw) if raw else {}
            except ValueError:
                detail = {}
            out.append(Slot(index, pid, beat, published, valid_until, bool(ok), detail))
        return out


@dataclass(frozen=True)
class Evidence:
    """What the workers saw, summed over the pod (the drain decision and its report)."""

    last_arrival: float  # monotonic; 0: no request arrived on a new connection while draining
    served: int
    arrived_while_draining: int
    in_flight: int
    closed_by_drain: int


@dataclass(frozen=True)
class Serving:
    """One request a worker is serving (published in its slot; nothing else of it)."""

    method: str
    path: str  # without the query string, at most SERVING_PATH_MAX bytes
    started: float  # monotonic


@dataclass(frozen=True)
class Slot:
    index: int
    pid: int
    beat: float  # monotonic time of the worker's last heartbeat
    verdict_published: float  # 0: no verdict yet
    verdict_valid_until: float
    verdict_ok: bool
    detail: dict[str, Any]


def _slot_at(index: int) -> int:
    if not 0 <= index < SLOT_COUNT:
        raise IndexError(f"worker slot {index} out of range 0..{SLOT_COUNT - 1}")
    return _SLOTS + index * SLOT_SIZE
