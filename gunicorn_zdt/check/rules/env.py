"""The container's ``ZDT_*`` env against the Gunicorn side and the pod spec."""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from ...core import settings
from ...core.budget import fmt
from ...core.settings import SettingError
from ..pod import ERROR, WARNING, Finding, Pod


def rule_zdt_env(pod: Pod) -> Iterator[Finding]:
    w = pod.workload
    for name, value in sorted(w.env.items()):
        if not name.startswith("ZDT_"):
            continue
        if name not in settings.BY_NAME:
            close = difflib.get_close_matches(name, list(settings.BY_NAME))  # best first
            hint = (
                f"did you mean {close[0]}?"
                if close
                else "see the configuration reference in the README"
            )
            yield pod.finding(
                "zdt-env", WARNING, w.env_field(name), f"unknown setting, ignored; {hint}"
            )
            continue
        try:
            settings.BY_NAME[name].parse(name, value)
        except SettingError as exc:
            yield pod.finding("zdt-env", ERROR, w.env_field(name), str(exc))
    for name in sorted(n for n in w.env_unknown if n.startswith("ZDT_")):
        yield pod.finding(
            "zdt-env",
            WARNING,
            w.env_field(name),
            f"its value comes from {w.env_unknown[name]}: the check cannot see it and reads "
            "the config without it; pass that object too, or write the value in the manifest",
        )
    for ref in w.env_hidden:
        yield pod.finding(
            "zdt-env",
            WARNING,
            f"{w.container_field}.envFrom[{ref}]",
            f"{ref} is not in the input: the check cannot see the values it sets (ZDT_*, "
            "PORT, GUNICORN_CMD_ARGS) and reads the config without them; pass it too (e.g. "
            "render the whole chart or kustomization into one stream)",
        )
    yield from _agrees_with_the_pod_spec(pod)


def _agrees_with_the_pod_spec(pod: Pod) -> Iterator[Finding]:
    """The grace period and preStop Gunicorn derives graceful_timeout from, against the pod's."""
    w = pod.workload
    plan = pod.view.plan
    if plan is None:
        return
    grace = w.grace_period_seconds
    fld = w.env_field("ZDT_GRACE_PERIOD_SECONDS")
    if plan.grace_period_seconds is None:
        if "ZDT_GRACE_PERIOD_SECONDS" not in w.env_indirect and not w.env_hidden:
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
            f"{_named(pod, 'ZDT_GRACE_PERIOD_SECONDS', 'grace_period_seconds')} "
            f"{fmt(plan.grace_period_seconds)} != terminationGracePeriodSeconds {fmt(grace)}: "
            "Gunicorn derives graceful_timeout for the wrong grace period; "
            f"{_set(pod, 'ZDT_GRACE_PERIOD_SECONDS', 'grace_period_seconds', grace)}",
        )
    prestop = w.prestop.seconds
    if plan.prestop_seconds != prestop:
        yield pod.finding(
            "zdt-env",
            ERROR,
            w.env_field("ZDT_PRESTOP_SECONDS"),
            f"{_named(pod, 'ZDT_PRESTOP_SECONDS', 'prestop_seconds')} "
            f"{fmt(plan.prestop_seconds)} != preStop sleep {fmt(prestop)} ({w.prestop.field}): "
            "Gunicorn derives graceful_timeout for the wrong preStop; "
            f"{_set(pod, 'ZDT_PRESTOP_SECONDS', 'prestop_seconds', prestop)}",
        )


def _from_install(pod: Pod, name: str, argument: str) -> bool:
    """The value came from an ``install(...)`` argument (the env, which wins, lacks it)."""
    install = pod.view.install
    if name in pod.workload.env or install is None:
        return False
    return install.arguments.get(argument) is not None


def _named(pod: Pod, name: str, argument: str) -> str:
    """The setting that gave the value: the env variable, or the ``install()`` argument."""
    if _from_install(pod, name, argument):
        return f"install({argument}=...) in {pod.view.location}"
    return name


def _set(pod: Pod, name: str, argument: str, value: float) -> str:
    if _from_install(pod, name, argument):
        return (
            f"pass {argument}={fmt(value)} to install(), or set {name}: "
            f'"{fmt(value)}" (the env wins over the argument)'
        )
    return f'set it to "{fmt(value)}"'
