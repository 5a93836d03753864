"""``GET /metrics`` on the probe listener: real Gunicorn masters, real promtool, real Prometheus.

Every number comes from shared memory; the tests load the app port with slow requests
(``/work?ms=...``) and read the listener, never a worker.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import gunicorn_zdt.runtime
from gunicorn_zdt.drill.pods import free_port
from gunicorn_zdt.runtime import probe_server, state
from tests.faults.helpers import PROBE_ENV, probe_port
from tests.support import Gunicorn, request, require_worker_class, slow_requests, wait_until

GTHREAD = 'worker_class = "gthread"\nthreads = 2\n'  # 2 workers x 2 threads
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def scrape(port: int, accept: str | None = None) -> tuple[str, bytes]:
    r = request(port, "/metrics", headers={"Accept": accept} if accept else None)
    assert r.status == 200, (r.status, r.body)
    return r.headers["content-type"], r.body


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape: (name, sorted labels) -> value."""
    _, body = scrape(port)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(port: int, name: str, **labels: str) -> float | None:
    return samples(port).get((name, tuple(sorted(labels.items()))))


def start(gunicorn: Any, **env: str) -> tuple[Gunicorn, int]:
    server = gunicorn(config=GTHREAD, env={**PROBE_ENV, **env}).start()
    return server, probe_port(server)


