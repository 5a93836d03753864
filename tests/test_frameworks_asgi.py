"""ASGI apps under the hooks: uvicorn-worker and Gunicorn's own ``-k asgi``, real masters.

The FastAPI example (example_fastapi/) with ``install(globals())`` and nothing else: the
hooks wrap it in gunicorn_zdt.asgi.ZdtMiddleware. Same claims as the WSGI drain tests.
"""

from __future__ import annotations

import http.client
import re
import signal
import socket
import threading
import time

import pytest

from gunicorn_zdt import drain
from tests.support import request, wait_until
from tests.test_adaptive_drain import WINDOW, _report, _send_until

WORKER_CLASSES = ["asgi", "uvicorn_worker.UvicornWorker"]
APP = "example_fastapi.app:app"
TRACEBACK = re.compile(r"Traceback|Errno 22|Error in ASGI|Exception in callback")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(worker_class: str, extra: str = "") -> str:
    return f'worker_class = "{worker_class}"\nkeepalive = 30\n{extra}'


def _start(gunicorn, worker_class: str, env: dict[str, str], extra: str = ""):  # type: ignore[no-untyped-def]
    if "uvicorn" in worker_class:
        pytest.importorskip("uvicorn_worker")
    return gunicorn(config=_config(worker_class, extra), app=APP, env=env).start()


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_asgi_drain_keepalive_closed_ready_503_on_both_servers_and_no_traceback(
    gunicorn, tmp_path, worker_class: str
) -> None:
    probe_port = _free_port()
    env = {
        "ZDT_DRAIN_SECONDS": "2",
        "ZDT_PROBE_BIND": f"127.0.0.1:{probe_port}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fastapi.db'}",
    }
    server = _start(gunicorn, worker_class, env)
    keep_alive = server.connect()
    first = server.get("/work?ms=0", conn=keep_alive)
    assert first.status == 200 and first.headers.get("connection") != "close", first
    assert request(probe_port, "/healthz/ready").status == 200
    assert server.get("/healthz/ready?verbose").json()["checks"]["database"]["status"] == "ok"

    server.signal(signal.SIGTERM)
    server.wait_for_log("SIGTERM: draining")
    # The first response on a kept-alive connection after SIGTERM closes it.
    last = server.get("/work?ms=0", conn=keep_alive)
    assert last.status == 200 and last.headers.get("connection") == "close", last.headers
    assert keep_alive.sock is None or keep_alive.sock.recv(1) == b""
    # Readiness 503 on the app's port (fresh connections reach either worker) and on the
    # probe listener; liveness 200; traffic still served.
    for _ in range(6):
        r = server.get("/healthz/ready")
        assert (r.status, r.json()["status"]) == (503, "draining"), r
    assert request(probe_port, "/healthz/ready").status == 503
    assert server.get("/healthz/live").status == 200
    assert server.get("/work?ms=0").status == 200

    assert server.wait_exit(30) == 0
    log = server.log()
    assert not TRACEBACK.search(log), log
    report = _report(server)
    assert report["arrived"] == 2 and report["cut"] == 0, report  # the two /work above


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_asgi_traffic_after_the_minimum_extends_the_drain_and_is_counted(
    gunicorn, worker_class: str
) -> None:
    server = _start(gunicorn, worker_class, WINDOW)
    sigterm_at = time.monotonic()
    server.signal(signal.SIGTERM)
    server.wait_for_log("SIGTERM: draining")
    sent = _send_until(server.port, "/work?ms=0", sigterm_at + 2.5)
    assert server.wait_exit(20) == 0
    report = _report(server)
    last_sent = sent[-1] - sigterm_at
    assert report["reason"] == drain.QUIET
    assert report["last"] is not None and abs(report["last"] - last_sent) < 0.5, (report, last_sent)
    assert report["last"] + 1.0 <= report["drain"] < report["last"] + 2.0, report
    assert report["arrived"] == len(sent), (report, len(sent))
    assert report["closed"] >= len(sent)
    assert not TRACEBACK.search(server.log()), server.log()


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_asgi_no_failed_request_through_a_termination_with_traffic_longer_than_the_minimum(
    gunicorn, worker_class: str
) -> None:
    """Keep-alive and fresh-connection clients through SIGTERM until the pod stops
    listening: every request sent before the refusal is answered 200, none reset."""
    server = _start(gunicorn, worker_class, WINDOW)
    results: list[int | str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(keep: bool) -> None:
        conn: http.client.HTTPConnection | None = None
        while not stop.is_set():
            if conn is None and keep:
                conn = server.connect()
            try:
                r = request(server.port, "/work?ms=20", conn=conn, timeout=5)
            except ConnectionRefusedError:
                return  # the listener is shut: the pod is gone from the Service by now
            except OSError as exc:
                with lock:
                    results.append(repr(exc))
                return
            with lock:
                results.append(r.status)
            if conn is not None and r.headers.get("connection") == "close":
                conn.close()
                conn = None

    threads = [threading.Thread(target=client, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(results) > 20, 10, "traffic before SIGTERM")
    server.signal(signal.SIGTERM)
    time.sleep(2.5)  # traffic for longer than the 1 s minimum: the load, not a wait
    stop.set()
    for t in threads:
        t.join(10)
    assert server.wait_exit(20) == 0
    failures = [r for r in results if r != 200]
    assert not failures, failures
    report = _report(server)
    assert report["cut"] == 0 and report["arrived"] > 0, report
    assert not TRACEBACK.search(server.log()), server.log()


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_asgi_liveness_never_fails_on_an_idle_pod_with_a_short_heartbeat_limit(
    gunicorn, worker_class: str
) -> None:
    """uvicorn-worker beats every timeout/2 on its own (15 s here): we make it beat every
    second, so a 3 s limit holds on an idle pod."""
    probe_port = _free_port()
    env = {"ZDT_PROBE_BIND": f"127.0.0.1:{probe_port}", "ZDT_HEARTBEAT_TIMEOUT_SECONDS": "3"}
    _start(gunicorn, worker_class, env, "timeout = 30\n")
    statuses = []
    deadline = time.monotonic() + 6  # two heartbeat limits of idleness
    while time.monotonic() < deadline:
        statuses.append(request(probe_port, "/healthz/live").status)
        time.sleep(0.25)  # the kubelet's polling, faster
    assert set(statuses) == {200}, statuses
