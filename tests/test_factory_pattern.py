"""Flask's app factory pattern: one module-level ``Probes``, any number of apps.

Issue 9: ``init_app`` kept the app and the check registry on the instance, so a second
``create_app()`` answered readiness with ``checks: {}`` (the database check gone, ready
200 with the database down), and every ``init_app`` started one more publisher thread.
In-process tests (Flask test client) for the extension's rules; a real Gunicorn for the
one verdict a worker publishes for all its apps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from gunicorn_zdt.probes import Probes
from tests.support import wait_until

_ROUTE_TAKEN = (
    "gunicorn-zdt: the app already has a route /healthz/ready, which the probes need; "
    "remove it, or move the probes with ZDT_PROBE_PREFIX (e.g. /-/healthz)"
)


class Switch:
    """A check whose result the test flips."""

    def __init__(self) -> None:
        self.ok = True

    def __call__(self) -> bool:
        if not self.ok:
            raise ConnectionError("database down")
        return True


def create_app(probes: Probes, **config: object) -> Flask:
    app = Flask(__name__)
    app.config.update({"ZDT_CHECK_CACHE_SECONDS": 0, **config})
    probes.init_app(app)
    return app


def ready(app: Flask, query: str = "") -> tuple[int, dict]:
    r = app.test_client().get("/healthz/ready" + query)
    return r.status_code, r.json


def test_checks_added_before_and_after_init_app_reach_both_apps() -> None:
    probes = Probes()
    probes.add_check("db", lambda: True)
    first, second = create_app(probes), create_app(probes)
    probes.add_check("cache", lambda: True)
    for app in (first, second):
        status, body = ready(app, "?verbose")
        assert status == 200, body
        assert sorted(body["checks"]) == ["cache", "db", "shutdown"], body


def test_a_failing_check_is_seen_by_both_apps() -> None:
    probes = Probes()
    db = Switch()
    probes.add_check("db", db)
    first, second = create_app(probes), create_app(probes)
    assert [ready(app)[0] for app in (first, second)] == [200, 200]
    db.ok = False
    for app in (first, second):
        assert ready(app) == (503, {"status": "failed", "failed": ["db"]})


def test_a_check_added_after_init_app_fails_readiness_at_once() -> None:
    """Readiness never says ok while a registered check is missing from the answer."""
    probes = Probes()
    first, second = create_app(probes), create_app(probes)
    assert ready(first) == (200, {"status": "ok"})
    probes.add_check("db", lambda: True)
    failing = Switch()
    failing.ok = False
    probes.add_check("queue", failing)
    for app in (first, second):
        assert ready(app) == (503, {"status": "failed", "failed": ["queue"]})
        assert ready(app, "/db") == (200, {"status": "ok"})


def test_the_probes_object_stores_no_app() -> None:
    probes = Probes()
    first = create_app(probes)
    second = create_app(probes)
    assert first.extensions["zdt"] is not second.extensions["zdt"]
    assert not any(isinstance(v, Flask) for v in vars(probes).values()), vars(probes)


def test_mark_started_needs_an_app_context_or_the_app() -> None:
    probes = Probes(startup="explicit")
    first, second = create_app(probes), create_app(probes)
    with pytest.raises(RuntimeError) as raised:
        probes.mark_started()
    assert str(raised.value) == (
        "gunicorn-zdt: mark_started() outside an app context: pass the app, "
        "probes.mark_started(app), or call it inside `with app.app_context():`"
    )

    def startup(app: Flask) -> int:
        return app.test_client().get("/healthz/startup").status_code

    assert (startup(first), startup(second)) == (503, 503)
    with first.app_context():
        probes.mark_started()
    assert (startup(first), startup(second)) == (200, 503)
    assert ready(second) == (503, {"status": "starting"})
    probes.mark_started(second)
    assert (startup(first), startup(second)) == (200, 200)
    assert ready(second) == (200, {"status": "ok"})


def test_mark_started_on_an_app_without_probes_says_to_call_init_app() -> None:
    with pytest.raises(RuntimeError, match=r"not registered on this app: call probes.init_app"):
        Probes(startup="explicit").mark_started(Flask(__name__))


@pytest.mark.parametrize("rule", ["/healthz/ready", "/healthz/ready/"])
def test_an_app_route_on_a_probe_path_is_refused_at_init_app(rule: str) -> None:
    app = Flask(__name__)
    app.add_url_rule(rule, "mine", lambda: "mine")
    with pytest.raises(RuntimeError) as raised:
        Probes(app)
    assert str(raised.value) == _ROUTE_TAKEN.replace("/healthz/ready,", f"{rule},")


def test_a_custom_probe_prefix_leaves_the_apps_route_alone() -> None:
    app = Flask(__name__)
    app.config["ZDT_PROBE_PREFIX"] = "/-/healthz"
    app.add_url_rule("/healthz/ready", "mine", lambda: "mine")
    Probes(app)
    client = app.test_client()
    assert client.get("/healthz/ready").text == "mine"
    assert client.get("/-/healthz/ready").status_code == 200


def test_the_shutdown_check_name_is_reserved() -> None:
    with pytest.raises(ValueError) as raised:
        Probes().add_check("shutdown", lambda: True)
    assert str(raised.value) == (
        "check name 'shutdown' is reserved for the drain; pick another name"
    )


# -- under real Gunicorn: one publisher and one merged verdict per worker ---------------


def test_one_publisher_per_worker_publishes_one_verdict_for_both_apps(
    gunicorn, tmp_path: Path
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    server = gunicorn(
        app="tests.apps_factory:app",
        config="workers = 2\n",
        env={"TEST_FLAG_DIR": str(flags), "ZDT_CHECK_CACHE_SECONDS": "0.2"},
    ).start()
    workers = server.wait_workers(2)
    for prefix in ("", "/second"):
        body = server.get(f"{prefix}/healthz/ready?verbose").json()
        assert sorted(body["checks"]) == ["after", "before", "shutdown"], body
        server.answers_from_every_worker(f"{prefix}/healthz/ready", 200, workers)
    server.answers_from_every_worker("/publishers", 200, workers)  # 500 unless exactly one

    # A failing check of either app makes the whole pod 503, on both apps' endpoints.
    for failing in ("second.before", "first.after"):
        (flags / failing).touch()
        wait_until(
            lambda: server.try_get("/healthz/ready") == 503, 10, f"503 with {failing}", server.log
        )
        for prefix in ("", "/second"):
            server.answers_from_every_worker(f"{prefix}/healthz/ready", 503, workers)
        (flags / failing).unlink()
        wait_until(lambda: server.try_get("/healthz/ready") == 200, 10, "200 again", server.log)
