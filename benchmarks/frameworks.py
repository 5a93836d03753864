"""Side by side, in one run: each framework and worker class with and without gunicorn-zdt.

The Django example (example_django/, sync and gthread workers) and the FastAPI example
(example_fastapi/, uvicorn-worker and Gunicorn's own asgi worker), each rehearsed with
``gunicorn-zdt drill`` on its own k8s manifest (3 replicas, maxSurge 1, maxUnavailable 0,
probes), same load (GETs, POSTs checked for lost writes, slow requests, keep-alive and
fresh connections, no retries) and same seeds; only the Gunicorn config differs:

* plain:        ``<example>/gunicorn_plain.conf.py`` (no hooks; readiness 200 until exit)
* gunicorn-zdt: ``<example>/gunicorn.conf.py`` (``install(globals())`` last)

Usage (from the repository root)::

    python benchmarks/frameworks.py                    # time scale 0.2, kube-proxy, 1 run each
    python benchmarks/frameworks.py --time-scale 0.5 --repetitions 3 --services kube-proxy,health-check

Writes docs/results/frameworks.md (the table the README quotes) and frameworks.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gunicorn_zdt.drill.load import LoadProfile  # noqa: E402
from gunicorn_zdt.drill.manifest import load_deployment  # noqa: E402
from gunicorn_zdt.drill.outcomes import FAILURE_CLASSES  # noqa: E402
from gunicorn_zdt.drill.runner import DrillOptions, run_drill  # noqa: E402

# name: (example folder, app, plain app, ZDT_EXAMPLE_WORKER, worker class shown)
STACKS = {
    "django-sync": ("example_django", "wsgi:application", "wsgi:application", "sync", "sync"),
    "django-gthread": ("example_django", "wsgi:application", "wsgi:application", "", "gthread"),
    "fastapi-uvicorn": ("example_fastapi", "app:app", "plain:app", "", "uvicorn_worker"),
    "fastapi-asgi": ("example_fastapi", "app:app", "plain:app", "asgi", "asgi"),
}
VARIANTS = ("plain", "gunicorn-zdt")


def command(stack: str, variant: str) -> str:
    folder, app, plain_app, _, _ = STACKS[stack]
    conf = "gunicorn_plain.conf.py" if variant == "plain" else "gunicorn.conf.py"
    target = plain_app if variant == "plain" else app
    return f"gunicorn -c {folder}/{conf} {folder}.{target} --bind 127.0.0.1:{{port}}"


def run_one(stack: str, variant: str, service: str, rep: int, args: argparse.Namespace,
            tmp: Path) -> dict:  # fmt: skip
    folder, _, _, worker, _ = STACKS[stack]
    work = tmp / f"{stack}-{variant}-{service}-{rep}"
    env = {"DATABASE_URL": f"sqlite:///{work / 'shared.db'}", "ZDT_EXAMPLE_WORKER": worker}
    if variant == "plain":  # no probe listener: the kubelet probes the app's port
        env["ZDT_PROBE_BIND"] = "off"
    opts = DrillOptions(
        command=command(stack, variant),
        spec=load_deployment(REPO / folder / "k8s" / "deployment.yaml"),
        service=service,
        rollouts=args.rollouts,
        time_scale=args.time_scale,
        load=LoadProfile(write_path="/items", slow_path="/work?ms=300"),
        env=env,
        cwd=REPO,
        work_dir=work,
        seed=2000 + rep,
    )
    return run_drill(opts)


def table(rows: list[dict]) -> str:
    head = ["stack", "worker class", "service", "runs", "requests (plain / zdt)", "failed (plain)",
            "failed (gunicorn-zdt)", "lost writes (plain / zdt)", "failures by class (plain)"]  # fmt: skip
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        plain, zdt = r["plain"], r["gunicorn-zdt"]
        classes = ", ".join(f"{c} {n}" for c, n in plain["by_class"].items() if n) or "-"
        cells = [r["stack"], STACKS[r["stack"]][4], r["service"], plain["runs"],
                 f"{plain['requests']} / {zdt['requests']}", plain["failed"], zdt["failed"],
                 f"{plain['lost_writes']} / {zdt['lost_writes']}", classes]  # fmt: skip
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=0.2)
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--rollouts", type=int, default=1, help="rolling updates per run")
    parser.add_argument("--services", default="kube-proxy")
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rows, raw = [], []
    with tempfile.TemporaryDirectory(prefix="zdt-frameworks-") as tmp:
        for service in args.services.split(","):
            for stack in args.stacks.split(","):
                row: dict = {"stack": stack, "service": service}
                for variant in VARIANTS:
                    acc = {"runs": 0, "requests": 0, "failed": 0, "lost_writes": 0,
                           "by_class": dict.fromkeys(FAILURE_CLASSES, 0)}  # fmt: skip
                    for rep in range(args.repetitions):
                        result = run_one(stack, variant, service, rep, args, Path(tmp))
                        acc["runs"] += 1
                        acc["requests"] += result["requests"]
                        acc["failed"] += result["failures"]
                        acc["lost_writes"] += result["lost_writes"]
                        for c, n in result["failures_by_class"].items():
                            acc["by_class"][c] += n
                        raw.append({"stack": stack, "variant": variant, "service": service,
                                    "repetition": rep, "command": command(stack, variant),
                                    **{k: result[k] for k in ("requests", "failures",
                                       "failures_by_class", "lost_writes", "settings")}})  # fmt: skip
                        print(f"{stack:>16} {variant:>13} {service:>12} rep {rep}: "
                              f"{result['requests']} requests, {result['failures']} failed, "
                              f"{result['lost_writes']} lost", flush=True)  # fmt: skip
                    row[variant] = acc
                rows.append(row)
    elapsed = time.monotonic() - started
    argv = " ".join(sys.argv[1:])
    md = [
        "# Other frameworks: failures with and without gunicorn-zdt, side by side",
        "",
        "Reproduce: `" + f"python benchmarks/frameworks.py {argv}".strip() + "`",
        "",
        f"One run of the script ({elapsed:.0f} s, time scale {args.time_scale:g}, "
        f"{args.repetitions} repetition(s), {args.rollouts} rollout(s) each). Each row: the "
        "same example app, manifest, load and seeds; plain = the example's "
        "`gunicorn_plain.conf.py` (no hooks), gunicorn-zdt = its `gunicorn.conf.py`. "
        "A drill per cell: `gunicorn-zdt drill --command '<command>' --manifest "
        "<example>/k8s/deployment.yaml --write-path /items --slow-path '/work?ms=300' "
        f"--time-scale {args.time_scale:g}` (commands in frameworks.json).",
        "",
        table(rows),
        "",
    ]
    (args.out / "frameworks.md").write_text("\n".join(md))
    (args.out / "frameworks.json").write_text(json.dumps(raw, indent=1) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
