"""Gunicorn server hooks: drain on SIGTERM instead of closing the listeners at once.

Use from your Gunicorn config module, as its last line::

    from gunicorn_zdt.hooks import install
    install(globals())

What happens on SIGTERM to the master (see the README's termination timeline):

1. The shared state flips to DRAINING: every worker's readiness answers 503 at once.
2. For ``ZDT_DRAIN_SECONDS`` nothing else changes: listeners stay open, new connections
   are accepted and served, and each response closes its keep-alive connection, so
   clients move to pods that are still in the Service.
3. Then Gunicorn's own graceful stop runs: listeners close, workers finish in-flight
   requests within ``graceful_timeout``, the master exits 0.

The master's loop is never blocked: SIGTERM only records a deadline and arms a timer;
the hand-over happens when the timer re-sends SIGTERM (or the loop notices the
deadline), so workers keep being reaped, respawned and timed out during the drain.
"""

from __future__ import annotations

import inspect
import os
import signal
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from . import budget, probe_server, settings, state
from .plan import DrainPlan, keeps_alive
from .probe_supervisor import LISTENER
from .settings import SettingError

__all__ = ["HOOK_NAMES", "DrainPlan", "install"]

#: The Gunicorn hooks that ``install`` adds (chaining any you already have).
HOOK_NAMES = (
    "on_starting",
    "when_ready",
    "pre_fork",
    "post_fork",
    "post_worker_init",
    "pre_request",
    "on_exit",
)

#: Worker classes whose requests honour ``req.must_close`` (keep-alive closed while draining).
_MUST_CLOSE_UNSUPPORTED = ("gevent_pywsgi", "geventwebsocket", "uvicorn", "asgi")


def install(
    namespace: MutableMapping[str, Any],
    *,
    drain_seconds: float | None = None,
    grace_period_seconds: float | None = None,
    prestop_seconds: float | None = None,
) -> None:
    """Add the drain hooks to a Gunicorn config module's namespace (pass ``globals()``).

    Hooks already in the namespace are kept and run after ours; call ``install`` last,
    since a hook defined after it would replace ours. ``ZDT_*`` environment variables
    override the arguments. When the grace period is known and the config sets no
    ``graceful_timeout``, one is derived so that preStop + drain + graceful_timeout +
    margin fits. Bad values are reported when Gunicorn starts (``on_starting``), as one
    line, and Gunicorn exits 1.
    """
    shared = state.create()
    try:
        plan: DrainPlan | None = DrainPlan.resolve(
            drain_seconds, grace_period_seconds, prestop_seconds
        )
        error = None
    except SettingError as exc:
        plan, error = None, str(exc)

    grace = plan.grace_period_seconds if plan is not None else None
    if plan is not None and grace is not None and "graceful_timeout" not in namespace:
        derived = budget.derive_graceful_timeout(grace, plan.drain_seconds, plan.prestop_seconds)
        if derived > 0:  # otherwise on_starting reports that nothing fits
            namespace["graceful_timeout"] = derived

    ours: dict[str, Callable[..., Any]] = {
        "on_starting": _on_starting_hook(plan, error),
        "when_ready": _when_ready_hook(plan, shared),
        "pre_fork": _pre_fork_hook(shared),
        "post_fork": _post_fork_hook(shared),
        "post_worker_init": _post_worker_init,
        "pre_request": _pre_request_hook(shared),
        "on_exit": _on_exit_hook(shared),
    }
    assert tuple(ours) == HOOK_NAMES
    for name, hook in ours.items():
        namespace[name] = _chain(name, hook, namespace.get(name))


def _chain(name: str, ours: Callable[..., Any], theirs: Any) -> Callable[..., Any]:
    """Run our hook, then the user's (unwrapping ours if ``install`` ran twice).

    Gunicorn checks each hook's arity, so the wrapper takes exactly our arguments.
    """
    theirs = getattr(theirs, "_zdt_user_hook", theirs)
    arity = ours.__code__.co_argcount
    if theirs is None:
        chained = ours
    elif not callable(theirs) or _arity(theirs) != arity:
        raise TypeError(
            f"gunicorn-zdt: your Gunicorn hook {name!r} must be a function of {arity} "
            f"argument(s), like Gunicorn's own; got {theirs!r}"
        )
    elif arity == 1:

        def chained(a: Any) -> Any:
            ours(a)
            return theirs(a)

    else:

        def chained(a: Any, b: Any) -> Any:
            ours(a, b)
            return theirs(a, b)

    chained._zdt_user_hook = theirs  # type: ignore[attr-defined]
    if chained is not ours:  # keep what install() resolved readable (gunicorn-zdt check)
        chained.__dict__.update({k: v for k, v in vars(ours).items() if k.startswith("zdt_")})
    return chained


