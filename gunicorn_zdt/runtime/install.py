"""Gunicorn server hooks: drain on SIGTERM instead of closing the listeners at once.

Use from your Gunicorn config module, as its last line::

    from gunicorn_zdt.hooks import install
    install(globals())

Each hook says which process runs it and chains the user's own hook. What happens on
SIGTERM to the master is the termination sequence of :mod:`.termination` (the README's
termination timeline): readiness 503 on every worker at once; a drain that keeps serving
(each response closes its keep-alive connection) for at least ``ZDT_DRAIN_SECONDS``, until
traffic stops arriving, at most the drain's maximum; then Gunicorn's own graceful stop.
The master's loop is never blocked: SIGTERM only records the moment and arms a timer.
"""

from __future__ import annotations

import inspect
import os
import signal
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from ..core import budget, settings, workers
from ..core.plan import DrainPlan
from ..core.refusals import (
    HOOK_NAMES,
    Installed,
    integration_problem,
    stamp_installed,
    startup_refusals,
)
from ..core.settings import SettingError
from . import context, idle_close, phase, stacks, state
from .probe_server import ProbeConfig
from .quiet_stop import tolerate_listener_shutdown
from .surface import Arbiter, Request, Worker, missing_surface
from .termination import Termination

__all__ = ["HOOK_NAMES", "install", "integration_problem"]

_WORKER_BOOT_ERROR = 3  # Gunicorn's exit code for "worker failed to boot": the master halts


def install(
    namespace: MutableMapping[str, Any],
    *,
    drain_seconds: float | None = None,
    grace_period_seconds: float | None = None,
    prestop_seconds: float | None = None,
    drain_max_seconds: float | None = None,
    probe_bind: str | None = None,
) -> None:
    """Add the drain hooks to a Gunicorn config module's namespace (pass ``globals()``).

    Hooks already in the namespace are kept and run after ours; call ``install`` last:
    a hook defined after it replaces ours, and Gunicorn then refuses to start, saying
    which. ``ZDT_*`` environment variables override the arguments (``probe_bind``: the
    probe listener's address, as ``ZDT_PROBE_BIND``; the ready-made config passes one).
    When the grace period is known and the config sets no ``graceful_timeout``, one is derived so that preStop
    + drain + graceful_timeout + margin fits. Bad values are reported when Gunicorn
    starts (``on_starting``), as one line, and Gunicorn exits 1.
    """
    rt = context.create()
    errors: list[str] = []
    try:
        plan: DrainPlan | None = DrainPlan.resolve(
            drain_seconds,
            grace_period_seconds,
            prestop_seconds,
            drain_max_seconds,
            probe_bind,
            worker_timeout=namespace.get("timeout"),
            graceful_timeout=namespace.get("graceful_timeout"),
        )
        settings.validate_environment()
    except SettingError as exc:
        plan = None
        errors.append(str(exc))

    derives = "graceful_timeout" not in namespace
    if plan is not None and derives:
        _derive_graceful_timeout(namespace, plan)
    ours: dict[str, Callable[..., Any]] = {
        "on_starting": _on_starting_hook(plan, errors),
        "when_ready": _when_ready_hook(plan, rt),
        "pre_fork": _pre_fork_hook(rt),
        "post_fork": _post_fork_hook(rt),
        "post_worker_init": _post_worker_init_hook(rt),
        "pre_request": _pre_request_hook(rt, plan),
        "post_request": _post_request_hook(rt),
        "on_exit": _on_exit_hook(rt, plan),
    }
    assert tuple(ours) == HOOK_NAMES
    for name, hook in ours.items():
        theirs = namespace.get(name)
        if name == "pre_request" and theirs is None:
            theirs = _gunicorn_default_pre_request
        namespace[name] = _chain(name, hook, theirs, errors)
    arguments = dict(
        drain_seconds=drain_seconds,
        grace_period_seconds=grace_period_seconds,
        prestop_seconds=prestop_seconds,
        drain_max_seconds=drain_max_seconds,
        probe_bind=probe_bind,
    )
    stamp_installed(namespace, Installed(plan, errors, arguments, derives))  # for check
    _guard_arbiter_start()


