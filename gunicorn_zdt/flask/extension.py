"""Flask extension: the liveness, readiness and startup endpoints.

    probes = Probes()                          # module level, app factory pattern
    probes.add_check("db", sqlalchemy_ping(db))

    def create_app():
        app = Flask(__name__)
        probes.init_app(app)                   # or Probes(app) for a single app
        return app

Endpoints (``GET``/``HEAD``; prefix ``ZDT_PROBE_PREFIX``, default ``/healthz``):

* ``/live``: 200 while the process can answer. Runs no dependency check, ever: a
  database blip must not make the kubelet restart every pod at once.
* ``/ready``: 503 from SIGTERM on (the ``shutdown`` check: read from the state the master
  shares with every worker, never cached), 503 before the app started or when a check
  fails, else 200. ``?verbose`` lists each check, ``?exclude=NAME`` skips one
  (repeatable; ``shutdown`` cannot be skipped), ``/ready/<name>`` shows one check.
* ``/startup``: 503 until the app has started, then 200 for good, pod-wide. Started means
  loaded and serving, unless you register startup checks (``probe="startup"``: started
  once they pass) or choose ``Probes(startup="explicit")`` and call ``mark_started()``.
  Dependencies belong in readiness: a database outage must not get new pods restarted.

Under the Gunicorn hooks every worker runs the checks in one background thread every
``ZDT_CHECK_CACHE_SECONDS`` (at least 0.5 s) and publishes its verdict in shared memory;
readiness on any worker, and on the probe listener, answers from the freshest verdict any
worker published (per check, the run that began last): one answer for the pod. Without
the hooks (tests, ``flask run``) each probe runs the checks itself, through a short cache.
The decision itself is made once, in :mod:`gunicorn_zdt.readiness`, for both servers.

Per-app state lives in ``app.extensions["zdt"]``; the ``Probes`` object stores no app,
so one instance serves every app a factory creates, and checks added before or after
``init_app`` reach all of them. Settings are read once per app in ``init_app``: the
environment, then ``app.config`` (``ZDT_*`` keys), then the defaults in
:mod:`gunicorn_zdt.settings`. Failure reasons are logged, and shown in bodies only with
``ZDT_EXPOSE_REASONS``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from .. import runtime
from ..core import readiness, settings
from ..health.checks import CheckFunc, CheckRegistry, CheckResult

__all__ = ["Probes"]

log = logging.getLogger("gunicorn_zdt.probes")

EXTENSION_KEY = "zdt"
StartupMode = Literal["loaded", "explicit"]
_FLASK_SETTINGS = [s.name for s in settings.SETTINGS if s.side in ("flask", "both")]
_warned_no_hooks = False


@dataclass(frozen=True)
class _CheckSpec:
    name: str
    func: CheckFunc
    timeout: float | None
    probe: Literal["ready", "startup"]


class Probes:
    """The probe endpoints for one or more apps; per-app state in ``app.extensions``."""

    def __init__(self, app: Flask | None = None, *, startup: StartupMode = "loaded") -> None:
        if startup not in ("loaded", "explicit"):
            raise ValueError(
                f"startup={startup!r}: use 'loaded' (started once the app is loaded and its "
                "startup checks pass) or 'explicit' (started at mark_started())"
            )
        self.startup_mode: StartupMode = startup
        self._specs: dict[str, _CheckSpec] = {}
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "gunicorn-zdt Probes is already registered on this app. Reuse that "
                "instance: app.extensions['zdt'] (one Probes per app)."
            )
        config = {}
        for name in _FLASK_SETTINGS:
            try:
                config[name] = settings.resolve(name, app.config.get(name))
            except settings.SettingError as exc:
                raise RuntimeError(f"gunicorn-zdt: {exc}") from None
            app.config.setdefault(name, config[name])
        prefix = config["ZDT_PROBE_PREFIX"]
        _refuse_taken_routes(app, prefix)
        app_state = _AppProbes(self, app, config)
        app.extensions[EXTENSION_KEY] = app_state
        app.register_blueprint(_blueprint(prefix))
        rt = runtime.current()
        if rt is not None:
            rt.add_verdict_source(app_state.snapshot, app_state.publish_period)
        # Under Gunicorn without install(): stop the start (the drain would be off).
        runtime.refuse_unless_installed(config["ZDT_REQUIRE_INSTALL"])

    def add_check(
        self,
        name: str,
        func: CheckFunc,
        *,
        timeout: float | None = None,
        probe: Literal["ready", "startup"] = "ready",
    ) -> None:
        """Register a dependency check for readiness (default) or startup, for every app.

        Liveness is refused on purpose: if the database blips, a liveness check that
        touches it makes the kubelet restart every pod at once.
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
        CheckRegistry(1.0, 0.0).add(name, func, timeout)  # the same checks as at run time
        self._specs[name] = _CheckSpec(name, func, timeout, probe)

    def mark_started(self, app: Flask | None = None) -> None:
        """The app (default: ``current_app``) finished starting: startup answers 200 for good.

        Pod-wide under the hooks, as the kubelet sees it: one success ends startup
        probing. Readiness in ``startup="explicit"`` mode waits until every worker called it.
        """
        target = app if app is not None else _current_app_or_fail()
        _state_of(target).mark_started()