def _arity(func: Callable[..., Any]) -> int:
    params = inspect.signature(func).parameters.values()
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _on_starting_hook(plan: DrainPlan | None, error: str | None) -> Callable[[Any], None]:
    def on_starting(server: Any) -> None:
        """Master, before listeners: refuse timings that would cut requests."""
        if error is not None:
            raise RuntimeError(f"gunicorn-zdt: {error}")
        assert plan is not None
        plan_budget = plan.budget_for(server.cfg)
        errors = plan_budget.errors()
        if errors:
            raise RuntimeError(
                f"gunicorn-zdt: {errors[0]} (grace period from ZDT_GRACE_PERIOD_SECONDS, "
                "preStop from ZDT_PRESTOP_SECONDS, drain from ZDT_DRAIN_SECONDS)"
            )
        for warning in plan_budget.warnings():
            server.log.warning("gunicorn-zdt: %s", warning)
        worker_class = str(server.cfg.worker_class_str).lower()
        if any(name in worker_class for name in _MUST_CLOSE_UNSUPPORTED):
            server.log.warning(
                "gunicorn-zdt: worker class %s ignores req.must_close: keep-alive connections "
                "are not closed during the drain; use sync, gthread or gevent",
                server.cfg.worker_class_str,
            )
        if plan.probe_bind is not None:  # bind now: a taken port stops the start, one line
            _refuse_heartbeat_timeout_below_idle_interval(plan, server.cfg)
            LISTENER.bind(*plan.probe_bind)
        grace = plan.grace_period_seconds
        server.log.info(
            "gunicorn-zdt: drain %s s, graceful_timeout %s s, preStop %s s, grace period %s",
            budget.fmt(plan.drain_seconds),
            budget.fmt(server.cfg.graceful_timeout),
            budget.fmt(plan.prestop_seconds),
            "unknown (set ZDT_GRACE_PERIOD_SECONDS)"
            if grace is None
            else f"{budget.fmt(grace)} s (slack {budget.fmt(plan_budget.slack_seconds or 0)} s)",
        )

    # What install() resolved, for `gunicorn-zdt check` (it loads configs with Gunicorn's loader).
    on_starting.zdt_plan = plan  # type: ignore[attr-defined]
    on_starting.zdt_error = error  # type: ignore[attr-defined]
    return on_starting


def _refuse_heartbeat_timeout_below_idle_interval(plan: DrainPlan, cfg: Any) -> None:
    """An idle sync worker reports only every ``timeout / 2`` s (its select() timeout);
    a shorter heartbeat limit would fail liveness on an idle pod and get it restarted."""
    limit = plan.heartbeat_timeout_seconds
    if limit is None or keeps_alive(cfg) or not cfg.timeout:
        return
    interval = cfg.timeout / 2
    if limit <= interval:
        raise RuntimeError(
            f"gunicorn-zdt: ZDT_HEARTBEAT_TIMEOUT_SECONDS={budget.fmt(limit)} <= timeout/2 = "
            f"{budget.fmt(interval)}: an idle sync worker reports its heartbeat only every "
            f"timeout/2 s, so liveness would fail on an idle pod; raise it above "
            f"{budget.fmt(interval)} (or unset it: default timeout {budget.fmt(cfg.timeout)})"
        )


def _when_ready_hook(plan: DrainPlan | None, shared: state.SharedState) -> Callable[[Any], None]:
    def when_ready(server: Any) -> None:
        """Master, listeners open, before the first fork: take over SIGTERM."""
        assert plan is not None  # on_starting refused to start otherwise
        shared.set_serving()
        shared.beat_master()
        _spawn_probe_listener(server, plan, shared)
        _take_over_sigterm(server, plan, shared)

    return when_ready


