"""Saturation: probe latency while every worker thread is busy, app port vs probe listener.

One real Gunicorn running the example app (2 gthread workers x 4 threads, SQLite) with the
probe listener on (``ZDT_PROBE_BIND``). ``wrk`` keeps 64 connections on ``GET /work?ms=200``
(8 threads, 64 requests in flight: every thread busy, the rest queued). Meanwhile a prober
sends, every 0.25 s on fresh connections with the kubelet's default 1 s timeout, the same
probe to both ports in turn:

* ``app port``: ``/healthz/live`` and ``/healthz/ready`` served by the Flask app, i.e. in the
  same queue as the traffic (what you get without the listener);
* ``listener``: the same paths on the probe listener (answers from shared memory).

Same server, same run, same load. Reports p50/p99/max latency, probes that missed the 1 s
timeout (a liveness failure x3 = a restart), and the ratios.

    python benchmarks/saturation.py [--seconds 15] [--out docs/results/saturation.md]
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

from _procs import stop_group

ROOT = Path(__file__).resolve().parents[1]
KUBELET_TIMEOUT = 1.0


def start(tmp: Path) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    log = tmp / "gunicorn.log"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'sat.db'}",
        "ZDT_PROBE_BIND": "127.0.0.1:0",
        "WEB_CONCURRENCY": "2",
        "PYTHONPATH": str(ROOT),
    }
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    cmd = [gunicorn, "-c", "example_app/gunicorn.conf.py", "-b", "127.0.0.1:0"]
    cmd += ["--no-control-socket", "--access-logfile", "/dev/null", "example_app.wsgi:app"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        app = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
        probe = re.search(r"probe listener at http://127\.0\.0\.1:(\d+)/", text)
        if app and probe and probe_once(int(app.group(1)), "/healthz/ready")[1] == 200:
            return proc, int(app.group(1)), int(probe.group(1)), log
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise SystemExit(f"gunicorn did not become ready:\n{log.read_text()}")


def probe_once(port: int, path: str) -> tuple[float, int | None]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=KUBELET_TIMEOUT)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return time.monotonic() - started, r.status
    except OSError:
        return time.monotonic() - started, None
    finally:
        conn.close()


def wrk(port: int, seconds: int, out: list[str]) -> None:
    cmd = [
        "wrk",
        "-t2",
        "-c64",
        f"-d{seconds}s",
        "--latency",
        f"http://127.0.0.1:{port}/work?ms=200",
    ]
    out.append(subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(seconds: int) -> tuple[list[dict[str, object]], str]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="zdt-sat-"))
    proc, app_port, probe_port, _log = start(tmp)
    samples: dict[tuple[str, str], list[tuple[float, int | None]]] = {}
    wrk_out: list[str] = []
    try:
        load = threading.Thread(target=wrk, args=(app_port, seconds, wrk_out))
        load.start()
        time.sleep(1.0)  # let wrk fill every thread before measuring
        end = time.monotonic() + seconds - 2

        def prober(where: str, port: int, path: str) -> None:
            got = samples.setdefault((where, path), [])
            while time.monotonic() < end:
                got.append(probe_once(port, path))
                time.sleep(0.25)

        probers = [
            threading.Thread(target=prober, args=(where, port, path))
            for path in ("/healthz/live", "/healthz/ready")
            for where, port in (("app port", app_port), ("listener", probe_port))
        ]
        for t in probers:
            t.start()
        for t in probers:
            t.join()
        load.join()
    finally:
        stop_group(proc)
    rows = []
    for (where, path), got in sorted(samples.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        times = [t for t, _ in got]
        rows.append(
            {
                "path": path,
                "where": where,
                "probes": len(got),
                "p50_ms": statistics.median(times) * 1000,
                "p99_ms": pct(times, 0.99) * 1000,
                "max_ms": max(times) * 1000,
                "missed": sum(1 for t, s in got if s is None or t >= KUBELET_TIMEOUT),
                "non_200": sum(1 for _, s in got if s not in (200, None)),
            }
        )
    return rows, wrk_out[0] if wrk_out else ""


def table(rows: list[dict[str, object]], wrk_text: str, seconds: int) -> str:
    lines = [
        f"Example app, 2 gthread workers x 4 threads, `wrk -t2 -c64 -d{seconds}s "
        "/work?ms=200` (every thread busy), each row probed by its own thread every 0.25 s after the last answer, fresh connection, "
        "1 s timeout. Measured by `python benchmarks/saturation.py`.",
        "",
        "| probe | answered by | probes | p50 ms | p99 ms | max ms | missed 1 s timeout | non-200 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| `{r['path']}` | {r['where']} | {r['probes']} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['missed']} | {r['non_200']} |"
        )
    by = {(r["where"], r["path"]): r for r in rows}
    lines.append("")
    for path in ("/healthz/live", "/healthz/ready"):
        a, b = by.get(("app port", path)), by.get(("listener", path))
        if a and b:
            lines.append(
                f"- `{path}`: p50 {a['p50_ms'] / max(b['p50_ms'], 0.001):.0f}x and max "  # type: ignore[operator]
                f"{a['max_ms'] / max(b['max_ms'], 0.001):.0f}x faster on the listener; "  # type: ignore[operator]
                f"missed timeouts {a['missed']} (app port) vs {b['missed']} (listener)"
            )
    req = re.search(r"(\d+) requests in", wrk_text)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", wrk_text)
    if req and rate:
        lines.append(f"- load: {req.group(1)} requests, {rate.group(1)} requests/s (wrk)")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows, wrk_text = run(args.seconds)
    text = table(rows, wrk_text, args.seconds)
    print(text)
    if args.out:
        args.out.write_text("# Saturation: probe latency with every worker thread busy\n\n" + text)


if __name__ == "__main__":
    main()
