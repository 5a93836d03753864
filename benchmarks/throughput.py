"""The request path's cost, and how fast readiness flips on SIGTERM.

1. Throughput of the example app's cheapest endpoint (``GET /``: no database) under
   Gunicorn with the gunicorn-zdt hooks (example_app/gunicorn.conf.py) and without
   (example_app/gunicorn_plain.conf.py), same workers/threads, alternated in one run;
   reported as requests/s and the ratio. Uses ``wrk`` (Debian package ``wrk``); when it
   is missing, a Python keep-alive load generator is used instead and the table says so.
2. Time from SIGTERM to the master until every worker's ``/healthz/ready`` answers 503:
   clients hammer the readiness endpoint on fresh connections (so every worker is hit);
   a WSGI wrapper adds the answering worker's pid; per worker we take the first 503 and
   check that no request sent after SIGTERM got a 200.

Usage (from the repository root)::

    python benchmarks/throughput.py [--rounds 3] [--seconds 10] [--flips 5]

Writes docs/results/throughput.md and throughput.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._procs import terminate_group  # noqa: E402
from gunicorn_zdt.drill.load import ClientConnection  # noqa: E402
from gunicorn_zdt.drill.pods import free_port, pod_environment  # noqa: E402

CONFIGS = {
    "without gunicorn-zdt": "example_app/gunicorn_plain.conf.py",
    "with gunicorn-zdt": "example_app/gunicorn.conf.py",
}
PATH = "/"
# The example app with the answering worker's pid in a header (for the flip benchmark).
PID_APP = "benchmarks.throughput:pid_app"


def pid_app(environ, start_response):  # type: ignore[no-untyped-def]
    from example_app.wsgi import app

    def start(status, headers, exc_info=None):  # type: ignore[no-untyped-def]
        return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

    return app(environ, start)


class Server:
    """One Gunicorn master in its own process group, ready when GET / answers."""

    def __init__(self, config: str, app: str, tmp: Path, workers: int) -> None:
        self.port = free_port()
        env = pod_environment({
            "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
            "WEB_CONCURRENCY": str(workers),
            "ZDT_DRAIN_SECONDS": "2",
            "PYTHONPATH": str(REPO),
        })  # fmt: skip
        self.log = open(tmp / f"gunicorn-{self.port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["gunicorn", "-c", config, app, "--bind", f"127.0.0.1:{self.port}"],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if ClientConnection(self.port, 2).request("GET", "/healthz/ready").status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)  # start-up poll against a deadline
        self.stop()
        raise RuntimeError(f"gunicorn {config} did not become ready; see {self.log.name}")

    def stop(self) -> None:
        terminate_group(self.proc)
        self.log.close()


def wrk(port: int, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    if errors:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def python_load(port: int, seconds: int, threads: int = 16) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def client(i: int) -> None:
        conn = ClientConnection(port, 10)
        while time.monotonic() < stop:
            if conn.request("GET", PATH).status != 200:
                raise RuntimeError("non-200 response")
            counts[i] += 1

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / seconds


def throughput(args: argparse.Namespace, tmp: Path) -> dict:
    tool = "wrk -t2 -c16" if shutil.which("wrk") else "python (wrk not installed)"
    measure = wrk if shutil.which("wrk") else python_load
    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _round in range(args.rounds):
        for name, config in CONFIGS.items():
            server = Server(config, "example_app.wsgi:app", tmp, workers=2)
            try:
                measure(server.port, 2)  # warm-up
                rates[name].append(measure(server.port, args.seconds))
            finally:
                server.stop()
            print(f"{name}: {rates[name][-1]:.0f} req/s", flush=True)
    medians = {name: statistics.median(v) for name, v in rates.items()}
    ratio = medians["with gunicorn-zdt"] / medians["without gunicorn-zdt"]
    return {"tool": tool, "path": PATH, "rates": rates, "medians": medians, "ratio": ratio}


def flip_once(tmp: Path, workers: int) -> dict:
    server = Server("example_app/gunicorn.conf.py", PID_APP, tmp, workers=workers)
    results: list[tuple[float, float, int, str]] = []  # (sent, received, status, pid)
    done = threading.Event()
    term_at = [0.0]

    def client() -> None:
        while not done.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            sent = time.monotonic()
            try:
                conn.request("GET", "/healthz/ready")
                resp = conn.getresponse()
                resp.read()
                results.append((sent, time.monotonic(), resp.status,
                                resp.getheader("X-Worker-Pid", "?")))  # fmt: skip
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()

    threads = [threading.Thread(target=client) for _ in range(2 * workers)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)  # steady probing before the signal (a measurement window)
        term_at[0] = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)
        time.sleep(1.0)  # the drain is 2 s: observe its first second
        done.set()
        for t in threads:
            t.join()
    finally:
        server.stop()
    t0 = term_at[0]
    pids = {pid for _, _, _, pid in results}
    first_503 = {}
    for _sent, received, status, pid in sorted(results, key=lambda r: r[1]):
        if status == 503 and pid not in first_503:
            first_503[pid] = received - t0
    late_200 = [r for r in results if r[0] > t0 and r[2] == 200]
    return {
        "workers_seen": len(pids),
        "workers_flipped": len(first_503),
        "all_workers_503_after_ms": 1000 * max(first_503.values()) if first_503 else None,
        "first_503_after_ms": 1000 * min(first_503.values()) if first_503 else None,
        "200s_to_requests_sent_after_sigterm": len(late_200),
        "probes": len(results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--flips", type=int, default=5)
    parser.add_argument("--flip-workers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zdt-throughput-") as tmp_name:
        tmp = Path(tmp_name)
        tp = throughput(args, tmp)
        flips = [flip_once(tmp, args.flip_workers) for _ in range(args.flips)]
    for f in flips:
        print(f, flush=True)
    alls = [f["all_workers_503_after_ms"] for f in flips if f["all_workers_503_after_ms"]]
    cpu = os.cpu_count()
    md = [
        "# Request path benchmarks",
        "",
        f"Machine: {cpu} CPU(s), load generator and server on the same machine. "
        "Generated by `python benchmarks/throughput.py "
        f"--rounds {args.rounds} --seconds {args.seconds} --flips {args.flips}`.",
        "",
        f"## Throughput of `GET {tp['path']}` ({tp['tool']}, {args.seconds} s, "
        f"{args.rounds} alternating rounds, 2 gthread workers x 4 threads)",
        "",
        "| config | median req/s | runs |",
        "|---|---|---|",
    ]
    for name, rates in tp["rates"].items():
        md.append(f"| {name} | {tp['medians'][name]:.0f} | "
                  + ", ".join(f"{r:.0f}" for r in rates) + " |")  # fmt: skip
    md += [
        "",
        f"Ratio with / without: **{tp['ratio']:.3f}**.",
        "",
        f"## SIGTERM to every worker's readiness 503 ({args.flip_workers} workers, "
        f"{args.flips} runs)",
        "",
        "| run | workers seen | workers flipped | first 503 after | every worker 503 after | "
        "200s to probes sent after SIGTERM |",
        "|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(flips, 1):
        md.append(
            f"| {i} | {f['workers_seen']} | {f['workers_flipped']} | "
            f"{f['first_503_after_ms']:.1f} ms | {f['all_workers_503_after_ms']:.1f} ms | "
            f"{f['200s_to_requests_sent_after_sigterm']} |"
        )
    if alls:
        md += ["", f"Median time until every worker says 503: "
               f"**{statistics.median(alls):.1f} ms** (max {max(alls):.1f} ms); this is an "
               "upper bound: it includes the probe round trip on a busy 2-core machine."]  # fmt: skip
    text = "\n".join(md) + "\n"
    (args.out / "throughput.md").write_text(text)
    (args.out / "throughput.json").write_text(
        json.dumps({"throughput": tp, "flips": flips}, indent=1) + "\n"
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
