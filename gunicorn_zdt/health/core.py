"""Framework-neutral probes: a request's method, path and query string in, status and JSON out.

The Flask extension (:mod:`gunicorn_zdt.flask.extension`), the ASGI middleware
(:mod:`gunicorn_zdt.asgi`), the WSGI middleware (:mod:`gunicorn_zdt.wsgi`) and the Django
middleware (:mod:`gunicorn_zdt.django`) answer ``live``, ``ready`` and ``startup`` under
``ZDT_PROBE_PREFIX`` with the same bodies as the probe listener: each one parses its
request its own way and ends in :meth:`HealthChecks.answer`, the one place that decides
(from the pod's shared state under the hooks, else from this process's checks) and hands
the verdict to :func:`gunicorn_zdt.core.readiness.decide_ready` / ``decide_startup``.

Under the Gunicorn hooks, readiness is the pod's: the drain flip and the freshest check
verdicts every worker published in shared memory (each worker's publisher thread runs the
checks registered here). Without the hooks (``uvicorn app:app``, ``manage.py runserver``,
unit tests) each probe runs this process's checks itself, through their short cache.

Checks may be plain callables or coroutine functions: a coroutine check runs on the app's
event loop (the ASGI middleware hands the loop over when it first runs), so an async
database client bound to that loop works; its thread waits at most the check's timeout.
A Flask app has no such loop: there a coroutine check runs to completion on a loop of its
own in the check's thread, as Flask runs an async view.

The Flask extension keeps one :class:`HealthChecks` per app (:meth:`HealthChecks.bound`):
the checks are shared, the settings (``app.config``), the registries and the started
flag are the app's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from .. import runtime
from ..core import readiness, settings
from .checks import CheckFunc, CheckRegistry, CheckResult

__all__ = ["HealthChecks", "probes", "resolve_config", "warn_if_uncoordinated"]

log = logging.getLogger("gunicorn_zdt.health")

MAX_QUERY_FIELDS = 64
ProbeKind = Literal["ready", "startup"]
StartupMode = Literal["loaded", "explicit"]
Endpoint = Literal["live", "ready", "startup"]
_ENDPOINTS = ("live", "ready", "startup")
#: The settings the app side reads (probe prefix, check timeout and cache, reasons).
APP_SETTINGS = tuple(s.name for s in settings.SETTINGS if s.side in ("flask", "both"))
_warned_no_hooks = False


def resolve_config(explicit: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The app-side settings: the environment, then ``explicit`` (e.g. ``app.config``),
    then the defaults; a bad value raises ``RuntimeError`` with one line naming it."""
    given = explicit if explicit is not None else {}
    try:
        return {name: settings.resolve(name, given.get(name)) for name in APP_SETTINGS}
    except settings.SettingError as exc:
        raise RuntimeError(f"gunicorn-zdt: {exc}") from None


@dataclass(frozen=True)
class _Spec:
    name: str
    func: CheckFunc
    timeout: float | None
    probe: ProbeKind


