"""Probe storm: readiness latency and database load, gunicorn-zdt vs a hand-written probe.

Runs, side by side in one run, a real Gunicorn (2 gthread workers x 4 threads) serving
``benchmarks/storm_app.py`` in two modes:

* ``naive``: a readiness view that queries the database on every probe (the usual code);
* ``zdt``: gunicorn-zdt's Probes (single-flight, 1 s cache, 1 s check timeout),

each with a fast dependency (``SELECT`` in ~0 ms) and a slow one (~300 ms), under an
open-loop storm of 1, 100 and 1000 probes/s on fresh connections (as the kubelet and load
balancers probe). It reports probe latency p50/p99, probes slower than the kubelet's
default 1 s timeout, failed probes, and database queries per second caused by probes.

    python benchmarks/probe_storm.py [--seconds 5] [--out docs/results/probe_storm.md]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _procs import stop_group

ROOT = Path(__file__).resolve().parents[1]
KUBELET_TIMEOUT = 1.0


def start_server(mode: str, query_ms: int, tmp: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    count = tmp / f"{mode}-{query_ms}.count"
    conf = tmp / "storm.conf.py"
    conf.write_text(
        'worker_class = "gthread"\nthreads = 4\nworkers = 2\ncontrol_socket_disable = True\n'
        "from gunicorn_zdt.hooks import install\ninstall(globals())\n"
    )
    env = {
        **os.environ,
        "STORM_MODE": mode,
        "STORM_QUERY_MS": str(query_ms),
        "STORM_COUNT_FILE": str(count),
        "STORM_DB": str(tmp / "storm.db"),
        "PYTHONPATH": str(ROOT),
    }
    log = tmp / f"{mode}-{query_ms}.log"
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    proc = subprocess.Popen(
        [gunicorn, "-c", str(conf), "-b", "127.0.0.1:0", "benchmarks.storm_app:app"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text())
        booted = log.read_text().count("Booting worker") >= 2
        if m and booted:
            port = int(m.group(1))
            probe(port)  # warm up: first connection per worker
            return proc, port, count
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"gunicorn did not start:\n{log.read_text()}")


def probe(port: int) -> tuple[float, int | None]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2 * KUBELET_TIMEOUT)
    try:
        conn.request("GET", "/healthz/ready")
        r = conn.getresponse()
        r.read()
        status: int | None = r.status
    except OSError:
        status = None
    finally:
        conn.close()
    return time.perf_counter() - started, status


def storm(port: int, rate: int, seconds: float) -> list[tuple[float, int | None]]:
    """Open loop: probe i is sent at i/rate seconds, whether earlier ones answered or not."""
    results: list[tuple[float, int | None]] = []
    lock = threading.Lock()
    total = max(1, int(rate * seconds))

    def one() -> None:
        res = probe(port)
        with lock:
            results.append(res)

    with ThreadPoolExecutor(max_workers=min(512, max(4, rate // 2))) as pool:
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # the modelled arrival schedule, not a synchronisation
            pool.submit(one)
    return results


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run(seconds: float, rates: list[int]) -> list[dict[str, object]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for query_ms in (0, 300):
            for mode in ("naive", "zdt"):
                proc, port, count = start_server(mode, query_ms, tmp)
                try:
                    for rate in rates:
                        before = count.stat().st_size if count.exists() else 0
                        t0 = time.perf_counter()
                        results = storm(port, rate, seconds)
                        elapsed = time.perf_counter() - t0
                        queries = (count.stat().st_size if count.exists() else 0) - before
                        lat = [r[0] for r in results]
                        rows.append(
                            {
                                "dependency": f"{query_ms} ms",
                                "mode": mode,
                                "rate": rate,
                                "probes": len(results),
                                "p50_ms": percentile(lat, 50) * 1000,
                                "p99_ms": percentile(lat, 99) * 1000,
                                "over_1s": sum(x > KUBELET_TIMEOUT for x in lat),
                                "failed": sum(s != 200 for _, s in results),
                                "db_qps": queries / elapsed,
                            }
                        )
                        print(rows[-1], flush=True)
                finally:
                    stop_group(proc)
    return rows


def table(rows: list[dict[str, object]], seconds: float) -> str:
    out = [
        f"Probe storm, {seconds:g} s per cell, fresh connection per probe, 2 gthread workers x 4 "
        "threads, 2 cores shared by server and load generator.",
        "",
        "| dependency | probes/s | mode | probes | p50 ms | p99 ms | > 1 s | non-200 | DB queries/s | p99 ratio naive/zdt | DB ratio naive/zdt |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    by_key = {(r["dependency"], r["rate"], r["mode"]): r for r in rows}
    for r in rows:
        ratio_p99 = ratio_db = ""
        if r["mode"] == "zdt":
            naive = by_key[(r["dependency"], r["rate"], "naive")]
            ratio_p99 = f"{naive['p99_ms'] / max(r['p99_ms'], 1e-9):.1f}x"  # type: ignore[operator]
            ratio_db = f"{naive['db_qps'] / max(r['db_qps'], 1e-9):.1f}x"  # type: ignore[operator]
        out.append(
            f"| {r['dependency']} | {r['rate']} | {r['mode']} | {r['probes']} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['over_1s']} | {r['failed']} | {r['db_qps']:.1f} | "
            f"{ratio_p99} | {ratio_db} |"
        )
    out += [
        "",
        "A probe is abandoned after 2 s (twice the kubelet's default timeout) and counted as "
        "non-200: where the naive view queues, its latencies are capped there, so those "
        "p99 ratios understate the difference.",
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="1,100,1000")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "probe_storm.md")
    args = parser.parse_args()
    rates = [int(x) for x in args.rates.split(",")]
    text = table(run(args.seconds, rates), args.seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
