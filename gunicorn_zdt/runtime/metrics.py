"""Prometheus metrics of the pod, read from shared memory: ``GET /metrics`` on the listener.

The probe listener answers ``/metrics`` with :func:`exposition`; every number comes from
:class:`gunicorn_zdt.runtime.state.SharedState`, so a scrape never waits for a worker, however
busy. A custom collector builds the families on each scrape; ``prometheus_client``
renders them (the Prometheus text format, or OpenMetrics when the scraper's ``Accept``
asks for it). Install the extra: ``pip install "gunicorn-zdt[metrics]"``; without it
the listener answers 501 and keeps serving probes (it imports this module lazily).

Conventions (docs/metrics.md has the table):

* a moment is a Unix timestamp in seconds (``*_timestamp_seconds``, 0 while it has not
  happened), like ``process_start_time_seconds``; an age is ``time() - metric`` in PromQL;
* a live worker is one whose heartbeat is newer than the heartbeat timeout, as for
  readiness; per-worker series carry ``worker`` = its slot index (stable across respawns,
  bounded, unlike a pid);
* per-worker counters reset when a new worker takes the slot, as a process restart
  does: sum their ``rate()``, never rate a sum.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from ..core import readiness
from . import state

__all__ = ["PREFIX", "SharedStateCollector", "exposition"]

PREFIX = "gunicorn_zdt_"
PHASES = {phase: phase.name.lower() for phase in state.Phase}


@dataclass(frozen=True)
class _Scrape:
    """One pass over the shared memory: what every family of one scrape reads."""

    shared: state.SharedState
    now: float  # monotonic
    wall: float  # Unix time at ``now``
    slots: list[state.Slot]
    live: list[state.Slot]  # heartbeat within the heartbeat timeout, as for readiness
    rows: dict[int, state.Evidence]  # per slot
    pod: state.Evidence  # every slot, as the drain decision sums them

    def unix(self, moment: float) -> float:
        """A monotonic moment from shared memory as Unix time (0 stays 0: never)."""
        return self.wall - (self.now - moment) if moment > 0 else 0.0

    def in_flight(self, slot: state.Slot) -> int:
        return self.rows[slot.index].in_flight


#: Pod-wide numbers, one sample each: (name, counter?, help, unit, value).
_POD_WIDE: tuple[tuple[str, bool, str, str, Callable[[_Scrape], float]], ...] = (
    (
        "workers",
        False,
        "Live workers: heartbeat within the heartbeat timeout.",
        "",
        lambda s: len(s.live),
    ),
    (
        "requests_in_flight",
        False,
        "Requests being served now by live workers, probes on the app port included.",
        "",
        lambda s: sum(s.in_flight(w) for w in s.live),
    ),
    (
        "workers_busy",
        False,
        "Live workers serving at least one request.",
        "",
        lambda s: sum(1 for w in s.live if s.in_flight(w) > 0),
    ),
    (
        "master_heartbeat_timestamp_seconds",
        False,
        "Last turn of the Gunicorn master's loop.",
        "seconds",
        lambda s: s.unix(s.shared.master_beat),
    ),
    (
        "drain_started_timestamp_seconds",
        False,
        "When SIGTERM started the drain (readiness 503 from then on); 0 before.",
        "seconds",
        lambda s: s.unix(s.shared.drain_started),
    ),
    (
        "drain_ended_timestamp_seconds",
        False,
        "When the drain ended and Gunicorn's graceful stop began; 0 before.",
        "seconds",
        lambda s: s.unix(s.shared.stop_started),
    ),
    (
        "drain_last_arrival_timestamp_seconds",
        False,
        "Last request (probes excluded) on a new connection after SIGTERM; 0: none.",
        "seconds",
        lambda s: s.unix(s.pod.last_arrival),
    ),
    (
        "drain_requests_arrived",
        True,
        "Requests (probes and health checks excluded) that arrived after SIGTERM.",
        "",
        lambda s: s.pod.arrived_while_draining,
    ),
    (
        "drain_connections_closed",
        True,
        "Keep-alive connections opened before SIGTERM that the drain closed after a "
        "response (probes excluded).",
        "",
        lambda s: s.pod.closed_by_drain,
    ),
    (
        "probe_listener_restarts",
        True,
        "Times the master respawned the probe listener.",
        "",
        lambda s: s.shared.listener_restarts,
    ),
)


class SharedStateCollector(Collector):
    """Every metric of the pod, from one pass over the shared memory per scrape."""

    def __init__(self, shared: state.SharedState, heartbeat_timeout: float) -> None:
        self.shared = shared
        self.heartbeat_timeout = heartbeat_timeout

    def collect(self) -> Iterator[Metric]:
        shared = self.shared
        now = time.monotonic()
        slots = shared.slots()
        scrape = _Scrape(
            shared=shared,
            now=now,
            wall=time.time(),
            slots=slots,
            live=[s for s in slots if now - s.beat <= self.heartbeat_timeout],
            rows={s.index: shared.evidence(s.index) for s in slots},
            pod=shared.evidence(),
        )
        yield _phase(shared.phase)
        for name, counter, text, unit, value in _POD_WIDE:
            family = CounterMetricFamily if counter else GaugeMetricFamily
            yield family(f"{PREFIX}{name}", text, value=value(scrape), unit=unit)
        yield from _per_worker(scrape)
        yield from _utilisation(scrape)
        view = readiness.pod_view(shared.draining, scrape.live, now)
        yield from _readiness_now(shared, view)
        yield from _checks(view)


def _phase(current: state.Phase) -> Metric:
    family = GaugeMetricFamily(
        f"{PREFIX}phase",
        "Pod phase: 1 for the current one (starting, serving, draining, stopping).",
        labels=["phase"],
    )
    for value, name in PHASES.items():
        family.add_metric([name], 1.0 if value == current else 0.0)
    return family


def _per_worker(s: _Scrape) -> Iterator[Metric]:
    """Series per slot: ``worker`` is its index (bounded, stable across respawns)."""
    in_flight = GaugeMetricFamily(
        f"{PREFIX}worker_requests_in_flight",
        "Requests being served now by one live worker.",
        labels=["worker"],
    )
    for w in s.live:
        in_flight.add_metric([str(w.index)], s.in_flight(w))
    served = CounterMetricFamily(
        f"{PREFIX}worker_requests_served",
        "Requests served by the worker in this slot (resets when a new worker takes it).",
        labels=["worker"],
    )
    beats = GaugeMetricFamily(
        f"{PREFIX}worker_heartbeat_timestamp_seconds",
        "Last heartbeat of the worker in this slot.",
        labels=["worker"],
        unit="seconds",
    )
    for w in s.slots:
        served.add_metric([str(w.index)], s.rows[w.index].served)
        beats.add_metric([str(w.index)], s.unix(w.beat))
    yield from (in_flight, served, beats)


def _utilisation(s: _Scrape) -> Iterator[Metric]:
    """Request slots and how many are busy: the autoscaling signal (none when the master
    did not record its threads per worker)."""
    threads = s.shared.worker_threads
    if threads <= 0:
        return
    capacity = threads * len(s.live)
    busy = sum(min(s.in_flight(w), threads) for w in s.live)
    yield GaugeMetricFamily(
        f"{PREFIX}threads_capacity",
        "Request slots of the live workers: threads per worker (sync 1, gthread "
        "threads, gevent 1: its event loop) x workers.",
        value=capacity,
    )
    yield GaugeMetricFamily(
        f"{PREFIX}threads_utilisation_ratio",
        "Busy request slots / threads_capacity, 0 to 1 (the autoscaling signal).",
        value=busy / capacity if capacity else 0.0,
    )


def _checks(view: readiness.PodView) -> Iterator[Metric]:
    ok = GaugeMetricFamily(
        f"{PREFIX}readiness_check_success",
        "Last result of a readiness check: 1 passed, 0 failed.",
        labels=["check"],
    )
    took = GaugeMetricFamily(
        f"{PREFIX}readiness_check_duration_seconds",
        "How long the last run of a readiness check took.",
        labels=["check"],
        unit="seconds",
    )
    for name, outcome in sorted((view.checks or {}).items()):
        ok.add_metric([name], 1.0 if outcome.ok else 0.0)
        if outcome.seconds is not None:
            took.add_metric([name], outcome.seconds)
    yield from (ok, took)


def _readiness_now(shared: state.SharedState, view: readiness.PodView) -> Iterator[Metric]:
    """What PREFIX/ready and PREFIX/ready/NAME on the probe listener answer now, as 1 / 0.

    The same decision (:func:`readiness.decide_ready` on the live workers' verdicts), so a
    dashboard or an alert sees what the kubelet sees, draining included.
    """
    starting = shared.phase == state.Phase.STARTING
    status, _ = readiness.decide_ready(view, {})
    yield GaugeMetricFamily(
        f"{PREFIX}ready",
        "1 while readiness (PREFIX/ready) answers 200, 0 while 503 (draining, starting, a "
        "check failed).",
        value=1.0 if status == 200 and not starting else 0.0,
    )
    per_check = GaugeMetricFamily(
        f"{PREFIX}ready_check",
        "1 while PREFIX/ready/CHECK answers 200 (0 while draining or the check fails).",
        labels=["check"],
    )
    for name in sorted(view.checks or {}):
        status, _ = readiness.decide_ready(view, {}, only=name)
        per_check.add_metric([name], 1.0 if status == 200 and not starting else 0.0)
    yield per_check


_registries: dict[int, tuple[state.SharedState, CollectorRegistry]] = {}


def _registry(shared: state.SharedState, heartbeat_timeout: float) -> CollectorRegistry:
    """One private registry per shared state (a listener process has one)."""
    known = _registries.get(id(shared))
    if known is None or known[0] is not shared:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SharedStateCollector(shared, heartbeat_timeout))
        known = _registries[id(shared)] = (shared, registry)
    return known[1]


def exposition(
    shared: state.SharedState, heartbeat_timeout: float, accept: str | None
) -> tuple[str, bytes]:
    """(Content-Type, body): OpenMetrics when ``accept`` asks for it, else the text format."""
    encoder: Any
    encoder, content_type = choose_encoder(accept or "")
    return content_type, encoder(_registry(shared, heartbeat_timeout))
