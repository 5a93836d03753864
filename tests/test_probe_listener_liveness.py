"""The probe listener's liveness during termination, on the pure answer() with a real SharedState.

Once SIGTERM is seen the master's loop and the workers may stop beating (Gunicorn's graceful
stop runs no loop), and a liveness failure then would have the kubelet kill a pod that is
stopping as it should. So stale heartbeats fail liveness while serving, never while draining
or stopping.
"""

from __future__ import annotations

import time

import pytest

from gunicorn_zdt.runtime import probe_server, state

LIMIT = 5.0
CONFIG = probe_server.ProbeConfig(prefix="/healthz", heartbeat_timeout=LIMIT, master_pid=0)


def _shared(phase: state.Phase) -> tuple[state.SharedState, float]:
    """A pod in ``phase`` whose master and only worker last beat now; returns it and now."""
    shared = state.SharedState()
    shared.set_serving()
    shared.reset_slot(0)
    shared.claim_slot(0)
    shared.beat_master()
    if phase >= state.Phase.DRAINING:
        shared.begin_drain()
    if phase >= state.Phase.STOPPING:
        shared.begin_stop()
    assert shared.phase == phase
    return shared, time.monotonic()


def _live(shared: state.SharedState, started: float, now: float) -> tuple[int, dict]:
    return probe_server.answer("GET", "/healthz/live", shared, CONFIG, started, now)


@pytest.mark.parametrize(
    "phase", [state.Phase.SERVING, state.Phase.DRAINING, state.Phase.STOPPING], ids=lambda p: p.name
)
def test_fresh_heartbeats_are_live_in_every_phase(phase: state.Phase) -> None:
    shared, now = _shared(phase)
    assert _live(shared, now, now + 1) == (200, {"status": "ok"})


def test_stale_heartbeats_fail_liveness_while_serving() -> None:
    shared, now = _shared(state.Phase.SERVING)
    status, body = _live(shared, now, now + 2 * LIMIT)
    assert (status, body["status"], body["failed"]) == (503, "failed", ["master", "workers"])


@pytest.mark.parametrize(
    "phase", [state.Phase.DRAINING, state.Phase.STOPPING], ids=lambda p: p.name
)
def test_stale_heartbeats_keep_liveness_200_during_termination(phase: state.Phase) -> None:
    shared, now = _shared(phase)
    status, body = _live(shared, now, now + 2 * LIMIT)
    assert (status, body) == (200, {"status": "ok"})
