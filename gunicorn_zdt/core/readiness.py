"""Readiness and startup, decided in one place.

The Flask view (app port) and the probe listener both call :func:`decide_ready` and
:func:`decide_startup`, so the two servers cannot disagree on a status or a body.
Modelled on kube-apiserver's ``/readyz``: the drain is one more named check,
``shutdown``, that fails from SIGTERM on; ``?verbose`` lists it and ``?exclude=`` cannot
remove it. Failure reasons are shown only when the caller allows it. Pure functions,
stdlib only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SHUTDOWN", "Outcome", "PodView", "decide_ready", "decide_startup", "pod_view"]

SHUTDOWN = "shutdown"
Body = dict[str, Any]
Query = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class Outcome:
    """The last result of one named check.

    ``started``: ``time.monotonic()`` when the run that produced it began (None: unknown).
    """

    ok: bool
    seconds: float | None = None
    reason: str | None = None
    started: float | None = None


@dataclass(frozen=True)
class PodView:
    """What readiness depends on, wherever it was read from.

    ``checks`` is None while no result exists yet (a worker's first run still going).
    ``gate_open`` is False while the app has not started (``startup="explicit"`` until
    ``mark_started()``): readiness then answers 503 "starting".
    """

    draining: bool
    gate_open: bool
    checks: Mapping[str, Outcome] | None


def pod_view(draining: bool, verdicts: Iterable[Any], now: float) -> PodView:
    """One view for the whole pod from the verdicts workers published in shared memory.

    ``verdicts`` are :class:`gunicorn_zdt.runtime.state.Slot`-like objects. Each check's outcome is
    the freshest any worker published, freshest meaning the run that *began* last (the
    publish time breaks ties and stands in when a verdict carries no start): a worker whose
    run hung through an outage publishes its timeout, or the run's late answer, after
    another worker's run that began once the dependency was back; publish order would let
    that old news turn the pod 503 again. So two workers never disagree for longer than one
    check run, and a run begun after an outage started fails the pod. The pod counts as
    started (the readiness gate) once every worker with a current verdict has started.
    Expired verdicts (a dead or hung worker) are ignored.
    """
    fresh = [v for v in verdicts if v.verdict_published > 0 and v.verdict_valid_until >= now]
    if not fresh:
        return PodView(draining, True, None)
    best: dict[str, tuple[tuple[float, float], Outcome]] = {}
    for v in fresh:
        for name, item in v.detail.get("checks", {}).items():
            ok, seconds, reason = item[:3]
            started = float(item[3]) if len(item) > 3 and item[3] is not None else None
            key = (v.verdict_published if started is None else started, v.verdict_published)
            if name not in best or key > best[name][0]:
                best[name] = (key, Outcome(bool(ok), float(seconds), reason or None, started))
    checks = {name: outcome for name, (_, outcome) in best.items()}
    gate_open = all(v.detail.get("started", True) for v in fresh)
    return PodView(draining, gate_open, checks)


def decide_ready(
    view: PodView, query: Query, *, expose_reasons: bool = False, only: str | None = None
) -> tuple[int, Body]:
    """Status and JSON body of ``/ready`` (``only``: ``/ready/<name>``)."""
    checks = dict(view.checks or {})
    if only is not None:
        if only not in checks:
            return 404, {"status": "unknown check", "check": only}
        checks = {only: checks[only]}
        query = {k: v for k, v in query.items() if k != "exclude"}
    excluded = list(query.get("exclude", ()))
    warnings = [
        f"{SHUTDOWN!r} cannot be excluded: it fails from SIGTERM on"
        if name == SHUTDOWN
        else f"unknown check in exclude: {name!r}"
        for name in excluded
        if name == SHUTDOWN or name not in checks
    ]
    selected = {n: o for n, o in checks.items() if n not in excluded}
    if only is None:  # the drain flip is part of every answer, never cached, never excluded
        shutdown = Outcome(not view.draining, None, None if not view.draining else "draining")
        selected = {SHUTDOWN: shutdown, **selected}

    if view.draining:
        status = "draining"
    elif not view.gate_open:
        status = "starting"
    elif view.checks is None:
        status = "failed"
    else:
        status = "ok" if all(o.ok for o in selected.values()) else "failed"
    body: Body = {"status": status}
    if "verbose" in query:
        body["checks"] = {n: _describe(o, expose_reasons) for n, o in selected.items()}
    elif status == "failed":
        body["failed"] = [n for n, o in selected.items() if not o.ok]
    if view.checks is None and status == "failed":
        body["detail"] = "no check results yet"
    if warnings:
        body["warnings"] = warnings
    return (200 if status == "ok" else 503), body


def decide_startup(started: bool, pending: Mapping[str, Outcome] | None = None) -> tuple[int, Body]:
    """``/startup``: 200 once the app started (pod-wide, for good), else 503.

    ``pending`` are startup checks that ran now, before the app counted as started.
    """
    if started:
        return 200, {"status": "ok"}
    body: Body = {"status": "starting"}
    failed = [n for n, o in (pending or {}).items() if not o.ok]
    if failed:
        body["failed"] = failed
    return 503, body


def _describe(outcome: Outcome, expose_reasons: bool) -> Body:
    item: Body = {"status": "ok" if outcome.ok else "failed"}
    if outcome.seconds is not None:
        item["seconds"] = round(outcome.seconds, 4)
    if not outcome.ok:
        item["reason"] = (outcome.reason or "failed") if expose_reasons else "reason withheld"
    return item
