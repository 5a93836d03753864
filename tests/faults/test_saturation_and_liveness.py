"""Probes under saturation, liveness that means "stuck", and the listener's lifecycle.

Real Gunicorn masters with the probe listener (``ZDT_PROBE_BIND=127.0.0.1:0``).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.helpers import (
    PROBE_ENV,
    app_workers,
    gone,
    listener_pid,
    listening_ports,
    probe_port,
    refused,
    status,
    timed,
)
from tests.support import require_worker_class, slow_requests, wait_until

KUBELET_TIMEOUT = 1.0  # the probe's default timeoutSeconds


@pytest.mark.parametrize(
    ("config", "slots"),  # slots: requests 2 workers serve at once
    [
        ('worker_class = "gthread"\nthreads = 2\n', 4),
        ('worker_class = "sync"\n', 2),
        ('worker_class = "gevent"\nworker_connections = 2\n', 4),
    ],
    ids=["gthread", "sync", "gevent"],
)
def test_probes_answer_within_a_second_while_every_worker_thread_is_busy(gunicorn, config, slots):
    require_worker_class(config)
    server = gunicorn(config=config + "timeout = 20\n", env=PROBE_ENV).start()
    port = probe_port(server)
    wait_until(lambda: status(port, "/healthz/ready") == 200, 10, "listener ready", server.log)
    threads = slow_requests(server.port, slots + 2, 3000)  # more than there are threads
    # The pool is saturated once an app-port probe cannot get a thread within the timeout.
    r, took = timed(server.port, "/healthz/live", timeout=KUBELET_TIMEOUT)
    assert r is None and took >= KUBELET_TIMEOUT, "the worker pool was not saturated"
    worst = {}
    for path in ("/healthz/live", "/healthz/ready", "/healthz/startup"):
        for _ in range(10):
            r, took = timed(port, path, timeout=KUBELET_TIMEOUT)
            assert r is not None and r.status == 200, (path, r, server.log())
            worst[path] = max(worst.get(path, 0.0), took)
    # Each answer came within the kubelet's 1 s timeout (timed() gave up there otherwise).
    assert max(worst.values()) < KUBELET_TIMEOUT, worst
    # The slow requests that saturated the pool were served, not dropped to make room.
    for t in threads:
        t.join(20)
    assert [t.status for t in threads] == [200] * len(threads)


def test_liveness_fails_when_the_master_loop_is_stuck_and_recovers(gunicorn):
    server = gunicorn(
        config='worker_class = "gthread"\nthreads = 2\n',
        env={**PROBE_ENV, "ZDT_HEARTBEAT_TIMEOUT_SECONDS": "2"},
    ).start()
    port = probe_port(server)
    assert status(port, "/healthz/live") == 200
    server.signal(signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        wait_until(lambda: status(port, "/healthz/live") == 503, 6, "live 503", server.log)
        # Not before the heartbeat timeout (2 s) minus one loop period (the last beat's age).
        assert time.monotonic() - stopped >= 0.9
        body = timed(port, "/healthz/live")[0].json()  # type: ignore[union-attr]
        assert body["failed"] == ["master"]
        assert status(server.port, "/work?ms=0") == 200  # workers still serve: readiness ok
    finally:
        server.signal(signal.SIGCONT)
    wait_until(lambda: status(port, "/healthz/live") == 200, 5, "live 200 again", server.log)


def test_heartbeat_limit_an_idle_sync_worker_cannot_meet_is_refused(gunicorn):
    server = gunicorn(
        config="timeout = 60\n", env={**PROBE_ENV, "ZDT_HEARTBEAT_TIMEOUT_SECONDS": "2"}
    ).start(wait_ready=False)
    assert server.wait_exit(20) == 1
    assert (
        "Error: gunicorn-zdt: ZDT_HEARTBEAT_TIMEOUT_SECONDS=2 <= timeout/2 = 30: an idle sync "
        "worker reports its heartbeat only every timeout/2 s" in server.log()
    )


# Worker classes whose main loop reports a heartbeat every second, busy or idle.
LOOPING_WORKERS = pytest.mark.parametrize(
    "worker_config",
    ['worker_class = "gthread"\nthreads = 2\n', 'worker_class = "gevent"\n'],
    ids=["gthread", "gevent"],
)


@LOOPING_WORKERS
def test_liveness_fails_when_every_worker_misses_its_heartbeat_but_not_one(gunicorn, worker_config):
    # Gunicorn's own timeout (60 s) stays out of the way of the stopped workers.
    require_worker_class(worker_config)
    server = gunicorn(
        config=worker_config + "timeout = 60\n",
        env={**PROBE_ENV, "ZDT_HEARTBEAT_TIMEOUT_SECONDS": "2"},
    ).start()
    port = probe_port(server)
    first, second = app_workers(server, 2)
    os.kill(first, signal.SIGSTOP)
    try:
        for _ in range(3):
            assert status(port, "/healthz/live") == 200
        os.kill(second, signal.SIGSTOP)
        wait_until(lambda: status(port, "/healthz/live") == 503, 6, "live 503", server.log)
        assert timed(port, "/healthz/live")[0].json()["failed"] == ["workers"]  # type: ignore[union-attr]
    finally:
        os.kill(first, signal.SIGCONT)
        os.kill(second, signal.SIGCONT)
    wait_until(lambda: status(port, "/healthz/live") == 200, 5, "live 200 again", server.log)


@LOOPING_WORKERS
def test_during_the_drain_live_200_ready_503_then_the_app_port_closes_and_the_listener_dies(
    gunicorn, worker_config
):
    require_worker_class(worker_config)
    server = gunicorn(
        config=worker_config,
        env={**PROBE_ENV, "ZDT_DRAIN_SECONDS": "1"},
    ).start()
    port, pid = probe_port(server), listener_pid(server)
    assert listening_ports(pid) == {port}  # not the app's socket: the stop really closes it
    slow = slow_requests(server.port, 1, 3000)
    wait_until(lambda: status(port, "/healthz/ready") == 200, 5, "ready")
    server.signal(signal.SIGTERM)
    wait_until(lambda: status(port, "/healthz/ready") == 503, 2, "ready 503 at once", server.log)
    assert status(port, "/healthz/live") == 200
    assert status(server.port, "/work?ms=0") == 200  # still serving during the drain
    server.wait_for_log("graceful stop begins")
    wait_until(lambda: refused(server.port), 3, "app port closed", server.log)
    assert status(port, "/healthz/live") == 200  # in-flight request still running
    assert status(port, "/healthz/ready") == 503
    assert server.wait_exit(15) == 0
    slow[0].join(5)
    assert slow[0].status == 200  # the in-flight request finished inside the graceful stop
    assert gone(pid) and refused(port)


def test_listener_dies_with_a_sigkilled_master(gunicorn):
    server = gunicorn(env=PROBE_ENV).start()
    port, pid = probe_port(server), listener_pid(server)
    server.signal(signal.SIGKILL)
    wait_until(lambda: gone(pid), 3, "listener gone after the master", server.log)
    assert refused(port)


def test_listener_ignores_signals_meant_for_the_master(gunicorn):
    server = gunicorn(env=PROBE_ENV).start()
    port, pid = probe_port(server), listener_pid(server)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        os.kill(pid, sig)
    assert status(port, "/healthz/live") == 200
    assert not gone(pid)


def test_listener_readiness_follows_the_checks_startup_does_not_wait_for_them(gunicorn, tmp_path):
    db = tmp_path / "nodir" / "x.db"  # cannot be opened: the check fails
    server = gunicorn(env={**PROBE_ENV, "DATABASE_URL": f"sqlite:///{db}"}).start(wait_ready=False)
    server.wait_listening()
    port = probe_port(server)
    assert status(port, "/healthz/live") == 200

    def body() -> dict | None:
        r = timed(port, "/healthz/ready")[0]
        return None if r is None else r.json()

    failed = {"status": "failed", "failed": ["database"]}
    wait_until(lambda: body() == failed, 5, "ready 503: database", server.log)
    assert status(port, "/healthz/startup") == 200  # loaded: startup never waits for the db
    assert status(port, "/healthz/live") == 200
    db.parent.mkdir()
    wait_until(lambda: status(port, "/healthz/ready") == 200, 5, "ready 200", server.log)
    assert status(port, "/healthz/startup") == 200
