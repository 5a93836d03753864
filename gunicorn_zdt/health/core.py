"""Framework-neutral probes: a request's method, path and query string in, status and JSON out.

The Flask extension (:mod:`gunicorn_zdt.flask.extension`), the ASGI middleware
(:mod:`gunicorn_zdt.asgi`), the WSGI middleware (:mod:`gunicorn_zdt.wsgi`) and the Django
middleware (:mod:`gunicorn_zdt.django`) answer ``live``, ``ready`` and ``startup`` under
``ZDT_PROBE_PREFIX`` with the same bodies as the probe listener, because every one of them
ends in :func:`gunicorn_zdt.readiness.decide_ready` / ``decide_startup``.

Under the Gunicorn hooks, readiness is the pod's: the drain flip and the freshest check
verdicts every worker published in shared memory (each worker's publisher thread runs the
checks registered here). Without the hooks (``uvicorn app:app``, ``manage.py runserver``,
unit tests) each probe runs this process's checks itself, through their short cache.

Checks may be plain callables or coroutine functions: a coroutine check runs on the app's
event loop (the ASGI middleware hands the loop over when it first runs), so an async
database client bound to that loop works; its thread waits at most the check's timeout.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from .. import runtime
from ..core import readiness, settings
from .checks import CheckFunc, CheckRegistry, CheckResult

__all__ = ["HealthChecks", "probes"]

log = logging.getLogger("gunicorn_zdt.health")

MAX_QUERY_FIELDS = 64
ProbeKind = Literal["ready", "startup"]
_ENDPOINTS = ("live", "ready", "startup")


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

    def __init__(self, *, startup: Literal["loaded", "explicit"] = "loaded") -> None:
        if startup not in ("loaded", "explicit"):
            raise ValueError(
                f"startup={startup!r}: use 'loaded' (started once the app is loaded and its "
                "startup checks pass) or 'explicit' (started at mark_started())"
            )
        self.startup_mode = startup
        self._specs: dict[str, _Spec] = {}
        self._lock = threading.Lock()
        self._config: dict[str, Any] | None = None
        self._ready: CheckRegistry | None = None
        self._startup: CheckRegistry | None = None
        self._started = threading.Event()
        self._published_by: Any = None  # the runtime that runs our checks in the background
        self.loop: asyncio.AbstractEventLoop | None = None  # where coroutine checks run

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
            names = [s.name for s in settings.SETTINGS if s.side in ("flask", "both")]
            self._config = {name: settings.resolve(name) for name in names}
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
        """A coroutine check runs on the app's loop; its check thread waits for it."""
        if not inspect.iscoroutinefunction(func):
            return func

        def run() -> Any:
            loop = self.loop
            if loop is None or loop.is_closed():
                raise RuntimeError("the app's event loop is not running yet")
            return asyncio.run_coroutine_threadsafe(func(), loop).result()

        return run

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
        return self.loop is None and any(
            inspect.iscoroutinefunction(spec.func) for spec in self._specs.values()
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
            return 200, {"status": "ok"}
        shared = runtime.pod_state()
        if rest == "startup":
            if shared is not None:
                return readiness.decide_startup(shared.started)
            self._start_when_startup_checks_pass()
            return readiness.decide_startup(self.started)
        only = None if rest == "ready" else rest[len("ready/") :]
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


#: The process's probes: add checks here; the ASGI, WSGI and Django adapters answer from it.
probes = HealthChecks()
