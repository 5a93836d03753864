"""The ``gunicorn-zdt`` command line (also ``python -m gunicorn_zdt``).

    gunicorn-zdt check [--config CONF] [--strict] PATH...
    gunicorn-zdt timeline [--config CONF] [--svg FILE] [MANIFEST...]
    gunicorn-zdt drill ...            (when gunicorn_zdt.drill is installed)

Exit status: 0 clean, 1 findings (errors; warnings too with ``--strict``), 2 usage or
input that cannot be read (bad path, not YAML, a Gunicorn config that fails to load).
Findings go to stdout, one a line; input errors and the summary go to stderr. This
module only parses and dispatches: the commands are :mod:`gunicorn_zdt.check.commands`
(and :mod:`gunicorn_zdt.drill.cli`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import IO, Any

from . import __version__
from .check import lb as lb_presets
from .check.analysis import Analysis, analyse_documents
from .check.commands import EXIT_USAGE, run_check, run_timeline
from .check.lb import LoadBalancer, LoadBalancerError
from .core import settings

__all__ = ["Analysis", "analyse_documents", "build_parser", "main"]


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


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not name.replace("_", "a").isalnum():
        raise argparse.ArgumentTypeError(
            f"--env {text!r}: not NAME=VALUE; give the image's ENV as e.g. --env PORT=8000"
        )
    return name, value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="GUNICORN_CONF",
        help="Gunicorn config (a file or python:module), instead of the -c in the "
        "container's command; loaded by Gunicorn with the container's env",
    )
    parser.add_argument(
        "--env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="the image's ENV (Dockerfile ENV lines the manifest does not show), under the "
        "container's own env while the Gunicorn config loads; repeat for several",
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
    check.set_defaults(func=run_check)

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
    timeline.set_defaults(func=run_timeline)

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