def _derive_graceful_timeout(namespace: MutableMapping[str, Any], plan: DrainPlan) -> None:
    """Grace period known, no ``graceful_timeout`` in the config: the largest that fits
    preStop + the drain's maximum + graceful_timeout + margin (none fits: on_starting says so)."""
    grace = plan.grace_period_seconds
    if grace is None:
        return
    derived = budget.derive_graceful_timeout(grace, plan.drain_cap_seconds, plan.prestop_seconds)
    if derived > 0:
        namespace["graceful_timeout"] = derived


def _guard_arbiter_start() -> None:
    """Check the hooks when the master starts, whichever of ours survived.

    ``on_starting`` refuses a config whose hooks replaced ours, unless it was replaced
    itself (``install()`` first, then the user's own ``on_starting``...): the drain would
    then be off with no more than a warning from each worker. So the check also runs as
    the first thing ``Arbiter.start`` does; Gunicorn prints its RuntimeError as one
    ``Error:`` line and exits 1. Wrapped once per process (``install()`` runs again on
    every SIGHUP).
    """
    import gunicorn.arbiter

    arbiter = gunicorn.arbiter.Arbiter
    start = arbiter.start
    if getattr(start, "zdt_guard", False):
        return

    def guarded_start(self: Any) -> Any:
        if getattr(getattr(self.cfg, "on_starting", None), "zdt_hook", False) is False:
            problem = missing_surface(self) or integration_problem(self.cfg)
            if problem:
                raise RuntimeError(problem)
        return start(self)

    guarded_start.zdt_guard = True  # type: ignore[attr-defined]
    arbiter.start = guarded_start  # type: ignore[method-assign]


def _chain(
    name: str, ours: Callable[..., Any], theirs: Any, errors: list[str]
) -> Callable[..., Any]:
    """Run our hook, then the user's (unwrapping ours if ``install`` ran twice).

    Gunicorn checks each hook's arity, so the wrapper takes exactly our arguments; a
    user's hook of the wrong arity is reported by ``on_starting`` in one line.
    """
    theirs = getattr(theirs, "_zdt_user_hook", theirs)
    arity = ours.__code__.co_argcount
    chained: Callable[..., Any]
    if theirs is None:
        chained = ours
    elif name == "post_request" and callable(theirs) and 2 <= _arity(theirs) <= 4:
        their_arity = _arity(theirs)  # Gunicorn accepts 2 to 4 arguments for this one

        def chained(a: Any, b: Any, c: Any, d: Any) -> Any:
            ours(a, b, c, d)
            return theirs(*(a, b, c, d)[:their_arity])

    elif not callable(theirs) or _arity(theirs) != arity:
        got = f"{_arity(theirs)} argument(s)" if callable(theirs) else f"{type(theirs).__name__}"
        errors.append(
            f"your Gunicorn hook {name} takes {got}; Gunicorn calls it with {arity} "
            f"({', '.join(ours.__code__.co_varnames[:arity])}): fix its signature"
        )
        chained = ours
    elif arity == 1:

        def chained(a: Any) -> Any:
            ours(a)
            return theirs(a)

    else:

        def chained(a: Any, b: Any) -> Any:
            ours(a, b)
            return theirs(a, b)

    marked: Any = chained
    if chained is not ours:
        marked._zdt_user_hook = theirs
        marked.__dict__.update({k: v for k, v in vars(ours).items() if k.startswith("zdt_")})
    marked.zdt_hook = True  # what integration_problem() looks for
    return chained


