"""``gunicorn-zdt drill``: the command line of the rolling-update rehearsal.

Exit codes: 0 zero failures and zero lost writes, 1 requests failed or writes were
lost, 2 the rehearsal could not run (usage, manifest, pods never ready), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any, TypeVar

from .balancer import MODES, HealthCheck
from .load import LoadProfile
from .manifest import DeploymentSpec, ManifestError, PreStop, Probe, load_deployment
from .report import svg_report, text_report, write_json
from .runner import DrillError, DrillOptions, run_drill

_T = TypeVar("_T")

EXAMPLE_COMMAND = (
    "gunicorn -c example_app/gunicorn.conf.py example_app.wsgi:app --bind 127.0.0.1:{port}"
)


def _port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not (sep and low.isdigit() and high.isdigit() and 1024 <= int(low) < int(high) <= 65535):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port range; use LOW-HIGH with 1024 <= LOW < HIGH <= 65535, "
            "e.g. 20000-20999"
        )
    return int(low), int(high)


def _range(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition("-")
    try:
        pair = (float(lo), float(hi or lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use MIN-MAX seconds, e.g. 1-3") from None
    if not 0 <= pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX")
    return pair


def _env(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: use KEY=VALUE")
    return key, value


def _int_or_percent(text: str) -> int | str:
    return text if text.endswith("%") else int(text)


def add_parser(subparsers: Any) -> None:
    """Register the ``drill`` subcommand (its defaults carry ``func``)."""
    p = subparsers.add_parser(
        "drill",
        help="rehearse a Kubernetes rolling update locally and count every dropped request",
        description=(
            "Start N Gunicorn 'pods' from a command template, put a Service model in front "
            "of them, run load without client retries, roll the Deployment, and report every "
            "failed request and lost write. Exit 0 only with zero failures and zero lost writes."
        ),
    )
    _rehearsal_arguments(p)
    _proxy_arguments(p)
    _deployment_arguments(p)
    _health_check_arguments(p)
    _load_arguments(p)
    p.add_argument("--out", type=Path, default=Path("drill-report"), help="report directory")
    p.add_argument("--seed", type=int, help="random seed (propagation, endpoint choice)")
    p.add_argument("--quiet", action="store_true", help="print only the verdict line")
    p.set_defaults(func=run)


def _rehearsal_arguments(p: argparse.ArgumentParser) -> None:
    """The pods' command, the Deployment, the Service, the rollouts and the clock."""
    p.add_argument(
        "--command",
        dest="pod_command",
        default=EXAMPLE_COMMAND,
        help="pod command template with a {port} placeholder; its process is the pod's "
        "main process (default: the example app)",
    )
    p.add_argument(
        "--manifest",
        type=Path,
        help="YAML file with the Deployment to rehearse (default: 3 replicas, maxSurge and "
        "maxUnavailable 25%%, grace 30 s, readiness GET /healthz/ready every 2 s, no preStop)",
    )
    p.add_argument("--deployment", help="name of the Deployment in --manifest (default: first)")
    p.add_argument("--service", choices=MODES, default="kube-proxy", help="balancer model")
    p.add_argument("--rollouts", type=int, default=1, help="rolling updates in a row")
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply every modelled period (probe periods, minReadySeconds, preStop, grace "
        "period, ZDT_*_SECONDS env, propagation, health-check interval, warm-up) by this, "
        "e.g. 0.2 for a quick run; timeouts and request durations are not scaled",
    )
    p.add_argument(
        "--propagation",
        type=_range,
        default=(1.0, 3.0),
        metavar="MIN-MAX",
        help="endpoint change propagation delay in seconds (default 1-3)",
    )
    p.add_argument(
        "--pod-ports",
        type=_port_range,
        metavar="LOW-HIGH",
        help="take the pods' ports (and their probe listeners') from this range, e.g. "
        "20000-20999 (default: free ports below the ephemeral range)",
    )


