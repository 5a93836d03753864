"""The ``gunicorn-zdt`` command line (also ``python -m gunicorn_zdt``).

    gunicorn-zdt check [--config CONF] [--strict] PATH...
    gunicorn-zdt timeline [--config CONF] [--svg FILE] [MANIFEST...]
    gunicorn-zdt drill ...            (when gunicorn_zdt.drill is installed)

Exit status: 0 clean, 1 findings (errors; warnings too with ``--strict``), 2 usage or
input that cannot be read (bad path, not YAML, a Gunicorn config that fails to load).
Findings go to stdout, one a line; input errors and the summary go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from . import __version__, app_config
from . import lb as lb_presets
from .app_config import ConfigLoadError, GunicornView
from .core import settings
from .core.budget import Budget
from .core.plan import DrainPlan
from .k8s import Document, ManifestError, Workload, read_documents, skipped_kinds, workloads
from .lb import LoadBalancer, LoadBalancerError
from .rules import ERROR, Pod, check_pod, make_pod
from .timeline import render_svg, render_text

__all__ = ["Analysis", "analyse_documents", "build_parser", "main"]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


@dataclass
class Analysis:
    """The pods to check, and why the rest could not be."""

    pods: list[Pod]
    errors: list[str]  # input that could not be read: exit 2
    notes: list[str] = dataclasses.field(default_factory=list)  # objects skipped, no effect


def _lb(text: str) -> LoadBalancer:
    try:
        return lb_presets.parse(text)
    except LoadBalancerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        return float(
            settings.BY_NAME["ZDT_MIN_PROPAGATION_SECONDS"].parse("--min-propagation", text)
        )
    except settings.SettingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def analyse_documents(
    docs: Sequence[Document],
    config: str | None,
    min_propagation: float | None = None,
    lb: LoadBalancer | None = None,
) -> Analysis:
    """A :class:`Pod` per Deployment or StatefulSet in ``docs``, its Gunicorn config loaded.

    What ``check`` and ``timeline`` do once the manifests are read: each workload's
    container command and env go to Gunicorn's loader (``config`` overrides the command's
    ``-c``); a broken workload, a wrapper script without ``config`` or a config that does
    not load is an error line instead of a pod.
    """
    errors: list[str] = []
    found: list[Workload] = []
    for item in workloads(docs):
        if isinstance(item, ManifestError):
            errors.append(str(item))
        else:
            found.append(item)
    views: dict[Any, GunicornView] = {}
    pods = []
    for w in found:
        found_argv = app_config.gunicorn_argv(w.command, w.args)
        if found_argv is None and w.command and config is None:
            shown = " ".join([*w.command, *(w.args or [])])
            errors.append(
                f"{w.source}: {w.ref}: the container's command ({shown}) does not start gunicorn "
                "itself (a wrapper script?), so the check cannot see which Gunicorn config the "
                "pod runs; pass it with --config (e.g. --config gunicorn.conf.py), and make the "
                "script end with exec gunicorn ..."
            )
            continue
        argv = found_argv or []
        key = (tuple(argv), tuple(sorted(w.env.items())), config)
        try:
            if key not in views:
                views[key] = app_config.load(argv, w.env, config)
        except ConfigLoadError as exc:
            message = f"{w.source}: {w.ref}: {exc}"
            if message not in errors:
                errors.append(message)
            continue
        try:
            pods.append(make_pod(w, views[key], docs, min_propagation, lb))
        except ManifestError as exc:  # an object the workload depends on (its autoscaler)
            errors.append(str(exc))
    return Analysis(pods, errors, skipped_kinds(docs))


def _analyse(
    paths: Sequence[str],
    config: str | None,
    min_propagation: float | None,
    stdin: IO[str] | None,
    lb: LoadBalancer | None = None,
) -> Analysis:
    docs, errors = read_documents(paths, stdin)
    analysis = analyse_documents(docs, config, min_propagation, lb)
    analysis.errors[:0] = errors  # the files that could not be read come first
    if not analysis.pods and not analysis.errors:
        analysis.errors.append(
            f"{' '.join(paths)}: no Deployment or StatefulSet found; pass the files or folder "
            "that hold your Deployment (or - for kustomize/helm output on stdin)"
        )
    return analysis


def _cmd_check(args: argparse.Namespace) -> int:
    analysis = _analyse(args.paths, args.config, args.min_propagation, args.stdin, args.lb)
    n_errors = n_warnings = 0
    for pod in analysis.pods:
        for finding in check_pod(pod):
            print(finding.line(), file=args.stdout)
            if finding.severity == ERROR:
                n_errors += 1
            else:
                n_warnings += 1
    for line in [*analysis.notes, *analysis.errors]:
        print(line, file=args.stderr)
    print(
        f"gunicorn-zdt check: {n_errors} error(s), {n_warnings} warning(s) in "
        f"{len(analysis.pods)} workload(s){', input errors above' if analysis.errors else ''}",
        file=args.stderr,
    )
    if analysis.errors:
        return EXIT_USAGE
    if n_errors or (args.strict and n_warnings):
        return EXIT_FINDINGS
    return EXIT_OK


def _budget_without_manifest(config: str | None) -> tuple[str, Budget]:
    """The budget from the Gunicorn config and this shell's ZDT_* env alone."""
    env = {
        k: v for k, v in os.environ.items() if k.startswith("ZDT_") or k in app_config.POD_ONLY_ENV
    }
    view = app_config.load([], env, config)
    try:
        minimum = settings.resolve("ZDT_MIN_PROPAGATION_SECONDS")
    except settings.SettingError:
        minimum = None
    plan = view.plan or DrainPlan(
        drain_seconds=0.0,
        prestop_seconds=0.0,
        grace_period_seconds=None,
        min_propagation_seconds=minimum,
    )
    b = dataclasses.replace(plan.budget_for(view.cfg), min_propagation_seconds=minimum)
    title = view.location or "Gunicorn defaults"
    return title, b