class HealthChecks:
    """The checks and the started flag of one process's app, and the probe answers.

    One instance per process is enough (the module-level :data:`probes`); the ASGI, WSGI
    and Django adapters use it unless given another. Settings are read from the
    environment (``ZDT_*``) when first needed.
    """

    def __init__(self, *, startup: StartupMode = "loaded") -> None:
        if startup not in ("loaded", "explicit"):
            raise ValueError(
                f"startup={startup!r}: use 'loaded' (started once the app is loaded and its "
                "startup checks pass) or 'explicit' (started at mark_started())"
            )
        self.startup_mode: StartupMode = startup
        self._specs: dict[str, _Spec] = {}
        self._lock = threading.Lock()
        self._config: dict[str, Any] | None = None
        self._run_in: Callable[[CheckFunc], CheckFunc] | None = None  # e.g. an app context
        self._own_loop = False  # coroutine checks: True, a loop per run; False, the app's
        self._ready: CheckRegistry | None = None
        self._startup: CheckRegistry | None = None
        self._started = threading.Event()
        self._published_by: Any = None  # the runtime that runs our checks in the background
        self.loop: asyncio.AbstractEventLoop | None = None  # where coroutine checks run

    def bound(
        self, config: Mapping[str, Any], run_in: Callable[[CheckFunc], CheckFunc]
    ) -> HealthChecks:
        """Another instance for one app: the same checks (added before or after), the app's
        ``config`` (see :func:`resolve_config`), its own registries and started flag; every
        check runs through ``run_in(check)`` (the Flask extension: in the app's context)
        and a coroutine check on a loop of its own (the app has no event loop)."""
        other = HealthChecks(startup=self.startup_mode)
        other._specs = self._specs  # shared: a check added later reaches every app
        other._config = dict(config)
        other._run_in = run_in
        other._own_loop = True
        return other

    # -- registration ------------------------------------------------------------------

    def add_check(
        self,
        name: str,
        func: Callable[[], Any],
        *,
        timeout: float | None = None,
        probe: ProbeKind = "ready",
    ) -> None:
        """Register a readiness (default) or startup check: a callable or coroutine function.

        Liveness is refused on purpose: a dependency in liveness makes the kubelet restart
        every pod at once when the dependency blips.
        """
        if probe == "live":
            raise ValueError(
                f"check {name!r}: dependency checks cannot be added to liveness. A failing "
                "dependency would make the kubelet restart every pod at once (cascading "
                "restarts); add it to readiness (probe='ready') instead."
            )
        if probe not in ("ready", "startup"):
            raise ValueError(f"check {name!r}: probe={probe!r}; use 'ready' or 'startup'")
        if name == readiness.SHUTDOWN:
            raise ValueError(f"check name {name!r} is reserved for the drain; pick another name")
        if name in self._specs:
            raise ValueError(f"a check named {name!r} is already registered; pick another name")
        CheckRegistry(1.0, 0.0).add(name, func, timeout)  # the same validation as at run time
        self._specs[name] = _Spec(name, func, timeout, probe)

    def mark_started(self) -> None:
        """The app finished starting: startup answers 200 for good (pod-wide under the hooks)."""
        self._started.set()
        shared = runtime.pod_state()
        if shared is not None:
            shared.mark_started()
            rt = runtime.current()
            if rt is not None:
                rt.wake_publisher()

    @property
    def started(self) -> bool:
        return self._started.is_set()

    # -- settings and registries -------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = resolve_config()
        return self._config

    @property
    def prefix(self) -> str:
        return str(self.config["ZDT_PROBE_PREFIX"])

    def _registries(self) -> tuple[CheckRegistry, CheckRegistry]:
        with self._lock:
            if self._ready is None or self._startup is None:
                timeout = self.config["ZDT_CHECK_TIMEOUT_SECONDS"]
                cache = self.config["ZDT_CHECK_CACHE_SECONDS"]
                self._ready = CheckRegistry(timeout, cache)
                self._startup = CheckRegistry(timeout, cache)
            for spec in list(self._specs.values()):
                registry = self._ready if spec.probe == "ready" else self._startup
                if spec.name not in registry.checks:
                    registry.add(spec.name, self._runnable(spec.func), spec.timeout)
            return self._ready, self._startup

    def _runnable(self, func: Callable[[], Any]) -> CheckFunc:
        """A coroutine check runs on the app's loop (its check thread waits for it), or on
        a loop of its own for an app without one; then through ``run_in`` if any."""

        def on_own_loop() -> Any:
            return asyncio.run(func())

        def on_app_loop() -> Any:
            loop = self.loop
            if loop is None or loop.is_closed():
                raise RuntimeError("the app's event loop is not running yet")
            return asyncio.run_coroutine_threadsafe(func(), loop).result()

        runnable: CheckFunc = func
        if inspect.iscoroutinefunction(func):
            runnable = on_own_loop if self._own_loop else on_app_loop
        return runnable if self._run_in is None else self._run_in(runnable)

    # -- the background publisher (under the hooks) ------------------------------------

    def publish_from(self, rt: Any) -> None:
        """Worker: have the runtime's publisher thread run our checks (once per runtime)."""
        if self._published_by is rt:
            return
        self._published_by = rt
        rt.add_verdict_source(self.snapshot, max(self.config["ZDT_CHECK_CACHE_SECONDS"], 0.5))

    def snapshot(self) -> tuple[bool, dict[str, readiness.Outcome]]:
        """Run the checks now (publisher thread): (started, outcome by name)."""
        if self._waiting_for_loop():
            return False, {}  # "starting" until the app's loop can run coroutine checks
        ready, _ = self._registries()
        self._start_when_startup_checks_pass()
        return self.started, _outcomes(ready.run(list(ready.checks)))

    def _waiting_for_loop(self) -> bool:
        return (
            not self._own_loop
            and self.loop is None
            and any(inspect.iscoroutinefunction(spec.func) for spec in self._specs.values())
        )

    def _start_when_startup_checks_pass(self) -> None:
        if self._waiting_for_loop():
            return
        _, startup = self._registries()
        if self.started or self.startup_mode != "loaded":
            return
        if all(r.ok for r in startup.run(list(startup.checks))):
            self._started.set()

    # -- answering ---------------------------------------------------------------------

    def is_probe(self, path: str) -> bool:
        """Whether ``path`` is one of ours (``PREFIX/live|ready|startup`` or ``PREFIX/ready/NAME``)."""
        prefix = self.prefix
        if not path.startswith(prefix + "/"):
            return False
        rest = path[len(prefix) + 1 :].rstrip("/")
        return rest in _ENDPOINTS or (rest.startswith("ready/") and "/" not in rest[6:])

    def needs_local_run(self, path: str) -> bool:
        """True when answering ``path`` runs checks in this process (no hooks): may block."""
        return runtime.pod_state() is None and not path.rstrip("/").endswith("/live")

    def respond(self, method: str, path: str, query_string: str) -> tuple[int, dict[str, Any]]:
        """Status and JSON body of one probe request (``is_probe(path)`` holds)."""
        if method not in ("GET", "HEAD"):
            return 405, {"status": "method not allowed", "allow": ["GET", "HEAD"]}
        try:
            query = parse_qs(
                query_string,
                keep_blank_values=True,
                errors="replace",
                max_num_fields=MAX_QUERY_FIELDS,
            )
        except ValueError:
            return 400, {"status": f"too many query parameters (limit {MAX_QUERY_FIELDS})"}
        rest = path[len(self.prefix) + 1 :].rstrip("/")
        if rest == "live":
            return self.answer("live", query)
        if rest == "startup":
            return self.answer("startup", query)
        return self.answer("ready", query, only=None if rest == "ready" else rest[len("ready/") :])

    def answer(
        self, endpoint: Endpoint, query: readiness.Query, only: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Status and JSON body of ``live``, ``startup`` or ``ready`` (``only``: one check),
        ``query`` parsed (``?verbose``, ``?exclude=``): the decision every adapter makes."""
        if endpoint == "live":
            return 200, {"status": "ok"}
        shared = runtime.pod_state()
        if endpoint == "startup":
            if shared is not None:
                return readiness.decide_startup(shared.started)
            self._start_when_startup_checks_pass()
            return readiness.decide_startup(self.started)
        if shared is not None:
            view = readiness.pod_view(shared.draining, shared.slots(), time.monotonic())
        else:
            ready, _ = self._registries()
            self._start_when_startup_checks_pass()
            outcomes = _outcomes(ready.run(list(ready.checks)))
            view = readiness.PodView(False, self.started, outcomes)
        expose = bool(self.config["ZDT_EXPOSE_REASONS"])
        return readiness.decide_ready(view, query, expose_reasons=expose, only=only)


def _outcomes(results: list[CheckResult]) -> dict[str, readiness.Outcome]:
    return {r.name: readiness.Outcome(r.ok, r.seconds, r.reason, r.started) for r in results}


def warn_if_uncoordinated(server_software: str) -> None:
    """Under Gunicorn (``SERVER_SOFTWARE``) without the hooks, say once per process
    that readiness will not flip on SIGTERM, and how to fix it."""
    global _warned_no_hooks
    if _warned_no_hooks or runtime.pod_state() is not None:
        return
    if not server_software.startswith("gunicorn"):
        return
    _warned_no_hooks = True
    why = (
        "the Gunicorn hooks are not installed"
        if runtime.current() is None
        else "install(globals()) ran but its hooks never did"
    )
    log.warning(
        "gunicorn-zdt: drain coordination is off: %s. Readiness will not flip on SIGTERM; "
        "start Gunicorn with -c python:gunicorn_zdt.conf or add `from gunicorn_zdt.hooks "
        "import install; install(globals())` as the last line of your config.",
        why,
    )


#: The process's probes: add checks here; the ASGI, WSGI and Django adapters answer from it.
probes = HealthChecks()
