"""The termination report's JSON line: the contract between the runtime and the tools.

With ``ZDT_REPORT_JSON`` the master logs, at exit, one line ``<anything>`` + :data:`JSON_MARK`
+ one JSON object holding at least :data:`FIELDS`. The runtime writes it
(:mod:`gunicorn_zdt.runtime.termination`); ``gunicorn-zdt drill`` reads it back from each
pod's log with :func:`parse_line` and shows :func:`render_text`. Pure, stdlib only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .budget import fmt

__all__ = ["FIELDS", "JSON_MARK", "SETTING", "last_report", "parse_line", "render_text"]

#: The setting that turns the JSON line on (declared in :mod:`.settings`).
SETTING = "ZDT_REPORT_JSON"

#: What precedes the JSON object on its log line (after Gunicorn's own log prefix).
JSON_MARK = "gunicorn-zdt: termination report json "

#: The fields every report holds (times in seconds since SIGTERM unless named otherwise).
FIELDS = (
    "drain_seconds",  # how long the drain lasted
    "drain_ended_by",  # one of gunicorn_zdt.core.drain's reasons (QUIET, MAXIMUM, SIGNAL)
    "arrived_while_draining",  # requests that arrived while draining
    "last_new_connection_after_sigterm_seconds",  # None: no new connection after SIGTERM
    "connections_closed_by_drain",  # keep-alive connections from before SIGTERM it closed
    "in_flight_at_graceful_stop",  # requests running when Gunicorn's graceful stop began
    "requests_cut",  # still running when graceful_timeout expired
    "cut",  # one object per cut request: method, path, age_seconds, pid, by
    "exit_after_sigterm_seconds",  # when the master exited
)


def parse_line(line: str) -> dict[str, Any] | None:
    """The report a log line holds; None for any other line, or a malformed or partial one."""
    _, mark, body = line.partition(JSON_MARK)
    if not mark:
        return None
    try:
        report = json.loads(body)
    except ValueError:
        return None
    if not isinstance(report, dict) or any(name not in report for name in FIELDS):
        return None
    return report


def last_report(lines: Iterable[str]) -> dict[str, Any] | None:
    """The last report among ``lines`` (a restarted pod logs one per termination), or None."""
    found = None
    for line in lines:
        found = parse_line(line) or found
    return found


def render_text(report: dict[str, Any]) -> str:
    """The report as a sentence: what the runtime's own text line says."""
    last = report["last_new_connection_after_sigterm_seconds"]
    return (
        f"drain {fmt(report['drain_seconds'])} s ({report['drain_ended_by']}); "
        f"{report['arrived_while_draining']} request(s) arrived while draining, last new "
        f"connection {'none' if last is None else f'{last:.2f} s'} after SIGTERM; "
        f"{report['connections_closed_by_drain']} keep-alive connection(s) from before "
        f"SIGTERM closed by the drain; {report['in_flight_at_graceful_stop']} in flight when "
        f"the graceful stop began, {report['requests_cut']} cut at graceful_timeout; exit "
        f"{fmt(report['exit_after_sigterm_seconds'])} s after SIGTERM"
    )
