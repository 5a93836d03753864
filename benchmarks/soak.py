"""Soak: the example app under steady load through N consecutive rolling updates.

Runs ``gunicorn_zdt.drill`` (kube-proxy Service model, the shipped ``k8s/deployment.yaml``,
time scale 0.2) against a real PostgreSQL server, with GETs, POSTs (every acknowledged write
verified afterwards) and slow requests, keep-alive and fresh connections, no retries. A
sampler thread reads /proc every 0.5 s while it runs:

* the pods: every Gunicorn master and worker started by the drill (children of this
  process and theirs): file descriptors, threads, RSS;
* PostgreSQL: backends connected to the app's database (``pg_stat_activity``);
* this process (load generator + Service model): file descriptors, threads.

"before" is the last sample before the first rolling update (the first pods, warmed up);
"after" the last sample after the last one (pods that lived through none of the earlier
ones, but served the same load). A leak per restart shows as after > before; a leak in
the long-lived process (load generator, balancer) too.

    python benchmarks/soak.py [--rollouts 20] [--out docs/results/soak.md]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gunicorn_zdt.drill.cli import EXAMPLE_COMMAND  # noqa: E402
from gunicorn_zdt.drill.load import LoadProfile  # noqa: E402
from gunicorn_zdt.drill.manifest import load_deployment  # noqa: E402
from gunicorn_zdt.drill.runner import DrillOptions, run_drill  # noqa: E402
from tests.postgres import Postgres  # noqa: E402

SCALE = 0.2


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _proc(pid: int) -> tuple[int, int, int] | None:
    """(fds, threads, RSS KiB) of ``pid``, or None if it is gone."""
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmRSS" not in values:  # exiting: no memory left to count
        return None
    return fds, int(values["Threads"]), int(values["VmRSS"].split()[0])


def _pods() -> list[dict[str, object]]:
    """Every pod (Gunicorn master) started by us, with its workers' totals."""
    tree = _children()
    pods = []
    for master in tree.get(os.getpid(), []):
        try:
            cmd = Path(f"/proc/{master}/cmdline").read_bytes()
        except OSError:
            continue
        if b"gunicorn" not in cmd:
            continue
        procs = [master, *tree.get(master, [])]
        stats = [s for s in map(_proc, procs) if s is not None]
        pods.append(
            {
                "master": master,
                "processes": len(stats),
                "fds": sum(s[0] for s in stats),
                "threads": sum(s[1] for s in stats),
                "rss_kib": sum(s[2] for s in stats),
            }
        )
    return pods


class Sampler(threading.Thread):
    def __init__(self, db_url: str, database: str) -> None:
        super().__init__(daemon=True)
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.engine = create_engine(db_url, poolclass=NullPool)
        self.database = database
        self.samples: list[dict[str, object]] = []
        self.phase = "warmup"
        self.done = threading.Event()

    def db_connections(self) -> int:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :d "
                    "AND pid <> pg_backend_pid()"
                ),
                {"d": self.database},
            ).scalar_one()

    def run(self) -> None:
        while not self.done.wait(0.5):
            try:
                self.sample()
            except Exception as exc:  # a process vanished mid-read: skip this sample
                print(f"soak: sample skipped: {exc!r}", file=sys.stderr)

    def sample(self) -> None:
        me = _proc(os.getpid())
        assert me is not None
        self.samples.append(
            {
                "t": time.monotonic(),
                "phase": self.phase,
                "pods": _pods(),
                "db_connections": self.db_connections(),
                "self_fds": me[0],
                "self_threads": me[1],
            }
        )


def summarize_sample(sample: dict[str, object]) -> dict[str, float]:
    pods: list[dict[str, int]] = sample["pods"]  # type: ignore[assignment]
    n = max(len(pods), 1)
    return {
        "pods": len(pods),
        "fds_per_pod": sum(p["fds"] for p in pods) / n,
        "threads_per_pod": sum(p["threads"] for p in pods) / n,
        "rss_mib_per_pod": sum(p["rss_kib"] for p in pods) / n / 1024,
        "db_connections": sample["db_connections"],  # type: ignore[dict-item]
        "drill_fds": sample["self_fds"],  # type: ignore[dict-item]
        "drill_threads": sample["self_threads"],  # type: ignore[dict-item]
    }


