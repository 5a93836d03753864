"""Flask extension: the liveness, readiness and startup endpoints.

    probes = Probes(app)                       # or Probes() + probes.init_app(app)
    probes.add_check("db", sqlalchemy_ping(engine))

Endpoints (``GET``/``HEAD``; prefix ``ZDT_PROBE_PREFIX``, default ``/healthz``):

* ``/live``: 200 while the process can answer. Runs no dependency check, ever: a
  database blip must not make the kubelet restart every pod at once.
* ``/ready``: 503 from SIGTERM on (read from the state the master shares with every
  worker, never cached), 503 before start-up finished or when a check fails, else 200.
  ``?verbose`` lists each check, ``?exclude=NAME`` skips one (repeatable), and
  ``/ready/<name>`` runs one check.
* ``/startup``: 503 until the app has started (by default: the first passing
  readiness; or ``Probes(startup="explicit")`` and ``probes.mark_started()``), then 200,
  pod-wide: under the hooks one worker's start counts for all of them.

With the probe listener on (``ZDT_PROBE_BIND``, see :mod:`gunicorn_zdt.probe_server`),
each worker also runs its readiness (and, until started, startup) checks in a background
thread every ``ZDT_CHECK_CACHE_SECONDS`` (at least 0.5 s) and publishes the results in
shared memory, where the listener reads them without touching the worker pool.

Failure reasons are logged, and shown in bodies only with ``ZDT_EXPOSE_REASONS``.
Settings are read once in ``init_app`` from the environment, then ``app.config``
(``ZDT_*`` keys), then the defaults in :mod:`gunicorn_zdt.settings`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

from flask import Blueprint, Flask, Response, jsonify, request

from . import settings, state
from .checks import CheckFunc, CheckRegistry, CheckResult

__all__ = ["Probes"]

log = logging.getLogger("gunicorn_zdt.probes")

EXTENSION_KEY = "zdt"
_FLASK_SETTINGS = [s.name for s in settings.SETTINGS if s.side == "flask"]
_warned_no_hooks = False


def _pod_state() -> state.SharedState | None:
    """The master's shared state once our hooks ran in it; None without them.

    ``install()`` alone (a config merely imported, e.g. by ``gunicorn-zdt check``) leaves the
    phase at STARTING: that state belongs to no running pod.
    """
    shared = state.current()
    return shared if shared is not None and shared.phase != state.Phase.STARTING else None


def _drain_coordination() -> state.SharedState | None:
    """The master's shared state, or None (with a one-time warning) when the hooks are off."""
    global _warned_no_hooks
    shared = _pod_state()
    if shared is not None:
        return shared
    if not _warned_no_hooks:
        _warned_no_hooks = True
        why = (
            "the Gunicorn hooks are not installed"
            if state.current() is None
            else "install(globals()) ran but its hooks never did (a hook defined after it "
            "in your Gunicorn config replaced ours? call install last)"
        )
        log.warning(
            "gunicorn-zdt: drain coordination is off: %s. Readiness will not flip on "
            "SIGTERM; start Gunicorn with -c python:gunicorn_zdt.conf or add "
            "`from gunicorn_zdt.hooks import install; install(globals())` to your config.",
            why,
        )
    return None


