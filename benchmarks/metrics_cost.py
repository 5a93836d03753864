"""What a Prometheus scrape every second costs the app: throughput with and without it.

One Gunicorn master (2 gthread workers x 4 threads, the gunicorn-zdt hooks, the probe
listener on 127.0.0.1) serves the example app's cheapest endpoint (``GET /``) to the same
keep-alive load as benchmarks/throughput.py, in alternating rounds: without scrapes, then
with ``GET /metrics`` on the listener once a second (the order flips every round, so a
drift of the machine does not favour one side). Prints requests/s per round, the medians,
their ratio (with / without) and the median of each round's own ratio, the scrape
latency, the probe listener's CPU time per scrape (the cost itself, independent of the
noise of a shared machine) and its RSS before and after.

Usage (from the repository root)::

    python benchmarks/metrics_cost.py [--rounds 5] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._procs import rss_kib, terminate_group  # noqa: E402
from benchmarks.throughput import python_load, wrk  # noqa: E402
from gunicorn_zdt.drill.pods import free_port, pod_environment  # noqa: E402

CONFIG = """\
control_socket_disable = True
worker_class = "gthread"
workers = 2
threads = 4
from gunicorn_zdt.hooks import install
install(globals())
"""
SCRAPE_EVERY_SECONDS = 1.0


class Server:
    """Gunicorn with the probe listener, in its own process group; ready when it says so."""

    def __init__(self, tmp: Path) -> None:
        self.port, self.probe_port = free_port(), free_port()
        conf = tmp / "gunicorn_bench.conf.py"
        conf.write_text(CONFIG)
        env = pod_environment({
            "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
            "ZDT_PROBE_BIND": f"127.0.0.1:{self.probe_port}",
            "ZDT_DRAIN_SECONDS": "1",
            "PYTHONPATH": str(REPO),
        })  # fmt: skip
        self.log_path = tmp / "gunicorn.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen(
            ["gunicorn", "-c", str(conf), "example_app.wsgi:app",
             "--bind", f"127.0.0.1:{self.port}"],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            if get(self.probe_port, "/healthz/ready")[0] == 200:
                found = re.search(r"probe listener at \S+ \(pid (\d+)\)", self.log_text())
                if found:
                    self.listener = int(found.group(1))
                    return
            time.sleep(0.05)  # start-up poll against a deadline
        self.stop()
        raise RuntimeError(f"gunicorn did not become ready:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        terminate_group(self.proc)
        self.log.close()


def get(port: int, path: str) -> tuple[int | None, int]:
    """(status or None, body bytes) of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, len(resp.read())
    except (OSError, http.client.HTTPException):
        return None, 0
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Scraper:
    """``GET /metrics`` every second on a schedule (not a sleep after each scrape)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latencies: list[float] = []
        self.failures = 0
        self.body_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            status, size = get(self.port, "/metrics")
            if status == 200:
                self.latencies.append(time.monotonic() - started)
                self.body_bytes = size
            else:
                self.failures += 1
            next_at += SCRAPE_EVERY_SECONDS
            self._stop.wait(max(0.0, next_at - time.monotonic()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    measure = wrk if shutil.which("wrk") else python_load
    tool = "wrk -t2 -c16" if shutil.which("wrk") else "python, 16 keep-alive clients"
    rates: dict[str, list[float]] = {"without scrapes": [], "scrape every 1 s": []}
    latencies: list[float] = []
    failures = 0
    listener_cpu = 0.0
    with tempfile.TemporaryDirectory(prefix="zdt-metrics-cost-") as tmp:
        server = Server(Path(tmp))
        try:
            get(server.probe_port, "/metrics")  # the listener imports prometheus_client once
            rss_before = rss_kib(server.listener)
            measure(server.port, 2)  # warm-up
            body_bytes = 0
            for r in range(args.rounds):
                order = list(rates) if r % 2 == 0 else list(reversed(rates))
                for name in order:
                    if name == "without scrapes":
                        rates[name].append(measure(server.port, args.seconds))
                    else:
                        cpu = cpu_seconds(server.listener)
                        with Scraper(server.probe_port) as scraper:
                            rates[name].append(measure(server.port, args.seconds))
                        listener_cpu += cpu_seconds(server.listener) - cpu
                        latencies += scraper.latencies
                        failures += scraper.failures
                        body_bytes = scraper.body_bytes
                    print(f"round {r + 1}: {name}: {rates[name][-1]:.0f} req/s", flush=True)
            rss_after = rss_kib(server.listener)
        finally:
            server.stop()
    medians = {name: statistics.median(v) for name, v in rates.items()}
    ratio = medians["scrape every 1 s"] / medians["without scrapes"]
    paired = statistics.median(
        w / wo for w, wo in zip(rates["scrape every 1 s"], rates["without scrapes"], strict=True)
    )
    ms = sorted(1000 * x for x in latencies)
    print()
    print(f"`python benchmarks/metrics_cost.py --rounds {args.rounds} --seconds {args.seconds}`; "
          f"{os.cpu_count()} CPU(s), load ({tool}) and server on one machine, "
          f"GET / on 2 gthread workers x 4 threads")  # fmt: skip
    print()
    print("| | median req/s | rounds |")
    print("|---|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {medians[name]:.0f} | {', '.join(f'{v:.0f}' for v in values)} |")
    print()
    print(f"Ratio with / without scrapes: **{ratio:.3f}** ({100 * (ratio - 1):+.1f} %); "
          f"median of the rounds' own ratios {paired:.3f}.")  # fmt: skip
    if ms:
        per_scrape = 1000 * listener_cpu / len(ms)
        print(f"Scrapes: {len(ms)} ({failures} failed), {body_bytes} bytes each; latency median "
              f"{statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms. Probe listener CPU: "
              f"{per_scrape:.1f} ms per scrape, {per_scrape / SCRAPE_EVERY_SECONDS / 10:.2f} % "
              "of one core at one scrape a second.")  # fmt: skip
    print(
        f"Probe listener RSS: {rss_before} KiB after the first scrape, {rss_after} KiB at the end."
    )
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