def _cmd_timeline(args: argparse.Namespace) -> int:
    panels: list[tuple[str, Budget]] = []
    if args.paths:
        analysis = _analyse(args.paths, args.config, args.min_propagation, args.stdin)
        for line in analysis.errors:
            print(line, file=args.stderr)
        if analysis.errors:
            return EXIT_USAGE
        panels = [(f"{p.workload.ref} ({p.workload.source})", p.budget) for p in analysis.pods]
    elif args.config is None and not os.path.exists("gunicorn.conf.py"):
        print(
            "gunicorn-zdt timeline: nothing to show: give a manifest (gunicorn-zdt timeline "
            "k8s/deployment.yaml) or a Gunicorn config (--config gunicorn.conf.py); there is "
            "no ./gunicorn.conf.py here",
            file=args.stderr,
        )
        return EXIT_USAGE
    else:
        try:
            panels = [_budget_without_manifest(args.config)]
        except ConfigLoadError as exc:
            print(str(exc), file=args.stderr)
            return EXIT_USAGE
    print("\n\n".join(render_text(title, b) for title, b in panels), file=args.stdout)
    if args.svg:
        try:
            with open(args.svg, "w", encoding="utf-8") as out:
                out.write(render_svg(panels))
        except OSError as exc:
            print(f"{args.svg}: cannot write the SVG: {exc.strerror}", file=args.stderr)
            return EXIT_USAGE
    return EXIT_OK


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="GUNICORN_CONF",
        help="Gunicorn config (a file or python:module), instead of the -c in the "
        "container's command; loaded by Gunicorn with the container's env",
    )
    parser.add_argument(
        "--min-propagation",
        type=_seconds,
        metavar="SECONDS",
        help="slowest endpoint removal in front of the pods; default: the container's "
        "ZDT_MIN_PROPAGATION_SECONDS, else "
        f"{settings.BY_NAME['ZDT_MIN_PROPAGATION_SECONDS'].default:g}",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gunicorn-zdt",
        description="Check Kubernetes manifests against the Gunicorn config and the "
        "termination budget; draw the termination timeline.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    check = sub.add_parser(
        "check",
        help="report every disagreement between Deployments and the Gunicorn config",
        description="Read Deployments (files, folders, multi-document YAML, - for stdin) "
        "and report each problem as FILE: Kind/name: FIELD: SEVERITY[RULE]: problem; fix. "
        "Exit 0 clean, 1 errors (or warnings with --strict), 2 unreadable input.",
    )
    check.add_argument("paths", nargs="+", metavar="PATH")
    _add_common(check)
    check.add_argument("--strict", action="store_true", help="warnings count as findings")
    check.add_argument(
        "--lb",
        type=_lb,
        metavar="PRESET[:OPTIONS]",
        help="what sits in front of the pods, as the propagation the drain must cover: "
        f"{', '.join(lb_presets.PRESETS)}; options interval=S,threshold=N,delay=S,sync=S "
        "(e.g. cloud:interval=10,threshold=3,delay=60); --min-propagation overrides it, "
        "a larger ZDT_MIN_PROPAGATION_SECONDS in the container wins (docs/k8s.md)",
    )
    check.set_defaults(func=_cmd_check)

    timeline = sub.add_parser(
        "timeline",
        help="print the termination timeline with the actual numbers",
        description="Print what happens after the pod is deleted, in seconds: preStop, "
        "SIGTERM, drain end, graceful deadline, SIGKILL, and the slack. Without a "
        "manifest the budget comes from the Gunicorn config and this shell's ZDT_* env.",
    )
    timeline.add_argument("paths", nargs="*", metavar="MANIFEST")
    _add_common(timeline)
    timeline.add_argument("--svg", metavar="FILE", help="also write the timeline as SVG")
    timeline.set_defaults(func=_cmd_timeline)

    _add_drill(sub)
    return parser


def _add_drill(sub: Any) -> None:
    """``gunicorn_zdt.drill.cli.add_parser(subparsers)`` registers ``drill`` (func=...)."""
    try:
        from .drill import cli as drill_cli
    except ModuleNotFoundError as exc:
        if exc.name in {f"{__package__}.drill", f"{__package__}.drill.cli"}:
            return
        raise
    drill_cli.add_parser(sub)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Console entry point; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    func = getattr(args, "func", None)
    if func is None:
        parser.print_usage(sys.stderr)
        print("gunicorn-zdt: error: choose a command: check, timeline", file=sys.stderr)
        return EXIT_USAGE
    args.stdin = stdin
    args.stdout = stdout or sys.stdout
    args.stderr = stderr or sys.stderr
    return int(func(args))
