"""The drain a user gets without ZDT_DRAIN_MAX_SECONDS, against the fixed drain it replaced.

Same example app and config (example_app/gunicorn.conf.py: gthread, timeout 20), both with
only ``ZDT_DRAIN_SECONDS=5`` and ``ZDT_GRACE_PERIOD_SECONDS=40`` set, alternated in one run:

* fixed:   ``ZDT_DRAIN_MAX_SECONDS=5`` (what an unset maximum meant before: drain = minimum)
* default: no maximum (derived at start: 40 - 0 - 2 - timeout 20 = 18 s)

Load: after SIGTERM a client opens a new connection every 50 ms for ``--traffic`` seconds
(an endpoint propagation slower than the minimum) and sends ``GET /work?ms=0``; every
request that gets no 200 (refused, reset, timeout) counts as failed. Usage::

    python benchmarks/default_window.py [--rounds 2] [--traffic 8]

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._procs import stop_group  # noqa: E402

BASE_ENV = {"ZDT_DRAIN_SECONDS": "5", "ZDT_GRACE_PERIOD_SECONDS": "40", "ZDT_PROBE_BIND": "off"}
VARIANTS = {"fixed": {"ZDT_DRAIN_MAX_SECONDS": "5"}, "default": {}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int) -> int | None:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        c.request("GET", "/work?ms=0")
        status = c.getresponse().status
        c.close()
        return status
    except OSError:
        return None


def one_round(variant: str, traffic: float, tmp: Path) -> dict[str, float]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZDT_")}
    env.update({**BASE_ENV, **VARIANTS[variant], "PORT": str(port)})
    env["DATABASE_URL"] = f"sqlite:///{tmp / f'{variant}.db'}"
    log = tmp / f"{variant}.log"
    cmd = [str(Path(sys.executable).with_name("gunicorn")), "-c", "example_app/gunicorn.conf.py"]
    cmd += ["--bind", f"127.0.0.1:{port}", "example_app.wsgi:app"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 30
        while _get(port) != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"{variant}: not serving:\n{log.read_text()}")
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGTERM)
        sigterm = time.monotonic()
        sent = failed = 0
        while time.monotonic() - sigterm < traffic:
            sent += 1
            failed += _get(port) != 200
            time.sleep(0.05)
        proc.wait(60)
        exited = time.monotonic() - sigterm
    finally:
        if proc.poll() is None:
            stop_group(proc)
    report = re.search(r"termination report: drain ([\d.]+) s", log.read_text())
    return {
        "sent": sent,
        "failed": failed,
        "drain": float(report.group(1)) if report else float("nan"),
        "exit": exited,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--traffic", type=float, default=8.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for variant in VARIANTS:
                rows.append((variant, r + 1, one_round(variant, args.traffic, Path(tmp))))
    print("| variant | round | sent after SIGTERM | failed | drain (s) | exit after SIGTERM (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for variant, r, m in rows:
        print(
            f"| {variant} | {r} | {m['sent']:.0f} | {m['failed']:.0f} | {m['drain']:.2f} | "
            f"{m['exit']:.2f} |"
        )


if __name__ == "__main__":
    main()
