"""The probe listener's memory over a long run with a Prometheus scrape every second.

Starts the example app under its shipped config (2 gthread workers, the probe listener on a
free port), keeps light traffic on the app (a request every 20 ms) so the numbers the scrape
reads keep changing, scrapes ``/metrics`` and probes ``/healthz/ready`` on the listener once
a second, and samples the listener's RSS and open file descriptors every 10 s.

    python benchmarks/listener_memory.py [--minutes 10] [--out docs/results/listener_memory.md]

Flat means: RSS after the first minute (imports done, first scrape rendered) and at the end
differ by less than 1 MiB, and the fd count is back where it started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._procs import rss_kib  # noqa: E402


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        r.read()
        return int(r.status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="zdt-listener-memory-"))
    env = dict(
        os.environ,
        ZDT_PROBE_BIND="127.0.0.1:0",
        DATABASE_URL=f"sqlite:///{tmp / 'app.db'}",
        XDG_RUNTIME_DIR=str(tmp),
    )
    log_path = tmp / "gunicorn.log"
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    cmd = [gunicorn, "-c", "example_app/gunicorn.conf.py", "-b", "127.0.0.1:0"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*cmd, "example_app.wsgi:app"], cwd=REPO, env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            text = log_path.read_text()
            app = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
            listener = re.search(
                r"probe listener at http://127\.0\.0\.1:(\d+)/\S+ \(pid (\d+)\)", text
            )
            if app and listener:
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"Gunicorn did not start:\n{text}")
            time.sleep(0.1)  # start-up poll against the deadline above
        app_url = f"http://127.0.0.1:{app.group(1)}"
        probe_url = f"http://127.0.0.1:{listener.group(1)}"
        pid = int(listener.group(2))
        while True:  # ready: the workers published their first check results
            with contextlib.suppress(OSError):
                if get(probe_url + "/healthz/ready") == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"the listener never answered ready:\n{log_path.read_text()}")
            time.sleep(0.1)  # start-up poll against the deadline above
        stop = threading.Event()

        def traffic() -> None:
            while not stop.wait(0.02):
                with contextlib.suppress(OSError):
                    get(app_url + "/")

        threading.Thread(target=traffic, daemon=True).start()
        started = time.monotonic()
        end = started + args.minutes * 60
        samples: list[tuple[float, int, int]] = [(0.0, rss_kib(pid), fds(pid))]
        scrapes = failed = 0
        next_sample = started + 10
        while time.monotonic() < end:
            tick = time.monotonic()
            for path in ("/metrics", "/healthz/ready"):
                try:
                    ok = get(probe_url + path) == 200
                except OSError:
                    ok = False
                scrapes += path == "/metrics"
                failed += not ok
            if tick >= next_sample:
                samples.append((round(tick - started), rss_kib(pid), fds(pid)))
                next_sample += 10
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))  # one scrape a second
        stop.set()
        samples.append((round(time.monotonic() - started), rss_kib(pid), fds(pid)))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    after_first_minute = next(s for s in samples if s[0] >= 60) if args.minutes >= 1 else samples[0]
    last = samples[-1]
    lines = [
        "# Probe listener memory with a scrape every second",
        "",
        f"`python benchmarks/listener_memory.py --minutes {args.minutes:g}`: the example app "
        "(shipped config, listener on a free port), a request to the app every 20 ms, "
        "`/metrics` and `/healthz/ready` on the listener once a second each.",
        "",
        f"- scrapes: {scrapes}, failed requests to the listener: {failed}",
        f"- listener RSS: {samples[0][1]} KiB at start, {after_first_minute[1]} KiB after "
        f"{after_first_minute[0]} s, {last[1]} KiB at the end ({last[0]} s): "
        f"{last[1] - after_first_minute[1]:+d} KiB since the first minute",
        f"- listener fds: {samples[0][2]} at start, {last[2]} at the end",
        "",
        "| seconds | RSS KiB | fds |",
        "| --- | --- | --- |",
        *[f"| {t} | {r} | {f} |" for t, r, f in samples[:: max(1, len(samples) // 12)]],
        f"| {last[0]} | {last[1]} | {last[2]} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
