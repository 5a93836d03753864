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
The decision is not made here: each app's state is a
:class:`gunicorn_zdt.health.core.HealthChecks` (the one the ASGI, WSGI and Django adapters
use), and the views only hand it the request's endpoint and query.

Per-app state lives in ``app.extensions["zdt"]``; the ``Probes`` object stores no app,
so one instance serves every app a factory creates, and checks added before or after
``init_app`` reach all of them. Settings are read once per app in ``init_app``: the
environment, then ``app.config`` (``ZDT_*`` keys), then the defaults in
:mod:`gunicorn_zdt.core.settings`. Failure reasons are logged, and shown in bodies only with
``ZDT_EXPOSE_REASONS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from .. import runtime
from ..health.checks import CheckFunc
from ..health.core import (
    Endpoint,
    HealthChecks,
    StartupMode,
    resolve_config,
    warn_if_uncoordinated,
)

__all__ = ["EXTENSION_KEY", "Probes", "StartupMode"]

EXTENSION_KEY = "zdt"


class Probes:
    """The probe endpoints for one or more apps; per-app state in ``app.extensions``."""

    def __init__(self, app: Flask | None = None, *, startup: StartupMode = "loaded") -> None:
        self._checks = HealthChecks(startup=startup)  # the checks every app shares
        if app is not None:
            self.init_app(app)

    @property
    def startup_mode(self) -> StartupMode:
        return self._checks.startup_mode

    def init_app(self, app: Flask) -> None:
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "gunicorn-zdt Probes is already registered on this app. Reuse that "
                "instance: app.extensions['zdt'] (one Probes per app)."
            )
        config = resolve_config(app.config)
        for name, value in config.items():
            app.config.setdefault(name, value)
        prefix = config["ZDT_PROBE_PREFIX"]
        _refuse_taken_routes(app, prefix)
        app_checks = self._checks.bound(config, _in_app_context(app))
        app.extensions[EXTENSION_KEY] = app_checks
        app.register_blueprint(_blueprint(prefix))
        rt = runtime.current()
        if rt is not None:
            app_checks.publish_from(rt)
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
        self._checks.add_check(name, func, timeout=timeout, probe=probe)

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


def _state_of(app: Flask) -> HealthChecks:
    try:
        found: HealthChecks = app.extensions[EXTENSION_KEY]
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


def _in_app_context(app: Flask) -> Callable[[CheckFunc], CheckFunc]:
    """Checks run in their own thread; give them the app context they would expect."""

    def wrap(func: CheckFunc) -> CheckFunc:
        def run() -> Any:
            with app.app_context():
                return func()

        return run

    return wrap


# -- endpoints (one blueprint per app; the views find their app's state) ---------------


def _blueprint(prefix: str) -> Blueprint:
    bp = Blueprint("zdt_probes", __name__, url_prefix=prefix)
    bp.add_url_rule("/live", "live", _live, methods=["GET"])
    bp.add_url_rule("/ready", "ready", _ready, methods=["GET"])
    bp.add_url_rule("/ready/<name>", "ready_one", _ready_one, methods=["GET"])
    bp.add_url_rule("/startup", "startup", _startup, methods=["GET"])
    return bp


def _live() -> Response:
    return _answer("live")


def _ready() -> Response:
    return _answer("ready")


def _ready_one(name: str) -> Response:
    return _answer("ready", only=name)


def _startup() -> Response:
    return _answer("startup")


def _answer(endpoint: Endpoint, only: str | None = None) -> Response:
    app_checks = _state_of(current_app)
    if endpoint != "live":
        warn_if_uncoordinated(request.environ.get("SERVER_SOFTWARE", ""))
    status, body = app_checks.answer(endpoint, request.args.to_dict(flat=False), only)
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response
