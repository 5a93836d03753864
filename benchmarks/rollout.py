"""Side by side, in one run: plain Gunicorn, "preStop sleep 5 only", and gunicorn-zdt.

Same example app, same load, same shipped k8s/deployment.yaml (3 replicas, maxSurge 1,
maxUnavailable 0, grace 30 s, probes), same seeds; only the pod command and preStop differ:

* plain:         example_app/gunicorn_plain.conf.py (no hooks), no preStop
* prestop-sleep: example_app/gunicorn_plain.conf.py, preStop sleep 5
* gunicorn-zdt:  example_app/gunicorn.conf.py (hooks, ZDT_DRAIN_SECONDS 5), no preStop

Usage (from the repository root)::

    python benchmarks/rollout.py                      # time scale 0.5, 3 repetitions
    python benchmarks/rollout.py --time-scale 1 --repetitions 5 --services kube-proxy

Writes docs/results/rollout.md (the table the README quotes), rollout.json and
rollout.svg (one rehearsal per variant, kube-proxy service, first repetition).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gunicorn_zdt.drill.cli import EXAMPLE_COMMAND  # noqa: E402
from gunicorn_zdt.drill.load import LoadProfile  # noqa: E402
from gunicorn_zdt.drill.manifest import PreStop, load_deployment  # noqa: E402
from gunicorn_zdt.drill.outcomes import FAILURE_CLASSES  # noqa: E402
from gunicorn_zdt.drill.report import svg_report  # noqa: E402
from gunicorn_zdt.drill.runner import DrillOptions, run_drill  # noqa: E402

PLAIN_COMMAND = EXAMPLE_COMMAND.replace("gunicorn.conf.py", "gunicorn_plain.conf.py")
VARIANTS = {
    "plain": (PLAIN_COMMAND, PreStop()),
    "prestop-sleep": (PLAIN_COMMAND, PreStop.sleeping(5)),
    "gunicorn-zdt": (EXAMPLE_COMMAND, None),  # None: the manifest's own preStop (none)
}


def run_one(variant: str, service: str, rep: int, args: argparse.Namespace, tmp: Path) -> dict:
    command, prestop = VARIANTS[variant]
    spec = load_deployment(REPO / "k8s/deployment.yaml")
    if prestop is not None:
        spec = spec.with_overrides(prestop=prestop)
    work = tmp / f"{variant}-{service}-{rep}"
    opts = DrillOptions(
        command=command,
        spec=spec,
        service=service,
        rollouts=args.rollouts,
        time_scale=args.time_scale,
        load=LoadProfile(write_path="/items", slow_path="/work?ms=300"),
        # Plain Gunicorn starts no probe listener: its probes go to the app's port.
        env={"DATABASE_URL": f"sqlite:///{work / 'shared.db'}"}
        | ({"ZDT_PROBE_BIND": "off"} if command == PLAIN_COMMAND else {}),
        cwd=REPO,
        work_dir=work,
        seed=1000 + rep,
    )
    return run_drill(opts)


def table(rows: list[dict]) -> str:
    head = ["variant", "service", "runs", "requests", "failed", *FAILURE_CLASSES]
    head += ["lost writes", "SIGKILLed pods"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["variant"], r["service"], r["runs"], r["requests"], r["failed"]]
        cells += [r["by_class"][c] for c in FAILURE_CLASSES]
        cells += [r["lost_writes"], r["sigkilled"]]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(out)


def combined_svg(results: dict[str, dict]) -> str:
    """The per-variant pictures stacked into one SVG."""
    parts, y = [], 0
    for variant, result in results.items():
        svg = svg_report(result, title=f"{variant}: {result['requests']} requests, "
                         f"{result['failures']} failed, {result['lost_writes']} lost writes "
                         f"({result['settings']['service']}, time scale "
                         f"{result['settings']['time_scale']:g})")  # fmt: skip
        height = int(re.search(r'height="(\d+)"', svg).group(1))  # type: ignore[union-attr]
        parts.append(svg.replace("<svg ", f'<svg y="{y}" ', 1))
        y += height
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="960" height="{y}">\n'
        + "".join(parts)
        + "</svg>\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=0.5)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--rollouts", type=int, default=1, help="rolling updates per run")
    parser.add_argument("--services", default="kube-proxy,health-check,l7")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    args = parser.parse_args()
    services = args.services.split(",")
    variants = args.variants.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rows, pictures, raw = [], {}, []
    with tempfile.TemporaryDirectory(prefix="zdt-rollout-") as tmp:
        for service in services:
            for variant in variants:
                row = {"variant": variant, "service": service, "runs": 0, "requests": 0,
                       "failed": 0, "by_class": dict.fromkeys(FAILURE_CLASSES, 0),
                       "lost_writes": 0, "sigkilled": 0}  # fmt: skip
                for rep in range(args.repetitions):
                    result = run_one(variant, service, rep, args, Path(tmp))
                    row["runs"] += 1
                    row["requests"] += result["requests"]
                    row["failed"] += result["failures"]
                    for c, n in result["failures_by_class"].items():
                        row["by_class"][c] += n
                    row["lost_writes"] += result["lost_writes"]
                    row["sigkilled"] += sum(p["sigkilled"] for p in result["pods"])
                    raw.append({"variant": variant, "service": service, "repetition": rep,
                                **{k: result[k] for k in ("requests", "failures",
                                   "failures_by_class", "lost_writes", "writes_acknowledged", "service",
                                   "pods", "settings")}})  # fmt: skip
                    if service == services[0] and rep == 0:
                        pictures[variant] = result
                    print(f"{variant:>14} {service:>12} rep {rep}: {result['requests']} "
                          f"requests, {result['failures']} failed, {result['lost_writes']} "
                          "lost", flush=True)  # fmt: skip
                rows.append(row)
    elapsed = time.monotonic() - started
    note = (
        f"{args.repetitions} repetition(s) x {args.rollouts} rolling update(s) of 3 replicas per "
        f"row, time scale {args.time_scale:g} (grace 30 s -> {30 * args.time_scale:g} s, drain "
        f"5 s -> {5 * args.time_scale:g} s, preStop 5 s -> {5 * args.time_scale:g} s, "
        f"propagation 1-3 s -> {args.time_scale:g}-{3 * args.time_scale:g} s); load: 2 threads "
        "each of keep-alive GET, fresh-connection GET, keep-alive POST, fresh-connection POST, "
        "plus 1 slow (300 ms) keep-alive GET, 10 ms think time, no retries. "
        f"Generated by `python benchmarks/rollout.py --time-scale {args.time_scale:g} "
        f"--repetitions {args.repetitions} --rollouts {args.rollouts} --services "
        f"{args.services}` in {elapsed:.0f} s."
    )
    md = f"# Rolling update rehearsal: dropped requests\n\n{note}\n\n{table(rows)}\n"
    (args.out / "rollout.md").write_text(md)
    (args.out / "rollout.json").write_text(json.dumps({"note": note, "rows": rows,
                                                       "runs": raw}, indent=1) + "\n")  # fmt: skip
    (args.out / "rollout.svg").write_text(combined_svg(pictures))
    print("\n" + md)
    print(f"wrote {args.out}/rollout.md, rollout.json, rollout.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
