"""Fixed drain against the adaptive drain, in fast and slow clusters, side by side in one run.

Same example app, same load, same shipped k8s/deployment.yaml (3 replicas, maxSurge 1,
maxUnavailable 0, probes on the listener), same seeds per scenario; only the pod command,
preStop and the drain window differ:

* plain:         example_app/gunicorn_plain.conf.py (no hooks), no preStop
* prestop-sleep: example_app/gunicorn_plain.conf.py, preStop sleep 5
* fixed-drain:   the hooks, ZDT_DRAIN_SECONDS 5 and ZDT_DRAIN_MAX_SECONDS 5 (earlier releases)
* adaptive:      the hooks with the manifest's own window: at least 5 s, then until no new
                 connection for 2 s, at most 15 s

Scenarios (seconds before --time-scale):

* fast:              kube-proxy, endpoint removal propagates in 1-3 s
* slow-propagation:  kube-proxy, 3-8 s (large clusters, polling ingress controllers)
* slow-health-check: a balancer that health-checks readiness every 3 s, 3 failures to
                     remove a pod (~9 s), as cloud load balancers do
* low-traffic:       fast, with one client per request kind and 200 ms think time
* beyond-cap-haproxy[-retry]: HAProxy as the Service, propagation 18-22 s, longer than the
                     drain's maximum (15 s): late connections are refused after the drain;
                     without retries HAProxy answers them 503, with ``retries 3`` and
                     ``option redispatch`` it sends them to another pod

For each row: failed requests, lost writes, and the rollout's cost in seconds per replaced
pod (deletion to exit, mean). Every pod's termination report is read from its log: how the
drain ended and when the last new connection came after SIGTERM. Usage::

    python benchmarks/drain_window.py                 # time scale 0.5, 1 repetition
    python benchmarks/drain_window.py --time-scale 1 --repetitions 3

Writes docs/results/drain_window.md and drain_window.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gunicorn_zdt.drill.balancer import HealthCheck  # noqa: E402
from gunicorn_zdt.drill.cli import EXAMPLE_COMMAND  # noqa: E402
from gunicorn_zdt.drill.load import LoadProfile  # noqa: E402
from gunicorn_zdt.drill.manifest import PreStop, load_deployment  # noqa: E402
from gunicorn_zdt.drill.runner import DrillOptions, run_drill  # noqa: E402

PLAIN_COMMAND = EXAMPLE_COMMAND.replace("gunicorn.conf.py", "gunicorn_plain.conf.py")
LOAD = LoadProfile(write_path="/items", slow_path="/work?ms=300")
SCENARIOS = {
    "fast": dict(service="kube-proxy", propagation_seconds=(1.0, 3.0)),
    "slow-propagation": dict(service="kube-proxy", propagation_seconds=(3.0, 8.0)),
    "slow-health-check": dict(
        service="health-check",
        health_check=HealthCheck(interval=3.0, timeout=1.0, unhealthy_threshold=3),
    ),
    "beyond-cap-haproxy": dict(service="haproxy", propagation_seconds=(18.0, 22.0)),
    "beyond-cap-haproxy-retry": dict(service="haproxy-retry", propagation_seconds=(18.0, 22.0)),
    "low-traffic": dict(
        service="kube-proxy",
        propagation_seconds=(1.0, 3.0),
        load=replace(LOAD, clients_per_kind=1, slow_clients=0, think_seconds=0.2),
    ),
}
VARIANTS = ("plain", "prestop-sleep", "fixed-drain", "adaptive")
REPORT = re.compile(
    r"termination report: drain ([\d.]+) s \(([^)]*)\).*?last new connection "
    r"(none|[\d.]+ s) after SIGTERM"
)


def run_one(variant: str, scenario: str, rep: int, scale: float, tmp: Path) -> dict:
    spec = load_deployment(REPO / "k8s/deployment.yaml")
    command, env = EXAMPLE_COMMAND, {}
    if variant in ("plain", "prestop-sleep"):  # no listener: probes go to the app's port
        command, env = PLAIN_COMMAND, {"ZDT_PROBE_BIND": "off"}
    if variant == "prestop-sleep":
        spec = spec.with_overrides(prestop=PreStop.sleeping(5))
    if variant == "fixed-drain":  # extra env is not time-scaled: scale it here
        env["ZDT_DRAIN_MAX_SECONDS"] = f"{5 * scale:g}"
    work = tmp / f"{scenario}-{variant}-{rep}"
    options = {"load": LOAD, **SCENARIOS[scenario]}
    opts = DrillOptions(
        command=command,
        spec=spec,
        time_scale=scale,
        env={"DATABASE_URL": f"sqlite:///{work / 'shared.db'}", **env},
        cwd=REPO,
        work_dir=work,
        seed=2000 + rep,
        **options,  # type: ignore[arg-type]
    )
    result = run_drill(opts)
    result["reports"] = [
        m.groups()
        for log in sorted(work.glob("pod-*.log"))
        for m in REPORT.finditer(log.read_text())
    ]
    return result


def summarise(variant: str, scenario: str, results: list[dict]) -> dict:
    rolled = [p for r in results for p in r["pods"] if p["stopped_by"] == "rollout"]
    per_pod = [p["exited_at"] - p["deleted_at"] for p in rolled if p["exited_at"] is not None]
    reports = [g for r in results for g in r["reports"]]
    last = [float(g[2].split()[0]) for g in reports if g[2] != "none"]
    return {
        "scenario": scenario,
        "variant": variant,
        "runs": len(results),
        "requests": sum(r["requests"] for r in results),
        "failed": sum(r["failures"] for r in results),
        "lost_writes": sum(r["lost_writes"] for r in results),
        "seconds_per_pod": round(statistics.mean(per_pod), 2) if per_pod else None,
        "drains": [float(g[0]) for g in reports],
        "ended_by": sorted({g[1] for g in reports}),
        "last_arrival_max": max(last) if last else None,
    }


def table(rows: list[dict]) -> str:
    head = ["scenario", "variant", "requests", "failed", "lost writes", "s per replaced pod"]
    head += ["drain (reports)", "last new connection after SIGTERM (max)", "drain ended by"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        drains = r["drains"]
        span = f"{min(drains):g}-{max(drains):g} s" if drains else "-"
        last = "-" if r["last_arrival_max"] is None else f"{r['last_arrival_max']:g} s"
        cells = [r["scenario"], r["variant"], r["requests"], r["failed"], r["lost_writes"]]
        cells += [r["seconds_per_pod"], span, last, "; ".join(r["ended_by"]) or "-"]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(out)


def ratios(rows: list[dict]) -> list[str]:
    by = {(r["scenario"], r["variant"]): r for r in rows}
    out = []
    for scenario in SCENARIOS:
        fixed, adaptive = by.get((scenario, "fixed-drain")), by.get((scenario, "adaptive"))
        if fixed and adaptive and fixed["seconds_per_pod"] and adaptive["seconds_per_pod"]:
            ratio = adaptive["seconds_per_pod"] / fixed["seconds_per_pod"]
            out.append(f"- {scenario}: adaptive / fixed seconds per replaced pod = {ratio:.2f}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=0.5)
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    args = parser.parse_args()
    started = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="zdt-drain-window-") as tmp:
        for scenario in args.scenarios.split(","):
            for variant in args.variants.split(","):
                results = [
                    run_one(variant, scenario, rep, args.time_scale, Path(tmp))
                    for rep in range(args.repetitions)
                ]
                row = summarise(variant, scenario, results)
                rows.append(row)
                print(f"{scenario:>18} {variant:>13}: {row['requests']} requests, "
                      f"{row['failed']} failed, {row['lost_writes']} lost, "
                      f"{row['seconds_per_pod']} s/pod", flush=True)  # fmt: skip
    command = (
        f"python benchmarks/drain_window.py --time-scale {args.time_scale:g} "
        f"--repetitions {args.repetitions} --scenarios {args.scenarios} "
        f"--variants {args.variants}"
    )
    note = (
        f"{args.repetitions} repetition(s) of one rolling update of 3 replicas per row, time "
        f"scale {args.time_scale:g} (every period below is multiplied by it: drain 5 s -> "
        f"{5 * args.time_scale:g} s, maximum 15 s -> {15 * args.time_scale:g} s, and each scenario's propagation "
        "or health-check period, listed in the script's docstring). Generated by "
        f"`{command}` in {time.monotonic() - started:.0f} s on the machine of the run."
    )
    md = (
        f"# Fixed and adaptive drain in fast and slow clusters\n\n{note}\n\n{table(rows)}\n\n"
        + "\n".join(ratios(rows))
        + "\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "drain_window.md").write_text(md)
    (args.out / "drain_window.json").write_text(json.dumps({"note": note, "rows": rows}, indent=1))
    print("\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