def _arity(func: Callable[..., Any]) -> int:
    params = inspect.signature(func).parameters.values()
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _on_starting_hook(plan: DrainPlan | None, errors: list[str]) -> Callable[[Any], None]:
    def on_starting(server: Arbiter) -> None:
        """Master, before listeners: refuse a config that would drain wrong or cut requests."""
        refusals = startup_refusals(server.cfg, plan, errors)  # gunicorn-zdt check's too
        problem = missing_surface(server) or (refusals[0].line if refusals else None)
        if problem:
            raise RuntimeError(problem)
        assert plan is not None
        plan_budget = plan.budget_for(server.cfg)
        for warning in plan_budget.warnings():
            server.log.warning("gunicorn-zdt: %s", warning)
        if workers.kind(server.cfg.worker_class_str) in workers.MUST_CLOSE_IGNORED:
            server.log.warning(
                "gunicorn-zdt: worker class %s ignores req.must_close: keep-alive connections "
                "are not closed during the drain; use sync, gthread or gevent",
                server.cfg.worker_class_str,
            )
        if plan.probe_bind is not None:  # bind now: a taken port stops the start, one line
            context.create().listener.bind(*plan.probe_bind)
        grace = plan.grace_period_seconds
        server.log.info(
            "gunicorn-zdt: drain %s s to %s s (quiet %s s), graceful_timeout %s s, preStop %s s, "
            "grace period %s; drain maximum %s",
            budget.fmt(plan.drain_seconds),
            budget.fmt(plan.drain_cap_seconds),
            budget.fmt(plan.drain_quiet_seconds),
            budget.fmt(server.cfg.graceful_timeout),
            budget.fmt(plan.prestop_seconds),
            "unknown (set ZDT_GRACE_PERIOD_SECONDS)"
            if grace is None
            else f"{budget.fmt(grace)} s (slack {budget.fmt(plan_budget.slack_seconds or 0)} s)",
            plan.drain_max_reason or "set by ZDT_DRAIN_MAX_SECONDS",
        )

    return on_starting


def _when_ready_hook(plan: DrainPlan | None, rt: context.Runtime) -> Callable[[Any], None]:
    def when_ready(server: Arbiter) -> None:
        """Master, listeners open, before the first fork: take over SIGTERM."""
        assert plan is not None  # on_starting refused to start otherwise
        rt.state.set_serving()
        rt.state.beat_master()
        rt.state.set_worker_threads(workers.requests_per_worker(server.cfg))
        _spawn_probe_listener(server, plan, rt)
        rt.termination = Termination(server, plan, rt.state, rt.listener)
        rt.termination.take_over()  # the drain's SIGTERM, Gunicorn's stop watched

    return when_ready


def _pre_fork_hook(rt: context.Runtime) -> Callable[[Any, Any], None]:
    def pre_fork(server: Arbiter, worker: Any) -> None:
        """Master, before forking a worker: give it a slot no live worker holds."""
        worker.zdt_slot = rt.assign_slot(worker, list(server.WORKERS.values()))

    return pre_fork


def _post_fork_hook(rt: context.Runtime) -> Callable[[Any, Any], None]:
    def post_fork(server: Arbiter, worker: Worker) -> None:
        """Worker, just forked: drop our timer handler; report heartbeats to our slot."""
        if rt.state.phase == state.Phase.STARTING:  # our master-side hooks never ran
            problem = integration_problem(server.cfg) or "gunicorn-zdt: when_ready never ran"
            print(f"Error: {problem}", file=sys.stderr, flush=True)
            os._exit(_WORKER_BOOT_ERROR)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the master's drain ticks are not ours
        index = getattr(worker, "zdt_slot", None)
        if index is None:
            return
        rt.become_worker(index)
        tell_gunicorn = worker.notify

        def notify() -> None:  # Gunicorn calls it from the worker's loop, about once a second
            tell_gunicorn()
            rt.state.beat_worker(index)

        worker.notify = notify  # type: ignore[method-assign]

    return post_fork