def _proxy_arguments(p: argparse.ArgumentParser) -> None:
    """A proxy's pooled upstream connections and the clients that let them sit idle."""
    p.add_argument(
        "--upstream-idle-timeout",
        type=float,
        metavar="SECONDS",
        help="l7 and nginx: close a pooled upstream connection idle this long instead of "
        "reusing it (nginx: its upstream keepalive_timeout); keep it below the app's "
        "keepalive (75 s in gunicorn_zdt.conf), as a real proxy must be (default: l7 1, "
        "nginx 60, nginx's own default)",
    )
    p.add_argument(
        "--gap-clients",
        type=int,
        metavar="N",
        help="clients that pause for an idle gap (--gaps) between requests, on fresh "
        "connections, alternating GET and POST: they let a proxy's pooled upstream "
        "connections sit idle (default: 2 with --service nginx, else 0)",
    )
    p.add_argument(
        "--gaps",
        type=_range,
        default=(0.5, 2.5),
        metavar="MIN-MAX",
        help="the gap clients' idle gaps in seconds, not time-scaled (default 0.5-2.5)",
    )


def _deployment_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Deployment overrides (win over --manifest)")
    g.add_argument("--replicas", type=int)
    g.add_argument("--max-surge", type=_int_or_percent)
    g.add_argument("--max-unavailable", type=_int_or_percent)
    g.add_argument("--min-ready-seconds", type=float)
    g.add_argument("--grace-period", type=float, help="terminationGracePeriodSeconds")
    g.add_argument("--prestop-sleep", type=float, help="preStop sleep seconds; 0 removes preStop")
    g.add_argument("--readiness-path", help="readiness httpGet path (adds a probe if none)")
    g.add_argument("--readiness-period", type=float, help="readiness periodSeconds")
    g.add_argument("--no-liveness", action="store_true", help="drop the liveness probe")
    g.add_argument(
        "--env", type=_env, action="append", default=[], metavar="KEY=VALUE", help="pod env"
    )


def _health_check_arguments(p: argparse.ArgumentParser) -> None:
    h = p.add_argument_group("health-check service")
    h.add_argument("--hc-path", help="checked path (default: the readiness probe's)")
    h.add_argument("--hc-interval", type=float, default=2.0)
    h.add_argument("--hc-timeout", type=float, default=1.0)
    h.add_argument("--hc-healthy", type=int, default=2, help="passes to add a pod")
    h.add_argument("--hc-unhealthy", type=int, default=2, help="failures to remove a pod")


def _load_arguments(p: argparse.ArgumentParser) -> None:
    ld = p.add_argument_group("load (no client retries)")
    ld.add_argument("--get-path", default="/", help="GET path (default /)")
    ld.add_argument("--write-path", help="POST JSON {'id': ...} here; GET <path>/<id> verifies")
    ld.add_argument("--slow-path", help="path of a slow request, e.g. '/work?ms=300'")
    ld.add_argument("--clients", type=int, default=2, help="threads per client kind")
    ld.add_argument(
        "--stream-clients",
        type=int,
        default=0,
        metavar="N",
        help="also run N server-sent-events clients on --stream-path (default 0: none); a "
        "stream must end cleanly with a final 'event: reconnect', then the client reconnects "
        "after the server's retry: hint (x --time-scale) and must get its next event",
    )
    ld.add_argument(
        "--stream-path",
        default="/events",
        help="the SSE path of --stream-clients (default /events)",
    )
    ld.add_argument("--think-ms", type=float, default=10.0, help="pause between requests")
    ld.add_argument("--timeout", type=float, default=10.0, help="client timeout (seconds)")
    ld.add_argument("--warmup", type=float, default=3.0, help="load before the first rollout")
    ld.add_argument("--settle", type=float, default=3.0, help="load after the last pod exited")


