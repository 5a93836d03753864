"""Other frameworks under the hooks: Django on sync/gthread, FastAPI on uvicorn-worker and
Gunicorn's own ``-k asgi``, each the example app with ``install(globals())`` last.

Real Gunicorn masters, real signals and sockets; the same claims as the Flask drain tests
(tests/test_drain.py, tests/test_adaptive_drain.py), parametrised over every worker class
the README claims for each framework.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from gunicorn_zdt.core import drain
from tests.support import REPO, request, wait_until
from tests.test_adaptive_drain import WINDOW, _report, _send_until


@dataclass(frozen=True)
class Stack:
    framework: str
    worker_class: str
    app: str
    needs: str  # the module the worker class or the app imports

    @property
    def keeps_alive(self) -> bool:  # sync answers Connection: close to every request anyway
        return self.worker_class != "sync"


STACKS = [
    Stack("django", "sync", "example_django.wsgi:application", "django"),
    Stack("django", "gthread", "example_django.wsgi:application", "django"),
    Stack("fastapi", "asgi", "example_fastapi.app:app", "fastapi"),
    Stack("fastapi", "uvicorn_worker.UvicornWorker", "example_fastapi.app:app", "uvicorn_worker"),
]
IDS = [f"{s.framework}-{s.worker_class.split('.')[0]}" for s in STACKS]
TRACEBACK = re.compile(r"Traceback|Errno 22|Error in ASGI|Exception in callback")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(gunicorn, stack: Stack, env: dict[str, str], extra: str = ""):  # type: ignore[no-untyped-def]
    pytest.importorskip(stack.needs)
    threads = "threads = 4\n" if stack.worker_class == "gthread" else ""
    config = f'worker_class = "{stack.worker_class}"\n{threads}keepalive = 30\n{extra}'
    return gunicorn(config=config, app=stack.app, env=env).start()


@pytest.mark.parametrize("stack", STACKS, ids=IDS)
def test_drain_closes_keep_alive_ready_503_on_both_servers_no_traceback(
    gunicorn, stack: Stack
) -> None:
    probe_port = _free_port()
    env = {"ZDT_DRAIN_SECONDS": "2", "ZDT_PROBE_BIND": f"127.0.0.1:{probe_port}"}
    server = _start(gunicorn, stack, env)
    keep_alive = server.connect()
    first = server.get("/work?ms=0", conn=keep_alive)
    assert first.status == 200, first
    if stack.keeps_alive:
        assert first.headers.get("connection") != "close", first.headers
    else:
        keep_alive = server.connect()
    assert request(probe_port, "/healthz/ready").status == 200
    verbose = server.get("/healthz/ready?verbose").json()
    assert verbose["checks"]["database"]["status"] == "ok", verbose

    server.signal(signal.SIGTERM)
    server.wait_for_log("SIGTERM: draining")
    # The first response on a kept-alive connection after SIGTERM closes it.
    last = server.get("/work?ms=0", conn=keep_alive)
    assert last.status == 200 and last.headers.get("connection") == "close", last.headers
    assert keep_alive.sock is None or keep_alive.sock.recv(1) == b""
    # Readiness 503 on the app's port (fresh connections, either worker) and on the probe
    # listener; liveness 200; traffic still served.
    for _ in range(6):
        r = server.get("/healthz/ready")
        assert (r.status, r.json()["status"]) == (503, "draining"), r
    assert request(probe_port, "/healthz/ready").status == 503
    assert server.get("/healthz/live").status == 200
    assert server.get("/work?ms=0").status == 200

    assert server.wait_exit(30) == 0
    assert not TRACEBACK.search(server.log()), server.log()
    report = _report(server)
    assert (report["arrived"], report["cut"]) == (2, 0), report  # the two /work above


@pytest.mark.parametrize("stack", STACKS, ids=IDS)
def test_traffic_after_the_minimum_extends_the_drain_and_is_counted(gunicorn, stack: Stack) -> None:
    server = _start(gunicorn, stack, WINDOW)
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
    # Every request came on a new connection: "closed by the drain" counts only keep-alive
    # connections from before SIGTERM (README, termination report), so none here.
    assert report["closed"] == 0, report
    assert not TRACEBACK.search(server.log()), server.log()


@pytest.mark.parametrize("stack", STACKS, ids=IDS)
def test_no_failed_request_through_a_termination_with_traffic_longer_than_the_minimum(
    gunicorn, stack: Stack
) -> None:
    """Keep-alive and fresh-connection clients through SIGTERM until the pod stops
    listening: every request is answered 200 (none reset, no 5xx) until the refusal."""
    server = _start(gunicorn, stack, WINDOW)
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
                return  # the listener is shut: by now the pod is out of the Service
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
    time.sleep(2.5)  # the load runs 2.5 s past SIGTERM (minimum drain 1 s): not a wait
    stop.set()
    for t in threads:
        t.join(10)
    assert server.wait_exit(20) == 0
    failures = [r for r in results if r != 200]
    assert not failures, failures
    report = _report(server)
    assert report["cut"] == 0 and report["arrived"] > 0, report
    assert not TRACEBACK.search(server.log()), server.log()


@pytest.mark.parametrize("stack", STACKS, ids=IDS)
def test_liveness_never_fails_on_an_idle_pod_with_a_short_heartbeat_limit(
    gunicorn, stack: Stack
) -> None:
    """uvicorn-worker beats every timeout/2 on its own (15 s here): we make it beat every
    second, so a 3 s limit holds on an idle pod. (Sync workers: start-up refuses a limit
    <= timeout/2, tests/test_startup_refusals.py; here timeout 4 lets 3 s pass.)"""
    probe_port = _free_port()
    env = {"ZDT_PROBE_BIND": f"127.0.0.1:{probe_port}", "ZDT_HEARTBEAT_TIMEOUT_SECONDS": "3"}
    timeout = 4 if stack.worker_class == "sync" else 30
    _start(gunicorn, stack, env, f"timeout = {timeout}\n")
    statuses = []
    deadline = time.monotonic() + 6  # two heartbeat limits of idleness
    while time.monotonic() < deadline:
        statuses.append(request(probe_port, "/healthz/live").status)
        time.sleep(0.25)  # the kubelet's polling, faster
    assert set(statuses) == {200}, statuses


@pytest.mark.parametrize("stack", STACKS, ids=IDS)
def test_a_request_longer_than_graceful_timeout_is_named_as_cut(gunicorn, stack: Stack) -> None:
    """The serving table names what graceful_timeout cuts, for every worker class (the
    ASGI middleware publishes it under uvicorn-worker, which calls no request hook)."""
    probe_port = _free_port()
    env = {"ZDT_DRAIN_SECONDS": "1", "ZDT_PROBE_BIND": f"127.0.0.1:{probe_port}"}
    server = _start(gunicorn, stack, env, "graceful_timeout = 2\n")
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(request, server.port, "/work?ms=9000", timeout=20)

        def in_flight() -> bool:
            metrics = request(probe_port, "/metrics").body.decode()
            return bool(re.search(r"^gunicorn_zdt_requests_in_flight 1(\.0)?$", metrics, re.M))

        wait_until(in_flight, 10, "the slow request in flight", server.log)
        server.signal(signal.SIGTERM)
        assert server.wait_exit(20) == 0
        with pytest.raises(OSError):  # cut with its worker
            slow.result(10)
    log = server.log()
    assert re.search(r"cut at graceful_timeout: GET /work after [\d.]+ s \(worker \d+\)", log), log


# -- Django's database check ----------------------------------------------------------

_COUNT_CONNECTIONS = """
import json, os, sys, time
import django
from django.conf import settings
settings.configure(DATABASES={"default": {
    "ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1], "CONN_MAX_AGE": %(age)s}})
django.setup()
from django.db import connection
from django.db.backends.signals import connection_created
from gunicorn_zdt.checks import CheckRegistry
from gunicorn_zdt.django.db import django_db_ping

created = []
connection_created.connect(lambda **kw: created.append(1), weak=False)

def naive():  # what a check written the obvious way does
    with connection.cursor() as c:
        c.execute("SELECT 1")

def open_files():
    return sum(os.path.realpath(f"/proc/self/fd/{fd}") == sys.argv[1]
               for fd in os.listdir("/proc/self/fd"))

registry = CheckRegistry(2.0, 0.0)
registry.add("db", django_db_ping() if sys.argv[2] == "ours" else naive)
most_open, oks = 0, 0
for _ in range(20):
    oks += registry.run(["db"])[0].ok
    time.sleep(0.02)
    most_open = max(most_open, open_files())
print(json.dumps({"created": len(created), "most_open": most_open, "ok": oks}))
"""


@pytest.mark.parametrize(
    ("age", "created", "most_open"),
    [("None", 1, 1), ("60", 1, 1), ("0", 20, 0)],
    ids=["persistent", "max-age-60", "max-age-0"],
)
def test_django_db_check_reuses_one_connection_and_leaks_none(
    tmp_path, age: str, created: int, most_open: int
) -> None:
    """20 runs of the check: one connection reused (CONN_MAX_AGE > 0 or None), or one
    opened and closed per run (0, Django's default); never one left open per run, which
    is what the obvious check does (each run is a new thread, with its own connection)."""
    pytest.importorskip("django")
    db = str(tmp_path / "django.db")

    def count(which: str) -> dict[str, int]:
        script = _COUNT_CONNECTIONS % {"age": age}
        out = subprocess.run(
            [sys.executable, "-c", script, db, which],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return dict(json.loads(out.stdout))

    assert count("ours") == {"created": created, "most_open": most_open, "ok": 20}
    naive = count("naive")
    assert naive["ok"] == 20 and naive["created"] == 20, naive
    if age != "0":
        assert naive["most_open"] >= 10, naive  # one left open per run (until GC)