def _take_over_sigterm(server: Any, plan: DrainPlan, shared: state.SharedState) -> None:
    reap_and_kill_hung = server.murder_workers

    def hand_over(reason: str) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        shared.begin_stop()
        server.log.info(
            "gunicorn-zdt: graceful stop begins (%s): listeners closed, workers have "
            "graceful_timeout %s s to finish in-flight requests",
            reason,
            budget.fmt(server.cfg.graceful_timeout),
        )
        raise StopIteration  # Gunicorn's main loop answers with halt() -> stop(graceful=True)

    def handle_term() -> None:
        if shared.phase == state.Phase.DRAINING:
            early = time.monotonic() < shared.drain_deadline
            hand_over("second SIGTERM, drain cut short" if early else "drain over")
        if plan.drain_seconds <= 0:
            hand_over("ZDT_DRAIN_SECONDS is 0")
        shared.begin_drain(plan.drain_seconds)
        server.log.info(
            "gunicorn-zdt: SIGTERM: draining for %s s (readiness 503, still serving, keep-alive "
            "closed per response), then graceful stop with graceful_timeout %s s",
            budget.fmt(plan.drain_seconds),
            budget.fmt(server.cfg.graceful_timeout),
        )
        signal.signal(signal.SIGALRM, _resend_sigterm)
        signal.setitimer(signal.ITIMER_REAL, plan.drain_seconds)

    def murder_workers() -> None:
        shared.beat_master()  # runs once per loop iteration: the master's heartbeat
        reap_and_kill_hung()
        _check_probe_listener(server)
        # Backstop for the timer: the loop runs at least once a second.
        if shared.phase == state.Phase.DRAINING and time.monotonic() >= shared.drain_deadline:
            hand_over("drain over")

    # Gunicorn looks handlers up on the instance when a signal is dispatched.
    server.handle_term = handle_term
    server.murder_workers = murder_workers


def _resend_sigterm(signum: int, frame: Any) -> None:
    """SIGALRM at the end of the drain: wake the master's loop with a second SIGTERM."""
    os.kill(os.getpid(), signal.SIGTERM)


def _pre_fork_hook(shared: state.SharedState) -> Callable[[Any, Any], None]:
    def pre_fork(server: Any, worker: Any) -> None:
        """Master, before forking a worker: give it a heartbeat slot no live worker holds."""
        live = {id(w) for w in server.WORKERS.values()}
        for index in range(state.SLOT_COUNT):
            if id(_slot_owners.get(index)) not in live:
                _slot_owners[index] = worker
                worker.zdt_slot = index
                shared.reset_slot(index)
                return
        worker.zdt_slot = None  # more live workers than slots: this one reports no heartbeat

    return pre_fork


def _post_fork_hook(shared: state.SharedState) -> Callable[[Any, Any], None]:
    def post_fork(server: Any, worker: Any) -> None:
        """Worker, just forked: drop our timer handler; report heartbeats to our slot."""
        if signal.getsignal(signal.SIGALRM) is _resend_sigterm:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
        index = getattr(worker, "zdt_slot", None)
        if index is None:
            return
        state.set_worker_slot(index)
        shared.claim_slot(index)
        tell_gunicorn = worker.notify

        def notify() -> None:  # Gunicorn calls it from the worker's loop, about once a second
            tell_gunicorn()
            shared.beat_worker(index)

        worker.notify = notify

    return post_fork


def _post_worker_init(worker: Any) -> None:
    """Worker, app loaded: with the probe listener on, start publishing check results."""
    if LISTENER.pid:
        state.run_worker_boot_callbacks()


# The slot owners outlive a SIGHUP (the config module is re-run, this module is not).
_slot_owners: dict[int, Any] = {}


def _spawn_probe_listener(server: Any, plan: DrainPlan, shared: state.SharedState) -> None:
    """Master, when_ready (no worker forked yet, one thread): fork the listener."""
    limit = plan.heartbeat_timeout_seconds
    if limit is None:
        limit = float(server.cfg.timeout or 30)
    prefix = settings.resolve("ZDT_PROBE_PREFIX")
    address = LISTENER.spawn(shared, probe_server.ProbeConfig(prefix, limit, os.getpid()))
    if address:
        server.log.info(
            "gunicorn-zdt: probe listener at http://%s%s/{live,ready,startup} (pid %s), "
            "heartbeat timeout %s s",
            address,
            prefix,
            LISTENER.pid,
            budget.fmt(limit),
        )


def _check_probe_listener(server: Any) -> None:
    """Master loop: say once, loudly, if the listener is gone (probes will then fail)."""
    if LISTENER.newly_dead():
        server.log.error(
            "gunicorn-zdt: the probe listener (pid %s) exited; its probes now fail and the "
            "kubelet will restart this pod",
            LISTENER.pid,
        )


def _pre_request_hook(shared: state.SharedState) -> Callable[[Any, Any], None]:
    def pre_request(worker: Any, req: Any) -> None:
        """Worker, every request: while draining, close the connection after the response."""
        if shared.draining:
            req.must_close = True

    return pre_request


def _on_exit_hook(shared: state.SharedState) -> Callable[[Any], None]:
    def on_exit(server: Any) -> None:
        """Master, last thing before exit: the probe listener goes first."""
        LISTENER.stop()
        if shared.drain_started:
            server.log.info(
                "gunicorn-zdt: stopped %.2f s after SIGTERM",
                time.monotonic() - shared.drain_started,
            )

    return on_exit