def options_from_args(args: argparse.Namespace) -> DrillOptions:
    spec = _spec_from_args(args)
    hc_path = args.hc_path or (spec.readiness and spec.readiness.path) or "/healthz/ready"
    return DrillOptions(
        command=args.pod_command,
        spec=spec,
        service=args.service,
        rollouts=args.rollouts,
        time_scale=args.time_scale,
        propagation_seconds=args.propagation,
        port_range=args.pod_ports,
        upstream_idle_seconds=_by_service(args, args.upstream_idle_timeout, nginx=60.0, other=1.0),
        health_check=HealthCheck(
            path=hc_path,
            interval=args.hc_interval,
            timeout=args.hc_timeout,
            healthy_threshold=args.hc_healthy,
            unhealthy_threshold=args.hc_unhealthy,
        ),
        load=_load_from_args(args),
        env=dict(args.env),
        work_dir=args.out,
        warmup_seconds=args.warmup,
        settle_seconds=args.settle,
        seed=args.seed,
    )


def _spec_from_args(args: argparse.Namespace) -> DeploymentSpec:
    """The Deployment: --manifest's (or the default one), with the overrides applied."""
    spec = (
        load_deployment(args.manifest, args.deployment)
        if args.manifest
        else DeploymentSpec(readiness=Probe("readiness", path="/healthz/ready", period_seconds=2))
    )
    readiness = spec.readiness
    if args.readiness_path or args.readiness_period:
        readiness = dataclasses.replace(
            readiness or Probe("readiness", path="/healthz/ready"),
            **{"path": args.readiness_path} if args.readiness_path else {},
            **{"period_seconds": args.readiness_period} if args.readiness_period else {},
        )
    spec = spec.with_overrides(
        replicas=args.replicas,
        max_surge=args.max_surge,
        max_unavailable=args.max_unavailable,
        min_ready_seconds=args.min_ready_seconds,
        grace_period_seconds=args.grace_period,
        readiness=readiness,
        prestop=None if args.prestop_sleep is None else PreStop.sleeping(args.prestop_sleep),
    )
    if args.no_liveness:
        spec = dataclasses.replace(spec, liveness=None)
    return spec


def _by_service(args: argparse.Namespace, given: _T | None, *, nginx: _T, other: _T) -> _T:
    """An option's value when given, else its default for --service nginx or the others."""
    if given is not None:
        return given
    return nginx if args.service == "nginx" else other


def _load_from_args(args: argparse.Namespace) -> LoadProfile:
    """The clients: request kinds, streams and gap clients."""
    return LoadProfile(
        get_path=args.get_path,
        write_path=args.write_path,
        slow_path=args.slow_path,
        clients_per_kind=args.clients,
        think_seconds=args.think_ms / 1000,
        timeout_seconds=args.timeout,
        stream_path=args.stream_path if args.stream_clients else None,
        stream_clients=args.stream_clients,
        gap_clients=_by_service(args, args.gap_clients, nginx=2, other=0),
        gap_seconds=args.gaps,
    )


def write_reports(result: dict[str, Any], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    write_json(result, out / "drill.json")
    (out / "drill.svg").write_text(svg_report(result))
    text = text_report(result)
    (out / "drill.txt").write_text(text + "\n")
    return text


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    """The ``drill`` subcommand: 0 passed, 1 failures, 2 could not run, 130 interrupted."""
    try:
        opts = options_from_args(args)
    except (ManifestError, ValueError) as exc:
        print(f"gunicorn-zdt drill: {exc}", file=sys.stderr)
        return 2
    if args.rollouts < 1 or opts.time_scale <= 0 or args.stream_clients < 0:
        print(
            "gunicorn-zdt drill: --rollouts must be >= 1, --time-scale > 0 and "
            "--stream-clients >= 0",
            file=sys.stderr,
        )
        return 2

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"drill: {msg}", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = run_drill(opts, log=say)
    except (DrillError, ValueError) as exc:
        print(f"gunicorn-zdt drill: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gunicorn-zdt drill: interrupted; every pod was stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    text = write_reports(result, args.out)
    if args.quiet:
        print(text.splitlines()[-1])
    else:
        print(text)
        print(f"\nreports: {args.out}/drill.txt, drill.json, drill.svg (pod logs there too)")
    return 0 if result["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gunicorn-zdt")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))
