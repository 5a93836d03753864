"""The database away at start, hung at start, and a SIGKILL mid-write: real PostgreSQL."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import threading

import pytest
from sqlalchemy import create_engine, text

from tests.faults.helpers import (
    PROBE_ENV,
    app_workers,
    postmaster_pid,
    probe_port,
    status,
    stop_group_hard,
)
from tests.support import request, wait_until

pytestmark = pytest.mark.postgres
JSON = {"Content-Type": "application/json"}


def _fresh_database(postgres, name: str) -> str:
    """An empty database of its own (no tables): the app must create them itself."""
    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))
        names = {r[0] for r in rows}
    engine.dispose()
    return names


def test_database_down_at_start_boots_live_then_turns_ready_without_a_restart(gunicorn, postgres):
    url = _fresh_database(postgres, "zdt_down_at_start")
    postgres.stop()
    try:
        server = gunicorn(
            config="max_requests = 4\n",  # workers recycle while the database is away
            env={**PROBE_ENV, "DATABASE_URL": url},
        ).start(wait_ready=False)
        server.wait_listening()
        port = probe_port(server)
        first = app_workers(server, 2)
        for p in (server.port, port):
            assert status(p, "/healthz/live") == 200
            wait_until(lambda p=p: status(p, "/healthz/ready") == 503, 5, "ready 503")
            # Startup does not wait for dependencies: no restarts during an outage. It turns
            # 200 at a worker's first published verdict; ready may be 503 before that ("no
            # check results yet"), so wait for it rather than read it once.
            wait_until(lambda p=p: status(p, "/healthz/startup") == 200, 5, "startup 200")
        # Recycled (max_requests) and crashed workers boot again the same way. A request
        # may meet a worker on its way out (Gunicorn's max_requests race): not counted.
        for _ in range(12):
            status(server.port, "/healthz/live")
        server.wait_for_log("Autorestarting worker after current request", count=2)
        os.kill(app_workers(server, 2)[0], signal.SIGKILL)
        wait_until(
            lambda: not set(app_workers(server, 2)) & set(first), 15, "new workers", server.log
        )
        assert server.proc is not None and server.proc.poll() is None  # the master stays
        assert status(port, "/healthz/live") == 200
    finally:
        postgres.start()
    for p in (port, server.port):
        wait_until(lambda p=p: status(p, "/healthz/ready") == 200, 10, "ready", server.log)
        assert status(p, "/healthz/startup") == 200
    assert "items" in _tables(url)  # the app finished its start: it created its table
    r = request(server.port, "/items", "POST", json.dumps({"id": "after"}).encode(), JSON)
    assert r.status == 201
    assert "Traceback" not in server.log()
    assert "failed to boot" not in server.log()


def test_database_hung_at_start_live_at_once_ready_503_in_time_then_ready(gunicorn, postgres):
    """The postmaster is stopped (SIGSTOP): connections are accepted by the kernel, never served."""
    url = _fresh_database(postgres, "zdt_hung_at_start")
    pg = postmaster_pid(postgres.data)
    os.kill(pg, signal.SIGSTOP)
    try:
        server = gunicorn(
            config='worker_class = "gthread"\nthreads = 4\n',
            env={**PROBE_ENV, "DATABASE_URL": url, "ZDT_CHECK_TIMEOUT_SECONDS": "0.5"},
        ).start(wait_ready=False)
        server.wait_listening()
        port = probe_port(server)
        app_workers(server, 2)
        for p in (server.port, port):
            # Live while the database hangs, once the workers have loaded the app (booting
            # takes its own time on a busy machine; no probe waits on the database).
            wait_until(lambda p=p: status(p, "/healthz/live", timeout=1) == 200, 10, "live 200")
            wait_until(lambda p=p: status(p, "/healthz/ready", 1.5) == 503, 5, "ready 503")
            assert status(p, "/healthz/startup", timeout=1.5) == 503
    finally:
        os.kill(pg, signal.SIGCONT)
    for p in (port, server.port):
        wait_until(lambda p=p: status(p, "/healthz/ready") == 200, 15, "ready", server.log)
    assert "items" in _tables(url)


def test_sigkill_mid_request_never_acknowledges_an_uncommitted_write(gunicorn, postgres):
    """The kubelet's grace-period SIGKILL lands while writes sit in open transactions."""
    url = _fresh_database(postgres, "zdt_sigkill_writes")
    server = gunicorn(
        config='worker_class = "gthread"\nthreads = 4\n',
        env={"DATABASE_URL": url, "ZDT_DRAIN_SECONDS": "30"},
    ).start()
    acked: list[str] = []
    in_flight: list[str] = []
    counter = itertools.count()
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            item = f"w{next(counter)}"
            body = json.dumps({"id": item, "delay_ms": 150}).encode()
            try:
                r = request(server.port, "/items", "POST", body, JSON, timeout=5)
            except OSError:
                in_flight.append(item)  # no answer: may or may not be committed
                continue
            if r.status == 201:
                acked.append(item)

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(6)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 20, 20, "20 acknowledged writes", server.log)
    server.signal(signal.SIGTERM)  # draining: still serving, like a pod waiting for SIGKILL
    server.wait_for_log("SIGTERM: draining")
    target = len(acked) + 10
    wait_until(lambda: len(acked) >= target, 20, "writes during the drain", server.log)
    stop_group_hard(server)
    stop.set()
    for t in threads:
        t.join(10)
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = {r[0] for r in conn.execute(text("SELECT id FROM items"))}
    engine.dispose()
    assert set(acked) <= stored, sorted(set(acked) - stored)
    assert in_flight, "SIGKILL hit no request in flight; the test proved nothing"
    with contextlib.suppress(Exception):
        server.stop()