def test_exposition_passes_promtool_and_openmetrics_ends_with_eof(gunicorn):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    _, port = start(gunicorn)
    content_type, body = scrape(port)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30
    )
    assert check.returncode == 0, (check.stdout, check.stderr, body.decode())
    assert b"gunicorn_zdt_phase" in body

    content_type, body = scrape(port, accept=OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text; version=")
    assert body.endswith(b"# EOF\n")
    assert b"# UNIT gunicorn_zdt_drain_started_timestamp_seconds seconds\n" in body

    head = request(port, "/metrics", method="HEAD")
    assert (head.status, head.body) == (200, b"")
    assert int(head.headers["content-length"]) > 0
    assert request(port, "/metrics", method="POST").status == 405
    missing = request(port, "/nope")
    assert missing.status == 404 and "/metrics" in missing.json()["endpoints"]
    assert request(port, "/healthz/ready").status == 200  # the probes are unaffected


def test_in_flight_rises_while_slow_requests_run_and_falls_after(gunicorn):
    server, port = start(gunicorn)
    served_before = sum(
        v for (n, _), v in samples(port).items() if n == "gunicorn_zdt_worker_requests_served_total"
    )
    # Two slow requests: even if the kernel hands both to one worker, its 2 threads run
    # them (a request waiting for a thread in gthread's queue is not in flight yet).
    threads = slow_requests(server.port, 2, 3000)
    wait_until(
        lambda: value(port, "gunicorn_zdt_requests_in_flight") == 2, 5, "2 in flight", server.log
    )
    now = samples(port)
    per_worker = [v for (n, _), v in now.items() if n == "gunicorn_zdt_worker_requests_in_flight"]
    assert len(per_worker) == 2 and sum(per_worker) == 2, now
    assert now[("gunicorn_zdt_workers", ())] == 2
    assert now[("gunicorn_zdt_workers_busy", ())] == sum(1 for v in per_worker if v > 0)
    # Capacity and utilisation need the threads per worker, recorded by the master.
    assert now[("gunicorn_zdt_threads_capacity", ())] == 4
    assert now[("gunicorn_zdt_threads_utilisation_ratio", ())] == 0.5
    for t in threads:
        t.join(10)
    assert [t.status for t in threads] == [200, 200]
    wait_until(
        lambda: value(port, "gunicorn_zdt_requests_in_flight") == 0, 5, "0 in flight", server.log
    )
    served_after = sum(
        v for (n, _), v in samples(port).items() if n == "gunicorn_zdt_worker_requests_served_total"
    )
    assert served_after - served_before == 2


@pytest.mark.parametrize(
    ("config", "slots"),
    [
        pytest.param('worker_class = "sync"\n', 1, id="sync"),
        pytest.param('worker_class = "gthread"\nthreads = 3\n', 3, id="gthread"),
        pytest.param('worker_class = "gevent"\nworker_connections = 1000\n', 1, id="gevent"),
    ],
)
def test_utilisation_means_busy_request_slots_for_every_worker_class(gunicorn, config, slots):
    """One worker serving as much as it can reads 1.0 whatever the class: gevent's slot is
    its event loop (one CPU), not worker_connections (it read 0.003 with 3 in flight)."""
    require_worker_class(config)
    server = gunicorn(config=config + "workers = 1\n", env=PROBE_ENV).start()
    port = probe_port(server)
    assert value(port, "gunicorn_zdt_threads_capacity") == slots
    threads = slow_requests(server.port, slots, 3000)
    wait_until(
        lambda: value(port, "gunicorn_zdt_requests_in_flight") == slots, 5, "busy", server.log
    )
    assert value(port, "gunicorn_zdt_threads_utilisation_ratio") == 1.0
    for t in threads:
        t.join(10)
    assert [t.status for t in threads] == [200] * slots
    wait_until(
        lambda: value(port, "gunicorn_zdt_threads_utilisation_ratio") == 0, 5, "idle", server.log
    )


def test_phase_turns_draining_after_sigterm_then_stopping(gunicorn):
    server, port = start(gunicorn, ZDT_DRAIN_SECONDS="2")
    assert value(port, "gunicorn_zdt_phase", phase="serving") == 1
    assert value(port, "gunicorn_zdt_drain_started_timestamp_seconds") == 0
    assert value(port, "gunicorn_zdt_readiness_check_success", check="database") == 1
    slow = slow_requests(server.port, 1, 4000)  # keeps the graceful stop going
    wait_until(lambda: value(port, "gunicorn_zdt_requests_in_flight") == 1, 5, "in flight")
    sigterm = time.time()
    server.signal(signal.SIGTERM)
    wait_until(
        lambda: value(port, "gunicorn_zdt_phase", phase="draining") == 1, 2, "draining", server.log
    )
    assert value(port, "gunicorn_zdt_phase", phase="serving") == 0
    started = value(port, "gunicorn_zdt_drain_started_timestamp_seconds")
    assert started is not None and abs(started - sigterm) < 1, (started, sigterm)
    assert request(server.port, "/work?ms=0").status == 200  # traffic during the drain
    now = samples(port)
    assert now[("gunicorn_zdt_drain_requests_arrived_total", ())] == 1
    assert now[("gunicorn_zdt_drain_last_arrival_timestamp_seconds", ())] >= started
    wait_until(
        lambda: value(port, "gunicorn_zdt_phase", phase="stopping") == 1, 10, "stop", server.log
    )
    ended = value(port, "gunicorn_zdt_drain_ended_timestamp_seconds")
    assert ended is not None and ended - started >= 2 - 0.05, (started, ended)
    assert server.wait_exit(15) == 0
    slow[0].join(5)
    assert slow[0].status == 200  # finished inside the graceful stop


def test_without_prometheus_client_metrics_answer_501_with_the_fix_and_probes_still_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Import fails, as if absent (its submodules too: another test may have imported them).
    for name in [n for n in sys.modules if n.split(".")[0] == "prometheus_client"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "gunicorn_zdt.runtime.metrics", raising=False)
    # `from . import metrics` takes the package's attribute first: another test's import
    # of gunicorn_zdt.runtime.metrics must not make it succeed here.
    monkeypatch.delattr(gunicorn_zdt.runtime, "metrics", raising=False)
    shared = state.SharedState()
    shared.set_serving()
    config = probe_server.ProbeConfig("/healthz", 30.0, 1)
    status, headers, body = probe_server.respond(
        b"GET /metrics HTTP/1.1\r\n\r\n", shared, config, time.monotonic()
    )
    assert (status, headers["Content-Type"]) == (501, "application/json")
    assert json.loads(body)["fix"] == 'pip install "gunicorn-zdt[metrics]"'
    status, _, _ = probe_server.respond(
        b"GET /healthz/live HTTP/1.1\r\n\r\n", shared, config, time.monotonic()
    )
    assert status == 200


# -- a real Prometheus ----------------------------------------------------------------------


class Prometheus:
    """A real Prometheus on 127.0.0.1 scraping one target every second."""

    def __init__(self, binary: str, tmp: Path, target: str) -> None:
        self.port = free_port()
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: gunicorn-zdt\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.log_path = tmp / "prometheus.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return json.load(r)["data"]
        except OSError:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log()}") from None
            return None

    def target_up(self) -> bool:
        data = self.api("/api/v1/targets")
        return bool(data) and any(t["health"] == "up" for t in data["activeTargets"])

    def query(self, promql: str) -> list[Any]:
        data = self.api("/api/v1/query", query=promql)
        return data["result"] if data else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (Debian package prometheus)")
    started: list[Prometheus] = []

    def make(target: str) -> Prometheus:
        (tmp_path / "prometheus").mkdir()
        started.append(Prometheus(binary, tmp_path / "prometheus", target))
        return started[-1]

    yield make
    for p in started:
        p.stop()


def test_real_prometheus_sees_in_flight_under_load_and_the_drain_after_sigterm(
    gunicorn, prometheus
):
    server, port = start(gunicorn, ZDT_DRAIN_SECONDS="4")
    prom = prometheus(f"127.0.0.1:{port}")
    wait_until(prom.target_up, 30, "the listener up in /api/v1/targets", prom.log)

    load = slow_requests(server.port, 4, 3000)
    rising = wait_until(
        lambda: prom.query("gunicorn_zdt_requests_in_flight > 0"), 10, "in flight > 0", prom.log
    )
    assert float(rising[0]["value"][1]) > 0
    for t in load:
        t.join(10)
    assert [t.status for t in load] == [200] * 4

    server.signal(signal.SIGTERM)
    draining = wait_until(
        lambda: prom.query('gunicorn_zdt_phase{phase="draining"} == 1'), 10, "draining", prom.log
    )
    assert draining[0]["metric"]["job"] == "gunicorn-zdt"
    assert server.wait_exit(20) == 0
