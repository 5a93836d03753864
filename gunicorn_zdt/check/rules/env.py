"""The container's ``ZDT_*`` env against the Gunicorn side and the pod spec."""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from ... import settings
from ...budget import fmt
from ...settings import SettingError
from ..pod import ERROR, WARNING, Finding, Pod


def rule_zdt_env(pod: Pod) -> Iterator[Finding]:
    w, view = pod.workload, pod.view
    for name, value in sorted(w.env.items()):
        if not name.startswith("ZDT_"):
            continue
        if name not in settings.BY_NAME:
            close = difflib.get_close_matches(name, list(settings.BY_NAME), n=1)
            hint = f"did you mean {close[0]}?" if close else "see gunicorn_zdt/settings.py"
            yield pod.finding(
                "zdt-env", WARNING, w.env_field(name), f"unknown setting, ignored; {hint}"
            )
            continue
        try:
            settings.BY_NAME[name].parse(name, value)
        except SettingError as exc:
            yield pod.finding("zdt-env", ERROR, w.env_field(name), str(exc))
    for name in sorted(n for n in w.env_indirect if n.startswith("ZDT_")):
        yield pod.finding(
            "zdt-env",
            WARNING,
            w.env_field(name),
            "set through valueFrom: the check cannot see its value; write the value in the "
            "manifest",
        )
    plan = view.plan
    if plan is None:
        return
    grace = w.grace_period_seconds
    fld = w.env_field("ZDT_GRACE_PERIOD_SECONDS")
    if plan.grace_period_seconds is None:
        if "ZDT_GRACE_PERIOD_SECONDS" not in w.env_indirect:
            yield pod.finding(
                "zdt-env",
                WARNING,
                fld,
                "not set: Gunicorn can neither derive graceful_timeout from the grace period "
                f'nor refuse a budget that does not fit; set it to "{fmt(grace)}" '
                "(= terminationGracePeriodSeconds)",
            )
    elif plan.grace_period_seconds != grace:
        yield pod.finding(
            "zdt-env",
            ERROR,
            fld,
            f"ZDT_GRACE_PERIOD_SECONDS {fmt(plan.grace_period_seconds)} != "
            f"terminationGracePeriodSeconds {fmt(grace)}: Gunicorn derives graceful_timeout "
            f'for the wrong grace period; set it to "{fmt(grace)}"',
        )
    prestop = w.prestop.seconds
    if plan.prestop_seconds != prestop:
        yield pod.finding(
            "zdt-env",
            ERROR,
            w.env_field("ZDT_PRESTOP_SECONDS"),
            f"ZDT_PRESTOP_SECONDS {fmt(plan.prestop_seconds)} != preStop sleep {fmt(prestop)}"
            f" ({w.prestop.field}): Gunicorn derives graceful_timeout for the wrong preStop; "
            f'set it to "{fmt(prestop)}"',
        )
