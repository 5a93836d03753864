"""Plain Gunicorn vs gunicorn-zdt behind a real nginx with upstream keep-alive, in one run.

    python benchmarks/nginx.py [--steady 60] [--recycle 40] [--out docs/results]

The example app under its two configs (``example_app/gunicorn_plain.conf.py``: no hooks,
Gunicorn's default ``keepalive`` 2; ``example_app/gunicorn.conf.py``: our hooks, the
ready-made ``keepalive`` 75), each behind Debian's nginx set up as most deployments have it
(``gunicorn_zdt.drill.nginx``: ``keepalive 32``, HTTP/1.1, ``Connection ""``, default
``proxy_next_upstream`` and ``max_fails``), with a 10 ms relay as the pod network between
nginx and each Gunicorn (``tests/netdelay.py``). No client retries. Rows:

* steady state: 3 lanes of one client -> nginx (its default ``keepalive_timeout`` 60 s) ->
  one Gunicorn, idle gaps of 1.8-2.2 s between requests (a low-traffic service);
* recycling: 2 Gunicorns behind one nginx, ``max_requests`` 200 (+50 jitter), 8 clients with
  0-0.2 s gaps;
* rollout: 2 old pods replaced by 2 new ones one at a time, nginx's upstream list rewritten
  and reloaded 1 s (and 6 s) after each SIGTERM, 8 clients with 0-1.5 s gaps; gunicorn-zdt
  with ``ZDT_DRAIN_SECONDS`` = propagation + 2.

Writes ``OUT/nginx.json`` and ``OUT/nginx.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._procs import stop_group  # noqa: E402
from gunicorn_zdt.drill.gaps import GapTraffic  # noqa: E402
from gunicorn_zdt.drill.nginx import Nginx  # noqa: E402
from tests.netdelay import DelayRelay  # noqa: E402

CONFIGS = {
    "plain Gunicorn": "example_app/gunicorn_plain.conf.py",
    "gunicorn-zdt": "example_app/gunicorn.conf.py",
}
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


class Pod:
    def __init__(self, work: Path, config: str, db: Path, extra: list[str], env: dict[str, str]):
        work.mkdir(parents=True, exist_ok=True)
        self.log = work / "gunicorn.log"
        full_env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{db}",
            "ZDT_PROBE_BIND": "off",
            "WEB_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        cmd = [GUNICORN, "-c", config, "--bind", "127.0.0.1:0", *extra, "example_app.wsgi:app"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.port = 0
        deadline = time.monotonic() + 30
        while not self.port:
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.log.read_text())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start: {self.log.read_text()[-2000:]}")
            else:
                time.sleep(0.05)  # start-up poll against the deadline above
        # Ready: the app answers (its schema exists) through no proxy.
        while True:
            try:
                import http.client

                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/healthz/ready")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn never ready: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)  # readiness poll against the deadline above

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop_group(self.proc)


def _stored(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM items")}


def _result(traffic: list[GapTraffic], proxies: list[Nginx], db: Path) -> dict[str, Any]:
    outcomes = [o for t in traffic for o in t.outcomes]
    acked = {i for t in traffic for i in t.acknowledged_ids()}
    return {
        "requests": len(outcomes),
        "failed": sum(o.failed for o in outcomes),
        "failed_posts": sum(o.failed and o.method == "POST" for o in outcomes),
        "retried_by_nginx": sum(
            r.upstream_failed and r.status < 500 for p in proxies for r in p.requests()
        ),
        "acknowledged_writes": len(acked),
        "lost_writes": len(acked - _stored(db)),
        # What each failure was, for the reader of nginx.json.
        "failures": [f"{o.method} {o.status or o.error}" for o in outcomes if o.failed][:20],
        "nginx_errors": [line[20:220] for p in proxies for line in p.error_lines()][:20],
    }


def steady(work: Path, config: str, seconds: float) -> dict[str, Any]:
    db = work / "items.db"
    pods, relays, proxies, traffic = [], [], [], []
    try:
        for i in range(3):
            pods.append(Pod(work / f"pod{i}", config, db, ["--workers", "1"], {}))
            relays.append(DelayRelay(pods[-1].port, 0.01))
            proxies.append(Nginx(work / f"nginx{i}", upstream_idle_seconds=60))
            port = proxies[-1].start([relays[-1].port])
            traffic.append(
                GapTraffic(port, clients=1, gap_windows=((1.8, 2.2),), seed=i, prefix=f"s{i}")
            )
        for t in traffic:
            t.start()
        time.sleep(seconds)  # the measured period
        for t in traffic:
            t.stop()
        return _result(traffic, proxies, db)
    finally:
        for p in proxies:
            p.stop()
        for r in relays:
            r.close()
        for pod in pods:
            pod.stop()


def recycle(work: Path, config: str, seconds: float) -> dict[str, Any]:
    db = work / "items.db"
    extra = ["--max-requests", "200", "--max-requests-jitter", "50"]
    pods = [Pod(work / f"pod{i}", config, db, extra, {}) for i in range(2)]
    relays = [DelayRelay(p.port, 0.01) for p in pods]
    proxy = Nginx(work / "nginx", upstream_idle_seconds=60)
    try:
        port = proxy.start([r.port for r in relays])
        traffic = GapTraffic(port, clients=8, gap_windows=((0.0, 0.2),)).start()
        time.sleep(seconds)  # the measured period
        traffic.stop()
        out = _result([traffic], [proxy], db)
        out["recycled_workers"] = sum(
            p.log.read_text().count("Autorestarting worker") for p in pods
        )
        return out
    finally:
        proxy.stop()
        for r in relays:
            r.close()
        for p in pods:
            p.stop()


def rollout(work: Path, config: str, propagation: float) -> dict[str, Any]:
    db = work / "items.db"
    env = {"ZDT_DRAIN_SECONDS": f"{propagation + 2:g}"}
    old = [Pod(work / f"old{i}", config, db, [], env) for i in range(2)]
    relays = {p.port: DelayRelay(p.port, 0.01) for p in old}
    proxy = Nginx(work / "nginx", upstream_idle_seconds=60)
    new: list[Pod] = []
    try:
        port = proxy.start([relays[p.port].port for p in old])
        traffic = GapTraffic(port, clients=8, gap_windows=((0.0, 1.5),)).start()
        time.sleep(2)  # steady state before the rollout
        new = [Pod(work / f"new{i}", config, db, [], env) for i in range(2)]
        relays.update({p.port: DelayRelay(p.port, 0.01) for p in new})
        live = [*old, *new]
        proxy.reload([relays[p.port].port for p in live])
        for pod in old:
            os.killpg(pod.proc.pid, signal.SIGTERM)
            time.sleep(propagation)  # the ingress controller's endpoint sync
            live.remove(pod)
            proxy.reload([relays[p.port].port for p in live])
            pod.proc.wait(60)
        time.sleep(2)  # after the rollout
        traffic.stop()
        return _result([traffic], [proxy], db)
    finally:
        proxy.stop()
        for r in relays.values():
            r.close()
        for p in [*old, *new]:
            p.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steady", type=float, default=60, help="seconds of the steady-state row")
    ap.add_argument("--recycle", type=float, default=40, help="seconds of the recycling row")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    args = ap.parse_args()
    started = time.monotonic()
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="zdt-nginx-") as tmp:
        for name, config in CONFIGS.items():
            slug = "plain" if name.startswith("plain") else "zdt"
            rows.setdefault("steady state, idle gaps 1.8-2.2 s", {})[name] = steady(
                Path(tmp) / f"{slug}-steady", config, args.steady
            )
            rows.setdefault("max_requests 200 (+50 jitter) under load", {})[name] = recycle(
                Path(tmp) / f"{slug}-recycle", config, args.recycle
            )
            for prop in (1.0, 6.0):
                rows.setdefault(f"rollout, upstream list reloaded {prop:g} s after SIGTERM", {})[
                    name
                ] = rollout(Path(tmp) / f"{slug}-rollout{prop:g}", config, prop)
    took = time.monotonic() - started
    nginx_version = subprocess.run(
        ["nginx", "-v"], capture_output=True, text=True, check=False
    ).stderr.strip()
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "seconds": round(took),
        "nginx": nginx_version,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nginx.json").write_text(json.dumps(result, indent=2) + "\n")

    def cell(r: dict[str, Any]) -> str:
        text = f"{r['failed']} of {r['requests']} failed"
        if r["failed_posts"]:
            text += f" ({r['failed_posts']} POSTs)"
        if r["retried_by_nginx"]:
            text += f", {r['retried_by_nginx']} retried by nginx"
        if "recycled_workers" in r:
            text += f"; {r['recycled_workers']} workers recycled"
        return text + f"; lost writes {r['lost_writes']}"

    lines = [
        f"# Behind a real nginx: plain Gunicorn vs gunicorn-zdt ({result['date']})",
        "",
        f"`python benchmarks/nginx.py --steady {args.steady:g} --recycle {args.recycle:g}`, "
        f"{result['nginx']}, one run of {result['seconds']} s on the project's 2-core machine.",
        "",
        "| scenario | plain Gunicorn (keepalive 2, no hooks) | gunicorn-zdt (keepalive 75) |",
        "| --- | --- | --- |",
    ]
    for scenario, by in rows.items():
        lines.append(f"| {scenario} | {cell(by['plain Gunicorn'])} | {cell(by['gunicorn-zdt'])} |")
    (args.out / "nginx.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
