"""The probe listener dies: the master notices, respawns it on the same port, and says so.

Real Gunicorn with ``ZDT_PROBE_BIND=127.0.0.1:0`` (the kernel picks the port, so this also
proves a respawn comes back on the port first bound, not on a new random one).
"""

from __future__ import annotations

import os
import re
import signal

from tests.faults.helpers import PROBE_ENV, listener_pid, probe_port, status
from tests.support import request, wait_until


def test_a_killed_listener_is_respawned_on_the_same_port_and_counted(gunicorn) -> None:
    server = gunicorn(config='worker_class = "gthread"\nthreads = 2\n', env=PROBE_ENV).start()
    port, first = probe_port(server), listener_pid(server)
    assert status(port, "/healthz/live") == 200

    os.kill(first, signal.SIGKILL)
    server.wait_for_log(rf"the probe listener \(pid {first}\) exited")
    (second,) = server.wait_for_log(r"probe listener respawned \(pid (\d+)\)")
    assert int(second) != first
    # Same port as before (bound as 0): the kubelet's probes find it again.
    wait_until(lambda: status(port, "/healthz/live") == 200, 10, "liveness on the old port")
    assert status(port, "/healthz/ready") == 200
    # The master's loop kept serving the app meanwhile, and the restart is counted.
    assert server.get("/healthz/ready").status == 200
    metrics = request(port, "/metrics").body.decode()
    assert re.search(r"^gunicorn_zdt_probe_listener_restarts_total 1(\.0)?$", metrics, re.M), (
        metrics
    )
