"""Every reason the drain hooks refuse to start Gunicorn, as pure functions.

``on_starting`` (:mod:`gunicorn_zdt.hooks`) raises the first of :func:`startup_refusals`;
``gunicorn-zdt check`` reports each of them (rule ``startup``) from this same code, so
the two can never disagree: a config Gunicorn will refuse never passes ``check``. Each
line is what Gunicorn prints after ``Error:``. Stdlib only (plus the budget and plan).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import budget
from .plan import DrainPlan
from .workers import keeps_alive

__all__ = [
    "HOOK_NAMES",
    "Installed",
    "Refusal",
    "budget_refusal",
    "heartbeat_refusal",
    "installed_in",
    "integration_problem",
    "stamp_installed",
    "startup_refusals",
]

#: The Gunicorn hooks that ``install`` adds (chaining any you already have).
HOOK_NAMES = (
    "on_starting",
    "when_ready",
    "pre_fork",
    "post_fork",
    "post_worker_init",
    "pre_request",
    "post_request",
    "on_exit",
)

#: Where each budget input of the runtime's own check comes from (the manifest is unknown).
BUDGET_SOURCES = (
    "grace period from ZDT_GRACE_PERIOD_SECONDS, preStop from ZDT_PRESTOP_SECONDS, drain "
    "from ZDT_DRAIN_MAX_SECONDS: the longest drain"
)


@dataclass(frozen=True)
class Refusal:
    """One reason Gunicorn will not start: ``line`` is what it prints after ``Error:``.

    ``kind``: ``hooks`` (a hook replaced after ``install()``), ``setting`` (a value
    ``install()`` could not use: a bad value, the drain window's pairs and bounds, a hook
    of the wrong signature), ``budget`` (the grace period does not fit) or ``heartbeat``.
    """

    kind: str
    setting: str
    line: str


@dataclass(frozen=True)
class Installed:
    """What ``install()`` resolved, stamped on each hook it adds (attribute ``zdt_installed``).

    The contract between the runtime and ``gunicorn-zdt check``, which loads a config
    with Gunicorn's own loader and reads this from the hooks Gunicorn would call:
    ``plan`` (None when a setting could not be used), ``errors`` (what ``install()``
    could not use, in order; the list keeps growing while ``install()`` chains hooks),
    ``arguments`` (the explicit ``install(...)`` arguments, None where not given).
    """

    plan: DrainPlan | None
    errors: Sequence[str]
    arguments: Mapping[str, Any]
    #: The config left ``graceful_timeout`` to ``install()``, which derives it from the plan.
    derives_graceful_timeout: bool = False


def stamp_installed(namespace: MutableMapping[str, Any], record: Installed) -> None:
    """Mark each of ``install()``'s hooks in a config namespace with what it resolved."""
    for name in HOOK_NAMES:
        hook = namespace.get(name)
        if hook is not None:
            hook.zdt_installed = record


def installed_in(holder: Any) -> Installed | None:
    """The record of ``install()`` on any hook of a Gunicorn ``cfg`` or config module.

    None when ``install()`` never ran there (every hook is someone else's).
    """
    for name in HOOK_NAMES:
        hook = holder.get(name) if isinstance(holder, Mapping) else getattr(holder, name, None)
        record = getattr(hook, "zdt_installed", None)
        if isinstance(record, Installed):
            return record
    return None


def integration_problem(cfg: Any) -> str | None:
    """None when every hook Gunicorn will call is ours (or chained through ours).

    A hook defined after ``install(globals())`` replaces ours: the drain, or the closing
    of keep-alive connections, is then silently off. Also used by ``gunicorn-zdt check``.
    """
    replaced = [name for name in HOOK_NAMES if not hasattr(getattr(cfg, name, None), "zdt_hook")]
    if not replaced:
        return None
    if len(replaced) == len(HOOK_NAMES):
        return (
            "gunicorn-zdt: the Gunicorn config does not call install(globals()) (or every "
            "hook was redefined after it): add `from gunicorn_zdt.hooks import install` and "
            "`install(globals())` as its last line"
        )
    return (
        f"gunicorn-zdt: Gunicorn hook(s) {', '.join(replaced)} defined after "
        "install(globals()) replaced ours, which turns the drain off; define your hooks "
        "before install(globals()) (it chains them) and call it last"
    )


def budget_refusal(plan: DrainPlan, cfg: Any) -> str | None:
    """The grace period (``ZDT_GRACE_PERIOD_SECONDS``) that the timings do not fit."""
    errors = plan.budget_for(cfg).errors()
    if not errors:
        return None
    return f"gunicorn-zdt: {errors[0]} ({BUDGET_SOURCES})"


def heartbeat_refusal(plan: DrainPlan, cfg: Any) -> str | None:
    """An idle sync worker reports only every ``timeout / 2`` s (its select() timeout);
    a shorter heartbeat limit would fail liveness on an idle pod and get it restarted.
    Only the probe listener reads the heartbeat: without ``probe_bind`` this is None."""
    limit = plan.heartbeat_timeout_seconds
    if plan.probe_bind is None or limit is None or keeps_alive(cfg) or not cfg.timeout:
        return None
    interval = cfg.timeout / 2
    if limit > interval:
        return None
    return (
        f"gunicorn-zdt: ZDT_HEARTBEAT_TIMEOUT_SECONDS={budget.fmt(limit)} <= timeout/2 = "
        f"{budget.fmt(interval)}: an idle sync worker reports its heartbeat only every "
        f"timeout/2 s, so liveness would fail on an idle pod; raise it above "
        f"{budget.fmt(interval)} (or unset it: default timeout {budget.fmt(cfg.timeout)})"
    )


def startup_refusals(cfg: Any, plan: DrainPlan | None, errors: Sequence[str]) -> list[Refusal]:
    """Every refusal, in the order ``on_starting`` checks them (it raises the first).

    ``errors``: what ``install()`` could not use (bad values, the drain window, hook
    signatures), in the order it met them; with any of them there is no ``plan``.
    """
    out = []
    problem = integration_problem(cfg)
    if problem:
        out.append(Refusal("hooks", "hooks", problem))
    out += [Refusal("setting", _setting_in(e), f"gunicorn-zdt: {e}") for e in errors[:1]]
    if plan is not None:
        line = budget_refusal(plan, cfg)
        if line:
            out.append(Refusal("budget", "ZDT_GRACE_PERIOD_SECONDS", line))
        line = heartbeat_refusal(plan, cfg)
        if line:
            out.append(Refusal("heartbeat", "ZDT_HEARTBEAT_TIMEOUT_SECONDS", line))
    return out


def _setting_in(error: str) -> str:
    """The setting an error line starts with (``ZDT_DRAIN_SECONDS=20 > ...``), else hooks."""
    words = error.partition("=")[0].split()
    return words[0] if words and words[0].startswith("ZDT_") else "hooks"
