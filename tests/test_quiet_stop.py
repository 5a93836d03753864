"""A graceful stop under load logs no traceback and no ERROR, for every worker class we support.

A rollout stops every pod: an ERROR line or a traceback at each stop would be noise that
hides real faults (seen: gevent workers logged `OSError: [Errno 22] Invalid argument` and
`<StreamServer ...> failed` when the master shut the listening socket under them).
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from tests.support import request, require_worker_class

WORKER_CLASSES = ["sync", "gthread", "gevent"]


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_graceful_stop_under_load_logs_no_traceback_and_no_error(gunicorn, worker_class) -> None:
    require_worker_class(worker_class)
    threads = "threads = 4\n" if worker_class == "gthread" else ""
    server = gunicorn(
        config=f'worker_class = "{worker_class}"\n{threads}workers = 2\nkeepalive = 1\n',
        env={
            "ZDT_DRAIN_SECONDS": "0.5",
            "ZDT_DRAIN_QUIET_SECONDS": "0.3",
            "ZDT_DRAIN_MAX_SECONDS": "1.5",
        },
    ).start()
    stop = threading.Event()
    answered: list[int] = []

    def load() -> None:
        while not stop.is_set():
            try:
                answered.append(request(server.port, "/work?ms=20", timeout=5).status)
            except OSError:
                time.sleep(0.01)  # refused once the listeners shut: keep knocking

    clients = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for c in clients:
        c.start()
    try:
        server.wait_for_log(r"Booting worker", count=2)
        time.sleep(0.3)  # load pacing: traffic before SIGTERM, not synchronisation
        server.signal(signal.SIGTERM)
        server.wait_for_log("listeners shut")
        assert server.wait_exit(30) == 0
    finally:
        stop.set()
        for c in clients:
            c.join(10)
    log = server.log()
    assert answered and set(answered) == {200}, set(answered)
    bad = [line for line in log.splitlines() if "Traceback" in line or "ERROR" in line]
    bad += [line for line in log.splitlines() if "failed with" in line or "Errno" in line]
    assert bad == [], log