def _current_app_or_fail() -> Flask:
    try:
        return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
    except RuntimeError:
        raise RuntimeError(
            "gunicorn-zdt: mark_started() outside an app context: pass the app, "
            "probes.mark_started(app), or call it inside `with app.app_context():`"
        ) from None


def _state_of(app: Flask) -> _AppProbes:
    try:
        found: _AppProbes = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "gunicorn-zdt: Probes is not registered on this app: call probes.init_app(app)"
        ) from None
    return found


def _refuse_taken_routes(app: Flask, prefix: str) -> None:
    """Refuse to share a probe path with a route of the app: whichever came first would win."""
    ours = {f"{prefix}/{name}" for name in ("live", "ready", "startup")}
    taken = sorted(r.rule for r in app.url_map.iter_rules() if r.rule.rstrip("/") in ours)
    if taken:
        raise RuntimeError(
            f"gunicorn-zdt: the app already has a route {taken[0]}, which the probes need; "
            "remove it, or move the probes with ZDT_PROBE_PREFIX (e.g. /-/healthz)"
        )


class _AppProbes:
    """One app's probe state: its check registries, its started flag, its settings."""

    def __init__(self, probes: Probes, app: Flask, config: dict[str, Any]) -> None:
        self.probes = probes
        self.app = app
        self.prefix: str = config["ZDT_PROBE_PREFIX"]
        self.expose_reasons: bool = config["ZDT_EXPOSE_REASONS"]
        timeout, cache = config["ZDT_CHECK_TIMEOUT_SECONDS"], config["ZDT_CHECK_CACHE_SECONDS"]
        self.ready = CheckRegistry(timeout, cache)
        self.startup = CheckRegistry(timeout, cache)
        self.publish_period = max(cache, 0.5)
        self._started = threading.Event()

    def sync_checks(self) -> None:
        """Take in checks added to the ``Probes`` object since the last call."""
        for spec in list(self.probes._specs.values()):
            registry = self.ready if spec.probe == "ready" else self.startup
            if spec.name not in registry.checks:
                registry.add(spec.name, self._in_app_context(spec.func), spec.timeout)

    def _in_app_context(self, func: CheckFunc) -> CheckFunc:
        """Checks run in their own thread; give them the app context they would expect."""
        app = self.app

        def run() -> Any:
            with app.app_context():
                return func()

        return run

    @property
    def started(self) -> bool:
        return self._started.is_set()

    def mark_started(self) -> None:
        self._started.set()
        shared = runtime.pod_state()
        if shared is not None:
            shared.mark_started()
            rt = runtime.current()
            assert rt is not None
            rt.wake_publisher()

    def snapshot(self) -> tuple[bool, dict[str, readiness.Outcome]]:
        """Run the checks now (publisher thread): (started, outcome by name)."""
        self._start_when_startup_checks_pass()
        return self.started, _outcomes(self.ready.run(list(self.ready.checks)))

    def _start_when_startup_checks_pass(self) -> None:
        """``startup="loaded"``: started once every startup check passed (at once if none)."""
        self.sync_checks()
        if self.started or self.probes.startup_mode != "loaded":
            return
        if all(r.ok for r in self.startup.run(list(self.startup.checks))):
            self._started.set()

    def local_view(self, names: list[str]) -> readiness.PodView:
        """Without the hooks: this process's own checks, through the cache."""
        self._start_when_startup_checks_pass()
        return readiness.PodView(False, self.started, _outcomes(self.ready.run(names)))


def _outcomes(results: list[CheckResult]) -> dict[str, readiness.Outcome]:
    return {r.name: readiness.Outcome(r.ok, r.seconds, r.reason, r.started) for r in results}


def _drain_coordination_off() -> None:
    """Without the hooks under a server, say once that readiness will not flip on SIGTERM."""
    global _warned_no_hooks
    if _warned_no_hooks:
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


# -- endpoints (one blueprint per app; the views find their app's state) ---------------


def _blueprint(prefix: str) -> Blueprint:
    bp = Blueprint("zdt_probes", __name__, url_prefix=prefix)
    bp.add_url_rule("/live", "live", _live, methods=["GET"])
    bp.add_url_rule("/ready", "ready", _ready, methods=["GET"])
    bp.add_url_rule("/ready/<name>", "ready_one", _ready_one, methods=["GET"])
    bp.add_url_rule("/startup", "startup", _startup, methods=["GET"])
    return bp


def _live() -> Response:
    return _reply(200, {"status": "ok"})


def _ready() -> Response:
    return _reply(*_decide(only=None))


def _ready_one(name: str) -> Response:
    return _reply(*_decide(only=name))


def _decide(only: str | None) -> tuple[int, dict[str, Any]]:
    app_state = _state_of(current_app)
    query = request.args.to_dict(flat=False)
    shared = runtime.pod_state()
    if shared is not None:
        view = readiness.pod_view(shared.draining, shared.slots(), time.monotonic())
    else:
        if request.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
            _drain_coordination_off()
        app_state.sync_checks()
        view = app_state.local_view(list(app_state.ready.checks))
    return readiness.decide_ready(view, query, expose_reasons=app_state.expose_reasons, only=only)


def _startup() -> Response:
    app_state = _state_of(current_app)
    shared = runtime.pod_state()
    if shared is not None:
        return _reply(*readiness.decide_startup(shared.started))
    app_state.local_view([])
    return _reply(*readiness.decide_startup(app_state.started))


def _reply(status: int, body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response
