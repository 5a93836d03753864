"""Soak: the example app under steady load through N consecutive rolling updates.

Runs ``gunicorn_zdt.drill`` (kube-proxy Service model, the shipped ``k8s/deployment.yaml``,
time scale 0.2) against a real PostgreSQL server, with GETs, POSTs (every acknowledged write
verified afterwards) and slow requests, keep-alive and fresh connections, no retries. A
sampler thread reads /proc every 0.5 s while it runs:

* the pods: every Gunicorn master and worker started by the drill (children of this
  process and theirs): file descriptors, threads, RSS;
* PostgreSQL: backends connected to the app's database (``pg_stat_activity``), each
  assigned to a pod by its client port: the pod process whose socket (``/proc/<pid>/fd``
  inode) has that local port in ``/proc/net/tcp``. A backend whose client is no process
  of a live pod (its pod is gone, or it is not ours) is counted as orphaned, and as
  leaked when the same backend is still orphaned in the next sample (0.5 s later);
* this process (load generator + Service model): file descriptors, threads.

"before" is the last sample of the 2 s of load before the first rolling update (the
first pods, warmed up, under load); "after" the last sample once every old pod has exited while the load is
still running (pods that lived through none of the earlier updates, same load, same 3
pods). A leak per restart shows as after > before; a leak in the long-lived process
(load generator, balancer) too. A sample during which the phase changed is dropped.
Two more PostgreSQL samples: "idle", taken by the drill's own thread right after the
load stopped (the last pods alive, their pools idle), and after the drill stopped every
pod (must reach 0).

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
from tests.support import process_tree  # noqa: E402

SCALE = 0.2
#: example_app/app.py's engine (pool_size 5, max_overflow 5) in each of WEB_CONCURRENCY
#: workers (k8s/deployment.yaml: 2): the most connections one pod may hold under load,
#: and what its pools keep once idle (overflow connections are closed when returned).
POOL_SIZE, MAX_OVERFLOW, WORKERS = 5, 5, 2
BUSY_BOUND_PER_POD = WORKERS * (POOL_SIZE + MAX_OVERFLOW)
IDLE_BOUND_PER_POD = WORKERS * POOL_SIZE


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


def _descendants(tree: dict[int, list[int]], pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo.extend(tree.get(out[-1], []))
    return out


def _pod_processes() -> dict[int, list[int]]:
    """Every pod started by us: its Gunicorn master -> master and descendants."""
    tree = process_tree()
    pods = {}
    for master in tree.get(os.getpid(), []):
        try:
            cmd = Path(f"/proc/{master}/cmdline").read_bytes()
        except OSError:
            continue
        if b"gunicorn" in cmd:
            pods[master] = _descendants(tree, master)
    return pods


def _pods(pod_processes: dict[int, list[int]]) -> list[dict[str, object]]:
    """Per pod: processes, and the totals of their fds, threads, RSS."""
    pods = []
    for master, procs in pod_processes.items():
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


def _socket_inodes(pids: list[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _client_ports_by_master(pg_port: int) -> dict[int, int]:
    """Local port of every TCP connection to ``pg_port`` held by a pod process -> its master."""
    inode_port = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if int(remote.rsplit(":", 1)[1], 16) == pg_port and inode:
                inode_port[inode] = int(local.rsplit(":", 1)[1], 16)
    owner = {}
    for master, procs in _pod_processes().items():
        for inode in _socket_inodes(procs) & inode_port.keys():
            owner[inode_port[inode]] = master
    return owner


class Sampler(threading.Thread):
    def __init__(self, db_url: str, database: str, pg_port: int) -> None:
        super().__init__(daemon=True)
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.engine = create_engine(db_url, poolclass=NullPool)
        self.database = database
        self.pg_port = pg_port
        self.samples: list[dict[str, object]] = []
        self.phase = "starting"
        self.done = threading.Event()
        self.last_orphans: set[int] = set()

    def client_ports(self) -> list[tuple[int, int]]:
        """(backend pid, client port) of every backend connected to the app's database but ours."""
        from sqlalchemy import text

        query = text(
            "SELECT pid, client_port FROM pg_stat_activity WHERE datname = :d "
            "AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as conn:
            return [(pid, port) for pid, port in conn.execute(query, {"d": self.database})]

    def db_connections(self) -> dict[str, object]:
        """Backends per pod master, and orphans: backends with no live pod process as client.

        /proc is read before and after the query, so a connection opened or closed
        while it ran is still assigned to its pod."""
        owner = _client_ports_by_master(self.pg_port)
        ports = self.client_ports()
        owner.update(_client_ports_by_master(self.pg_port))
        per_master: dict[int, int] = {}
        orphans: set[int] = set()
        for backend, port in ports:
            if port in owner:
                per_master[owner[port]] = per_master.get(owner[port], 0) + 1
            else:
                orphans.add(backend)
        return {"total": len(ports), "per_master": per_master, "orphans": orphans}

    def run(self) -> None:
        while not self.done.wait(0.5):
            try:
                self.sample()
            except Exception as exc:  # a process vanished mid-read: skip this sample
                print(f"soak: sample skipped: {exc!r}", file=sys.stderr)

    def sample(self) -> None:
        phase = self.phase
        me = _proc(os.getpid())
        assert me is not None
        pods = _pods(_pod_processes())
        db = self.db_connections()
        if self.phase != phase:  # straddles a change (e.g. the load stopping): not steady
            return
        for pod in pods:
            pod["db_connections"] = db["per_master"].get(pod["master"], 0)  # type: ignore[union-attr]
        # A backend still orphaned one sample (0.5 s) later is a leak; seen once, it may be a
        # connection caught between its pod's exit and PostgreSQL noticing the close.
        orphans: set[int] = db["orphans"]  # type: ignore[assignment]
        persisting, self.last_orphans = orphans & self.last_orphans, orphans
        self.samples.append(
            {
                "t": time.monotonic(),
                "phase": phase,
                "pods": pods,
                "db_connections": db["total"],
                "db_orphans": len(orphans),
                "db_orphans_persisting": len(persisting),
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
        "db_connections_per_pod_max": max((p["db_connections"] for p in pods), default=0),
        "db_orphans": sample["db_orphans"],  # type: ignore[dict-item]
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
        sampler = Sampler(pg.url, "soak", pg.port)
        idle: dict[str, object] = {}

        def say(message: str) -> None:
            print(message, file=sys.stderr, flush=True)
            if message.startswith("load started"):
                sampler.phase = "warmup"
            elif message.startswith("rolling update 1/"):
                sampler.phase = "rolling"
            elif message.startswith("every old pod exited"):
                sampler.phase = "settled"
            elif message.startswith("load stopped"):
                sampler.phase = "idle"
                # In the drill's own thread, before it verifies the writes: the last pods
                # are alive and no request is in flight, so their pools are idle.
                idle.update(sampler.db_connections(), pods=len(_pod_processes()))

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
            warmup_seconds=10.0,  # x0.2 = 2 s of load on the first pods, sampled as "before"
            settle_seconds=10.0,  # x0.2 = 2 s of load on the last pods, sampled as "after"
            seed=11,
        )
        sampler.start()
        started = time.monotonic()
        result = run_drill(opts, say)
        elapsed = time.monotonic() - started
        sampler.done.set()
        sampler.join()
        # Every pod is gone: each backend must end once its client's socket closed.
        deadline = time.monotonic() + 10
        gone = sampler.client_ports()
        while gone and time.monotonic() < deadline:
            time.sleep(0.1)
            gone = sampler.client_ports()
    finally:
        pg.destroy()

    replicas = spec.replicas
    samples = sampler.samples
    before = steady(samples, "warmup", replicas)
    # The last steady sample with the load still running: the final pods, every old pod gone.
    after = steady(samples, "settled", replicas)
    under_load = [s for s in samples if s["phase"] in ("warmup", "rolling", "settled")]
    rss = [summarize_sample(s)["rss_mib_per_pod"] for s in under_load if s["pods"]]
    per_pod = [p["db_connections"] for s in under_load for p in s["pods"]]  # type: ignore[attr-defined]
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
        "db": {
            "samples": len(samples),
            "per_pod_max_under_load": max(per_pod),
            "busy_bound_per_pod": BUSY_BOUND_PER_POD,
            "orphans_max": max(s["db_orphans"] for s in samples),  # type: ignore[type-var]
            "leaked_max": max(s["db_orphans_persisting"] for s in samples),  # type: ignore[type-var]
            "idle_pods": idle.get("pods"),
            "idle_total": idle.get("total"),
            "idle_per_pod": sorted(idle.get("per_master", {}).values()),  # type: ignore[union-attr]
            "idle_orphans": len(idle.get("orphans", ())),  # type: ignore[arg-type]
            "idle_bound_per_pod": IDLE_BOUND_PER_POD,
            "after_all_pods_exited": len(gone),
        },
    }
    text = render(summary)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if result["passed"] and not summary["db"]["leaked_max"] and not gone else 1


def render(s: dict) -> str:
    b, a, db = s["before"], s["after"], s["db"]
    rows = [
        ("pods running", b["pods"], a["pods"]),
        ("file descriptors per pod (master + workers)", b["fds_per_pod"], a["fds_per_pod"]),
        ("threads per pod", b["threads_per_pod"], a["threads_per_pod"]),
        ("RSS per pod, MiB", b["rss_mib_per_pod"], a["rss_mib_per_pod"]),
        ("PostgreSQL connections to the app database", b["db_connections"], a["db_connections"]),
        (
            f"PostgreSQL connections of the busiest pod (bound {db['busy_bound_per_pod']})",
            b["db_connections_per_pod_max"],
            a["db_connections_per_pod_max"],
        ),
        ("PostgreSQL connections with no live pod behind them", b["db_orphans"], a["db_orphans"]),
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
        "| measured (steady state, 3 pods under load) | before the 1st update "
        "| after the last (old pods gone, load running) |",
        "| --- | --- | --- |",
    ]
    for name, x, y in rows:
        lines.append(f"| {name} | {x:.1f} | {y:.1f} |".replace(".0 |", " |"))
    d = s["rss_mib_per_pod_during"]
    idle_per_pod = ", ".join(map(str, db["idle_per_pod"])) or "none"
    lines += [
        "",
        "| PostgreSQL connections (backends of the app database, by client process) | value |",
        "| --- | --- |",
        f"| most held by one pod in any sample under load (bound: {WORKERS} workers x "
        f"(pool {POOL_SIZE} + overflow {MAX_OVERFLOW})) | {db['per_pod_max_under_load']} / "
        f"{db['busy_bound_per_pod']} |",
        f"| with no live pod process behind them, most in any of {db['samples']} samples "
        f"| {db['orphans_max']} |",
        f"| still orphaned one sample (0.5 s) later: leaked | {db['leaked_max']} |",
        f"| load stopped, {db['idle_pods']} pods alive and idle: total (per pod; idle bound "
        f"{WORKERS} x pool {POOL_SIZE} = {db['idle_bound_per_pod']}) | {db['idle_total']} "
        f"({idle_per_pod}) |",
        f"| load stopped, with no live pod behind them | {db['idle_orphans']} |",
        f"| after the drill stopped every pod (10 s deadline) | {db['after_all_pods_exited']} |",
        "",
        f"RSS per pod over the run under load (every 0.5 s sample): min {d['min']} MiB, "
        f"median {d['median']} MiB, max {d['max']} MiB.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