def _post_worker_init_hook(rt: context.Runtime) -> Callable[[Any], None]:
    def post_worker_init(worker: Worker) -> None:
        """Worker, app loaded: start publishing readiness; tolerate the listener's shutdown;
        dump stacks on request (after Gunicorn reset its signals); phase() sees exits."""
        if workers.asgi_kind(type(worker)):  # probes, evidence, quiet stop: gunicorn_zdt.asgi
            from ..asgi.wiring import wire_worker

            wire_worker(worker, rt)  # before the publisher: its first verdict has our checks
        rt.start_publisher()
        phase.attach_worker(lambda: not worker.alive)
        idle_close.track(worker)  # gevent: a stop closes idle keep-alive connections
        if rt.worker_slot is not None and stacks.arm():
            rt.state.arm_dump(rt.worker_slot)
        tolerate_listener_shutdown(worker, lambda: rt.state.phase == state.Phase.STOPPING)

    return post_worker_init


def _spawn_probe_listener(server: Arbiter, plan: DrainPlan, rt: context.Runtime) -> None:
    """Master, when_ready (no worker forked yet, one thread): fork the listener."""
    limit = plan.heartbeat_timeout_seconds
    if limit is None:
        limit = float(server.cfg.timeout or 30)
    address = rt.listener.spawn(rt.state, ProbeConfig(plan.probe_prefix, limit, os.getpid()))
    if address:
        server.log.info(
            "gunicorn-zdt: probe listener at http://%s%s/{live,ready,startup} (pid %s), "
            "heartbeat timeout %s s",
            address,
            plan.probe_prefix,
            rt.listener.pid,
            budget.fmt(limit),
        )


def _pre_request_hook(rt: context.Runtime, plan: DrainPlan | None) -> Callable[[Any, Any], None]:
    shared = rt.state
    probes = f"{plan.probe_prefix}/" if plan else "/healthz/"
    health_checks = frozenset(plan.health_check_paths if plan else ())

    def pre_request(worker: Worker, req: Request) -> None:
        """Worker, every request: while draining, close the connection after the response,
        record whether traffic still arrives and what is served (shared memory, no I/O).

        The serving entry is kept in ``rt.serving_entries`` by ``id(req)``, never on ``req``:
        Gunicorn's ``asgi`` worker passes a request class with ``__slots__``."""
        draining = shared.draining
        if draining:
            req.must_close = True
        phase.current_request.set(req)  # stopping() closes its connection after the response
        idle_close.request_started()
        index = rt.worker_slot
        if index is None:
            return
        traffic = not req.path.startswith(probes) and req.path not in health_checks
        new_connection = getattr(req, "req_number", 1) == 1
        with rt.evidence_lock:
            shared.request_started(index, draining, traffic, new_connection)
            rt.serving_entries[id(req)] = shared.serving_started(index, req.method, req.path)

    return pre_request


def _post_request_hook(rt: context.Runtime) -> Callable[[Any, Any, Any, Any], None]:
    def post_request(worker: Worker, req: Request, environ: Any, resp: Any) -> None:
        """Worker, after every response: one request fewer in flight, its entry free."""
        idle_close.request_finished()
        index = rt.worker_slot
        if index is not None:
            with rt.evidence_lock:
                rt.state.request_finished(index)
                rt.state.serving_finished(index, rt.serving_entries.pop(id(req), -1))

    return post_request


def _gunicorn_default_pre_request(worker: Worker, req: Request) -> None:
    """What Gunicorn's own default ``pre_request`` does, kept when the user defines none."""
    worker.log.debug("%s %s", req.method, req.path)


def _on_exit_hook(rt: context.Runtime, plan: DrainPlan | None) -> Callable[[Any], None]:
    def on_exit(server: Arbiter) -> None:
        """Master, last thing before exit: the probe listener goes first, then the report."""
        rt.listener.stop()
        if rt.termination is not None:
            rt.termination.report()

    return on_exit
