"""What the probe listener and /metrics say, pinned on a shared state with a controlled clock.

Each number is checked against the moment or the workers it names, so an off-by-one-field
bug (the drain's minimum read as its end, a worker with a stale heartbeat still counted)
fails here instead of slipping through tests that only look at orders of magnitude.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gunicorn_zdt.runtime import metrics, probe_server, state

HEARTBEAT_TIMEOUT = 30.0
WALL_AT_1000 = 1_700_000_000.0  # the wall clock when the monotonic clock reads 1000


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(time, "monotonic", lambda: self.now)
        monkeypatch.setattr(time, "time", lambda: WALL_AT_1000 + (self.now - 1000.0))


def _samples(shared: state.SharedState) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    _, body = metrics.exposition(shared, HEARTBEAT_TIMEOUT, None)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _publish(shared: state.SharedState, slot: int, ok: bool, run_started: float) -> None:
    check = [ok, 0.01, "" if ok else "down", run_started]
    shared.publish_verdict(slot, ok, {"started": True, "checks": {"db": check}}, 1000.0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def test_drain_timestamps_are_the_moments_they_name(clock: Clock) -> None:
    shared = state.SharedState()
    shared.set_serving()
    shared.begin_drain()  # SIGTERM at 1000 (the minimum, 2 s, is the master's)
    clock.now = 1007.5
    shared.begin_stop()  # the drain ends (graceful stop begins) at 1007.5
    clock.now = 1010.0
    got = _samples(shared)
    assert got[("gunicorn_zdt_drain_started_timestamp_seconds", ())] == WALL_AT_1000
    assert got[("gunicorn_zdt_drain_ended_timestamp_seconds", ())] == WALL_AT_1000 + 7.5


def _two_workers_one_stale(clock: Clock) -> state.SharedState:
    """Slot 0: fresh heartbeat, db passed. Slot 1: heartbeat 40 s old (a hung or stopped
    worker), its verdict still valid and newer: db failed."""
    shared = state.SharedState()
    shared.set_serving()
    shared.mark_started()
    for slot in (0, 1):
        shared.reset_slot(slot)
        shared.claim_slot(slot)
    _publish(shared, 0, True, run_started=1001.0)
    _publish(shared, 1, False, run_started=1002.0)  # began later: it would win if counted
    clock.now = 1040.0
    shared.beat_worker(0)  # slot 1 last beat at 1000: 40 s > the 30 s heartbeat timeout
    return shared


def test_the_probe_listener_ignores_a_worker_whose_heartbeat_is_stale(clock: Clock) -> None:
    shared = _two_workers_one_stale(clock)
    config = probe_server.ProbeConfig("/healthz", HEARTBEAT_TIMEOUT, 1)
    status, body = probe_server.answer("GET", "/healthz/ready", shared, config, 999.0, clock.now)
    assert (status, body) == (200, {"status": "ok"})
    status, _ = probe_server.answer("GET", "/healthz/ready/db", shared, config, 999.0, clock.now)
    assert status == 200


def test_readiness_gauges_say_what_ready_answers_now(clock: Clock) -> None:
    shared = _two_workers_one_stale(clock)
    got = _samples(shared)
    assert got[("gunicorn_zdt_ready", ())] == 1  # the stale worker's failure is not counted
    assert got[("gunicorn_zdt_ready_check", (("check", "db"),))] == 1
    assert got[("gunicorn_zdt_workers", ())] == 1

    _publish(shared, 0, False, run_started=1040.0)  # a live worker's check fails
    got = _samples(shared)
    assert got[("gunicorn_zdt_ready", ())] == 0
    assert got[("gunicorn_zdt_ready_check", (("check", "db"),))] == 0

    _publish(shared, 0, True, run_started=1041.0)
    shared.begin_drain()  # SIGTERM: 503 pod-wide and for each check
    got = _samples(shared)
    assert got[("gunicorn_zdt_ready", ())] == 0
    assert got[("gunicorn_zdt_ready_check", (("check", "db"),))] == 0
    assert got[("gunicorn_zdt_readiness_check_success", (("check", "db"),))] == 1


def test_a_starting_pod_is_not_ready(clock: Clock) -> None:
    shared = state.SharedState()  # install() ran, when_ready not yet: phase STARTING
    got = _samples(shared)
    assert got[("gunicorn_zdt_ready", ())] == 0
