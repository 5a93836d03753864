"""The ``check`` and ``timeline`` commands, once :mod:`gunicorn_zdt.cli` parsed them.

Exit status: 0 clean, 1 findings (errors; warnings too with ``--strict``), 2 usage or
input that cannot be read. Findings go to stdout, one a line; input errors, notes and the
summary go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

from ..core import settings
from ..core.budget import Budget
from ..core.plan import DrainPlan
from . import app_config
from .analysis import analyse
from .app_config import ConfigLoadError
from .pod import ERROR, Pod
from .rules import check_pod
from .timeline import render_svg, render_text

__all__ = ["EXIT_FINDINGS", "EXIT_OK", "EXIT_USAGE", "run_check", "run_timeline"]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def run_check(args: argparse.Namespace) -> int:
    analysis = analyse(
        args.paths, args.config, args.min_propagation, args.stdin, args.lb, dict(args.env)
    )
    n_errors = n_warnings = 0
    for pod in analysis.pods:
        try:
            findings = check_pod(pod)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            analysis.errors.append(_unreadable_neighbour(pod, exc))
            continue
        for finding in findings:
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


def _unreadable_neighbour(pod: Pod, exc: Exception) -> str:
    """One input-error line for an object next to the workload that is not the shape the
    API server gives (a Service spec that is a list, a selector that is a string)."""
    w = pod.workload
    return (
        f"{w.source}: {w.ref}: an object that selects or routes to these pods cannot be read "
        f"({type(exc).__name__}: {exc}); check the stream with kubectl apply --dry-run=client"
    )


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
    plan = view.plan or DrainPlan.no_drain(minimum)
    b = dataclasses.replace(plan.budget_for(view.cfg), min_propagation_seconds=minimum)
    title = view.location or "Gunicorn defaults"
    return title, b


def run_timeline(args: argparse.Namespace) -> int:
    panels: list[tuple[str, Budget]] = []
    if args.paths:
        analysis = analyse(
            args.paths, args.config, args.min_propagation, args.stdin, None, dict(args.env)
        )
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