class Probes:
    """Registers the probe blueprint on an app; one instance per app."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        startup: Literal["first-ready", "explicit"] = "first-ready",
    ) -> None:
        if startup not in ("first-ready", "explicit"):
            raise ValueError(f"startup={startup!r}: use 'first-ready' or 'explicit'")
        self.startup_mode = startup
        self._pending: list[tuple[str, CheckFunc, float | None, Literal["ready", "startup"]]] = []
        if app is not None:
            self.init_app(app)

    # -- setup ---------------------------------------------------------------------

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
        self.prefix: str = config["ZDT_PROBE_PREFIX"]
        self.expose_reasons: bool = config["ZDT_EXPOSE_REASONS"]
        timeout, cache = config["ZDT_CHECK_TIMEOUT_SECONDS"], config["ZDT_CHECK_CACHE_SECONDS"]
        if not timeout > 0:
            raise RuntimeError("gunicorn-zdt: ZDT_CHECK_TIMEOUT_SECONDS must be > 0, e.g. 1")
        self.ready = CheckRegistry(timeout, cache)
        self.startup = CheckRegistry(timeout, cache)
        self._app = app
        self._started = threading.Event()
        app.extensions[EXTENSION_KEY] = self
        app.register_blueprint(self._blueprint())
        for name, func, check_timeout, probe in self._pending:
            self.add_check(name, func, timeout=check_timeout, probe=probe)
        self._pending.clear()
        state.on_worker_boot(self._start_publisher)

    def add_check(
        self,
        name: str,
        func: CheckFunc,
        *,
        timeout: float | None = None,
        probe: Literal["ready", "startup"] = "ready",
    ) -> None:
        """Register a dependency check for readiness (default) or startup.

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
        if not hasattr(self, "ready"):  # Probes() before init_app
            self._pending.append((name, func, timeout, probe))
            return
        registry = self.ready if probe == "ready" else self.startup
        registry.add(name, self._in_app_context(func), timeout)

    def _in_app_context(self, func: CheckFunc) -> CheckFunc:
        """Checks run in their own thread; give them the app context they would expect."""
        app = self._app

        def run() -> Any:
            with app.app_context():
                return func()

        return run

    def mark_started(self) -> None:
        """The app finished starting: startup answers 200 from now on, on every worker.

        Pod-wide (in the master's shared memory when the hooks run), as the kubelet sees it:
        one success ends startup probing, so a sibling worker must not answer 503 after it.
        Readiness in ``startup="explicit"`` mode still waits for this worker's own call.
        """
        self._started.set()
        shared = _pod_state()
        if shared is not None:
            shared.mark_started()

    @property
    def started(self) -> bool:
        return self._started.is_set()

    # -- results for the probe listener ---------------------------------------------

    def snapshot(self) -> tuple[bool, dict[str, Any]]:
        """Run every readiness check (and startup check until started) like ``/ready`` does."""
        if not self.started and self.startup_mode == "explicit":
            return False, {"gate": "starting", "checks": {}}
        results = self.ready.run(list(self.ready.checks))
        if not self.started:
            results += self.startup.run(list(self.startup.checks))
        ok = all(r.ok for r in results)
        if ok:  # before the verdict is published: whoever sees ready also sees started
            self.mark_started()
        return ok, {"checks": {r.name: r.ok for r in results}}

    def _start_publisher(self, shared: state.SharedState, slot: int) -> None:
        """Worker: publish ``snapshot()`` to the shared slot, forever, in a daemon thread."""
        period = max(self.ready.cache_seconds, 0.5)
        timeouts = [c.timeout for r in (self.ready, self.startup) for c in r.checks.values()]
        valid_for = period + max(timeouts, default=0.0) + 2.0

        def publish() -> None:
            while True:
                try:
                    ok, detail = self.snapshot()
                    shared.publish_verdict(slot, ok, detail, valid_for)
                except Exception:  # keep publishing; a stale verdict turns readiness 503
                    log.exception("gunicorn-zdt: publishing check results failed")
                time.sleep(period)

        threading.Thread(target=publish, name="zdt-publish-checks", daemon=True).start()

    # -- endpoints -----------------------------------------------------------------

    def _blueprint(self) -> Blueprint:
        bp = Blueprint("zdt_probes", __name__, url_prefix=self.prefix)
        bp.add_url_rule("/live", "live", self._live, methods=["GET"])
        bp.add_url_rule("/ready", "ready", self._ready, methods=["GET"])
        bp.add_url_rule("/ready/<name>", "ready_one", self._ready_one, methods=["GET"])
        bp.add_url_rule("/startup", "startup", self._startup, methods=["GET"])
        return bp

    def _live(self) -> Response:
        return _reply(200, {"status": "ok"})

    def _ready(self) -> Response:
        shared = _drain_coordination()
        if shared is not None and shared.draining:
            return _reply(503, {"status": "draining"})
        if not self.started and self.startup_mode == "explicit":
            return _reply(503, {"status": "starting"})
        names, warnings = self._selected(self.ready)
        return self._verdict(self.ready.run(names), warnings, mark_started=True)

    def _ready_one(self, name: str) -> Response:
        if name not in self.ready.checks:
            return _reply(404, {"status": "unknown check", "check": name})
        return self._verdict(self.ready.run([name]), [], mark_started=False)

    def _startup(self) -> Response:
        shared = _pod_state()
        if self.started or (shared is not None and shared.started):
            return _reply(200, {"status": "ok"})
        if self.startup_mode == "explicit":
            return _reply(503, {"status": "starting"})
        names, warnings = self._selected(self.startup)
        results = self.startup.run(names) + self.ready.run(self._selected(self.ready)[0])
        return self._verdict(results, warnings, mark_started=True)

    def _selected(self, registry: CheckRegistry) -> tuple[list[str], list[str]]:
        excluded = request.args.getlist("exclude")
        unknown = [n for n in excluded if n not in registry.checks]
        warnings = [f"unknown check in exclude: {n!r}" for n in unknown]
        return [n for n in registry.checks if n not in excluded], warnings

    def _verdict(
        self, results: list[CheckResult], warnings: list[str], *, mark_started: bool
    ) -> Response:
        ok = all(r.ok for r in results)
        if ok and mark_started:
            self.mark_started()
        body: dict[str, Any] = {"status": "ok" if ok else "failed"}
        if "verbose" in request.args:
            body["checks"] = {r.name: self._describe(r) for r in results}
        elif not ok:
            body["failed"] = [r.name for r in results if not r.ok]
        if warnings:
            body["warnings"] = warnings
        return _reply(200 if ok else 503, body)

    def _describe(self, result: CheckResult) -> dict[str, Any]:
        item: dict[str, Any] = {
            "status": "ok" if result.ok else "failed",
            "seconds": round(result.seconds, 4),
        }
        if not result.ok:
            item["reason"] = result.reason if self.expose_reasons else "reason withheld"
        return item


def _reply(status: int, body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response