def steady(samples: list[dict[str, object]], phase: str, replicas: int) -> dict[str, float]:
    """The last sample of ``phase`` with exactly ``replicas`` pods running."""
    for sample in reversed(samples):
        if sample["phase"] == phase and len(sample["pods"]) == replicas:  # type: ignore[arg-type]
            return summarize_sample(sample)
    raise SystemExit(f"no steady sample in phase {phase!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=20)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    # SIGTERM unwinds like Ctrl-C: the drill stops every pod, the finally below PostgreSQL.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    work = Path(tempfile.mkdtemp(prefix="zdt-soak-"))
    pg = Postgres()
    pg.start()
    try:
        from sqlalchemy import create_engine, text

        admin = create_engine(pg.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE soak"))
        admin.dispose()
        db_url = pg.url.rsplit("/", 1)[0] + "/soak"
        spec = load_deployment(ROOT / "k8s/deployment.yaml")
        sampler = Sampler(pg.url, "soak")

        def say(message: str) -> None:
            print(message, file=sys.stderr, flush=True)
            if message.startswith("rolling update 1/"):
                sampler.phase = "rolling"
            if message.startswith("verifying"):
                sampler.phase = "after"

        opts = DrillOptions(
            command=EXAMPLE_COMMAND,
            spec=spec,
            service="kube-proxy",
            rollouts=args.rollouts,
            time_scale=SCALE,
            load=LoadProfile(write_path="/items", slow_path="/work?ms=300"),
            env={"DATABASE_URL": db_url},
            cwd=ROOT,
            work_dir=work,
            settle_seconds=10.0,  # x0.2 = 2 s of load on the last pods, sampled as "after"
            seed=11,
        )
        sampler.start()
        started = time.monotonic()
        result = run_drill(opts, say)
        elapsed = time.monotonic() - started
        sampler.done.set()
        sampler.join()
    finally:
        pg.destroy()

    replicas = spec.replicas
    rolling = [s for s in sampler.samples if s["phase"] == "rolling"]
    before = steady(sampler.samples, "warmup", replicas)
    # The last steady sample of the run: the final pods under load, after the last update.
    after = steady(rolling, "rolling", replicas)
    rss = [summarize_sample(s)["rss_mib_per_pod"] for s in rolling if s["pods"]]
    summary = {
        "rollouts": args.rollouts,
        "seconds": round(elapsed, 1),
        "requests": result["requests"],
        "failures": result["failures"],
        "failures_by_class": result["failures_by_class"],
        "writes_acknowledged": result["writes_acknowledged"],
        "lost_writes": result["lost_writes"],
        "unverified_writes": result["unverified_writes"],
        "pods_started": len(result["pods"]),
        "pods_sigkilled": sum(1 for p in result["pods"] if p.get("sigkilled")),
        "before": before,
        "after": after,
        "rss_mib_per_pod_during": {
            "min": round(min(rss), 1),
            "median": round(statistics.median(rss), 1),
            "max": round(max(rss), 1),
        },
    }
    text = render(summary)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if result["passed"] else 1


def render(s: dict) -> str:
    b, a = s["before"], s["after"]
    rows = [
        ("pods running", b["pods"], a["pods"]),
        ("file descriptors per pod (master + workers)", b["fds_per_pod"], a["fds_per_pod"]),
        ("threads per pod", b["threads_per_pod"], a["threads_per_pod"]),
        ("RSS per pod, MiB", b["rss_mib_per_pod"], a["rss_mib_per_pod"]),
        ("PostgreSQL connections to the app database", b["db_connections"], a["db_connections"]),
        ("drill process (load + Service): fds", b["drill_fds"], a["drill_fds"]),
        ("drill process: threads", b["drill_threads"], a["drill_threads"]),
    ]
    lines = [
        "# Soak: rolling updates under steady load",
        "",
        f"`python benchmarks/soak.py --rollouts {s['rollouts']}`: example app, shipped "
        f"`k8s/deployment.yaml` (3 replicas, maxSurge 1, maxUnavailable 0), kube-proxy "
        f"Service model, time scale {SCALE}, PostgreSQL, {s['seconds']} s.",
        "",
        "| result | value |",
        "| --- | --- |",
        f"| rolling updates | {s['rollouts']} |",
        f"| pods started / SIGKILLed by the grace period | {s['pods_started']} / "
        f"{s['pods_sigkilled']} |",
        f"| requests | {s['requests']} |",
        f"| failures | {s['failures']} |",
        f"| writes acknowledged / lost / unverified | {s['writes_acknowledged']} / "
        f"{s['lost_writes']} / {s['unverified_writes']} |",
        "",
        "| measured (steady state, 3 pods under load) | before the 1st update | after the last |",
        "| --- | --- | --- |",
    ]
    for name, x, y in rows:
        lines.append(f"| {name} | {x:.1f} | {y:.1f} |".replace(".0 |", " |"))
    d = s["rss_mib_per_pod_during"]
    lines += [
        "",
        f"RSS per pod over the whole run (every 0.5 s sample): min {d['min']} MiB, "
        f"median {d['median']} MiB, max {d['max']} MiB.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
