"""Prometheus metrics of the pod, read from shared memory: ``GET /metrics`` on the listener.

The probe listener answers ``/metrics`` with :func:`exposition`; every number comes from
:class:`gunicorn_zdt.state.SharedState`, so a scrape never waits for a worker, however
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
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from ..core import readiness
from . import state

__all__ = ["PREFIX", "SharedStateCollector", "exposition"]

PREFIX = "gunicorn_zdt_"
PHASES = {phase: phase.name.lower() for phase in state.Phase}


class SharedStateCollector(Collector):
    """Every metric of the pod, from one pass over the shared memory per scrape."""

    def __init__(self, shared: state.SharedState, heartbeat_timeout: float) -> None:
        self.shared = shared
        self.heartbeat_timeout = heartbeat_timeout

    def collect(self) -> Iterator[Metric]:
        shared = self.shared
        now = time.monotonic()
        wall = time.time()

        def unix(moment: float) -> float:
            """A monotonic moment from shared memory as Unix time (0 stays 0: never)."""
            return wall - (now - moment) if moment > 0 else 0.0

        slots = shared.slots()
        live = [s for s in slots if now - s.beat <= self.heartbeat_timeout]
        rows = {s.index: shared.evidence(s.index) for s in slots}
        pod = shared.evidence()  # every slot, as the drain decision sums them

        phase = GaugeMetricFamily(
            f"{PREFIX}phase",
            "Pod phase: 1 for the current one (starting, serving, draining, stopping).",
            labels=["phase"],
        )
        current = shared.phase
        for value, name in PHASES.items():
            phase.add_metric([name], 1.0 if value == current else 0.0)
        yield phase

        yield GaugeMetricFamily(
            f"{PREFIX}workers",
            "Live workers: heartbeat within the heartbeat timeout.",
            value=len(live),
        )
        in_flight = sum(rows[s.index].in_flight for s in live)
        yield GaugeMetricFamily(
            f"{PREFIX}requests_in_flight",
            "Requests being served now by live workers, probes on the app port included.",
            value=in_flight,
        )
        per_worker = GaugeMetricFamily(
            f"{PREFIX}worker_requests_in_flight",
            "Requests being served now by one live worker.",
            labels=["worker"],
        )
        for s in live:
            per_worker.add_metric([str(s.index)], rows[s.index].in_flight)
        yield per_worker
        yield GaugeMetricFamily(
            f"{PREFIX}workers_busy",
            "Live workers serving at least one request.",
            value=sum(1 for s in live if rows[s.index].in_flight > 0),
        )
        threads = shared.worker_threads
        if threads > 0:  # 0: the master did not record its threads per worker
            capacity = threads * len(live)
            busy = sum(min(rows[s.index].in_flight, threads) for s in live)
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
        for s in slots:
            served.add_metric([str(s.index)], rows[s.index].served)
            beats.add_metric([str(s.index)], unix(s.beat))
        yield served
        yield beats
        yield GaugeMetricFamily(
            f"{PREFIX}master_heartbeat_timestamp_seconds",
            "Last turn of the Gunicorn master's loop.",
            value=unix(shared.master_beat),
            unit="seconds",
        )

        yield GaugeMetricFamily(
            f"{PREFIX}drain_started_timestamp_seconds",
            "When SIGTERM started the drain (readiness 503 from then on); 0 before.",
            value=unix(shared.drain_started),
            unit="seconds",
        )
        yield GaugeMetricFamily(
            f"{PREFIX}drain_ended_timestamp_seconds",
            "When the drain ended and Gunicorn's graceful stop began; 0 before.",
            value=unix(shared.stop_started),
            unit="seconds",
        )
        yield GaugeMetricFamily(
            f"{PREFIX}drain_last_arrival_timestamp_seconds",
            "Last request (probes excluded) on a new connection after SIGTERM; 0: none.",
            value=unix(pod.last_arrival),
            unit="seconds",
        )
        yield CounterMetricFamily(
            f"{PREFIX}drain_requests_arrived",
            "Requests (probes and health checks excluded) that arrived after SIGTERM.",
            value=pod.arrived_while_draining,
        )
        yield CounterMetricFamily(
            f"{PREFIX}drain_connections_closed",
            "Keep-alive connections opened before SIGTERM that the drain closed after a "
            "response (probes excluded).",
            value=pod.closed_by_drain,
        )

        view = readiness.pod_view(shared.draining, live, now)
        yield from _readiness_now(shared, view)
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
        yield ok
        yield took

        yield CounterMetricFamily(
            f"{PREFIX}probe_listener_restarts",
            "Times the master respawned the probe listener.",
            value=shared.listener_restarts,
        )


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
