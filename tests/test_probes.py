"""The probe endpoints: in-process (Flask test client) for status codes, bodies, headers and
setup errors; under a real Gunicorn master where workers must agree (startup is pod-wide).

Drain behaviour is proven in test_drain.py.
"""

from __future__ import annotations

import threading

import pytest
from flask import Flask

from gunicorn_zdt.probes import Probes
from tests.support import wait_until


def make_app(**config: object) -> tuple[Flask, Probes]:
    app = Flask(__name__)
    app.config.update(config)
    probes = Probes(app)
    return app, probes


def test_endpoints_answer_json_with_no_store() -> None:
    app, _ = make_app()
    client = app.test_client()
    for path in ("/healthz/live", "/healthz/ready", "/healthz/startup"):
        r = client.get(path)
        assert (r.status_code, r.json, r.headers["Cache-Control"]) == (
            200,
            {"status": "ok"},
            "no-store",
        )
        assert client.head(path).status_code == 200


def test_other_methods_are_405() -> None:
    app, _ = make_app()
    assert app.test_client().post("/healthz/ready").status_code == 405


def test_prefix_is_configurable() -> None:
    app, _ = make_app(ZDT_PROBE_PREFIX="/-/health/")
    client = app.test_client()
    assert client.get("/-/health/live").status_code == 200
    assert client.get("/healthz/live").status_code == 404


def test_prefix_from_environment_beats_app_config(monkeypatch) -> None:
    monkeypatch.setenv("ZDT_PROBE_PREFIX", "/env")
    app, _ = make_app(ZDT_PROBE_PREFIX="/cfg")
    assert app.test_client().get("/env/ready").status_code == 200


def _failing() -> None:
    raise ConnectionError("db at 10.0.0.5:5432 refused")


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        ("", 503, {"status": "failed", "failed": ["down"]}),
        ("?exclude=down", 200, {"status": "ok"}),
        (
            "?exclude=down&exclude=nope",
            200,
            {"status": "ok", "warnings": ["unknown check in exclude: 'nope'"]},
        ),
        (
            "?verbose",
            503,
            {
                "status": "failed",
                "checks": {
                    "shutdown": {"status": "ok"},
                    "up": {"status": "ok", "seconds": "ANY"},
                    "down": {"status": "failed", "seconds": "ANY", "reason": "reason withheld"},
                },
            },
        ),
        ("/up", 200, {"status": "ok"}),
        ("/down", 503, {"status": "failed", "failed": ["down"]}),
        ("/nope", 404, {"status": "unknown check", "check": "nope"}),
        (
            "?exclude=down&exclude=shutdown",
            200,
            {
                "status": "ok",
                "warnings": ["'shutdown' cannot be excluded: it fails from SIGTERM on"],
            },
        ),
    ],
)
def test_readiness_queries(query: str, status: int, body: dict) -> None:
    app, probes = make_app(ZDT_CHECK_CACHE_SECONDS=0)
    probes.add_check("up", lambda: True)
    probes.add_check("down", _failing)
    r = app.test_client().get("/healthz/ready" + query)
    got = r.json
    for name, check in got.get("checks", {}).items():
        if name != "shutdown":
            assert isinstance(check.pop("seconds"), float)
    for check in body.get("checks", {}).values():
        check.pop("seconds", None)
    assert (r.status_code, got) == (status, body)


def test_reasons_are_shown_only_when_enabled() -> None:
    app, probes = make_app(ZDT_EXPOSE_REASONS=True)
    probes.add_check("down", _failing)
    r = app.test_client().get("/healthz/ready?verbose")
    assert r.json["checks"]["down"]["reason"] == "ConnectionError: db at 10.0.0.5:5432 refused"


def test_failure_reason_is_logged_even_when_withheld(caplog) -> None:
    app, probes = make_app()
    probes.add_check("down", _failing)
    app.test_client().get("/healthz/ready")
    assert "check 'down' failed: ConnectionError: db at 10.0.0.5:5432 refused" in caplog.text


def test_liveness_refuses_dependency_checks_and_says_why() -> None:
    _, probes = make_app()
    with pytest.raises(ValueError, match="cascading restarts"):
        probes.add_check("db", lambda: True, probe="live")  # type: ignore[arg-type]


def test_second_init_app_says_to_reuse_the_instance() -> None:
    app, _probes = make_app()
    with pytest.raises(RuntimeError, match=r"Reuse that instance: app.extensions\['zdt'\]"):
        Probes(app)


def test_checks_added_before_init_app_are_kept() -> None:
    probes = Probes()
    probes.add_check("down", _failing)
    app = Flask(__name__)
    probes.init_app(app)
    assert app.test_client().get("/healthz/ready").status_code == 503


def test_bad_app_config_value_names_the_key() -> None:
    with pytest.raises(RuntimeError, match="ZDT_CHECK_TIMEOUT_SECONDS='soon' is not a number"):
        make_app(ZDT_CHECK_TIMEOUT_SECONDS="soon")


def test_startup_does_not_wait_for_dependencies_by_default() -> None:
    """A database outage must not get new pods restarted: startup means loaded and serving."""
    app, probes = make_app(ZDT_CHECK_CACHE_SECONDS=0)
    probes.add_check("db", lambda: False)
    client = app.test_client()
    assert client.get("/healthz/startup").status_code == 200
    assert client.get("/healthz/ready").status_code == 503


def test_explicit_startup_waits_for_mark_started() -> None:
    app = Flask(__name__)
    probes = Probes(app, startup="explicit")
    client = app.test_client()
    assert client.get("/healthz/startup").status_code == 503
    assert client.get("/healthz/ready").json == {"status": "starting"}
    probes.mark_started(app)
    assert client.get("/healthz/startup").status_code == 200
    assert client.get("/healthz/ready").status_code == 200


def test_mark_started_outside_an_app_context_says_to_pass_the_app() -> None:
    probes = Probes(Flask(__name__), startup="explicit")
    with pytest.raises(RuntimeError, match=r"pass the app, probes.mark_started\(app\)"):
        probes.mark_started()


def test_startup_checks_gate_startup_and_readiness() -> None:
    warmed = threading.Event()
    app, probes = make_app(ZDT_CHECK_CACHE_SECONDS=0)
    probes.add_check("cache-warm", warmed.is_set, probe="startup")
    client = app.test_client()
    assert client.get("/healthz/startup").status_code == 503
    assert client.get("/healthz/ready").json == {"status": "starting"}
    warmed.set()
    assert client.get("/healthz/startup").status_code == 200
    assert client.get("/healthz/ready").status_code == 200
    warmed.clear()  # a startup check gates the start only, never again after it
    assert client.get("/healthz/ready").status_code == 200
    assert client.get("/healthz/startup").status_code == 200


def test_startup_is_pod_wide_once_any_worker_started_readiness_once_every_worker_did(
    gunicorn,
) -> None:
    """The kubelet stops startup probing after one success; no sibling may answer 503 after it.
    Readiness is one answer for the pod: 503 on every worker until each one has started."""
    server = gunicorn(config="workers = 3\n", app="tests.apps_explicit:app")
    server.start(wait_ready=False)
    server.wait_listening()
    workers = server.wait_workers(3)
    server.answers_from_every_worker("/healthz/startup", 503, workers)

    marked = int(server.get("/started", method="POST").headers["x-worker-pid"])
    server.answers_from_every_worker("/healthz/startup", 200, workers)
    server.answers_from_every_worker("/healthz/ready", 503, workers)
    assert server.get("/healthz/ready").json() == {"status": "starting"}
    assert marked in workers

    server.answers_from_every_worker("/started", 200, workers)  # every worker marks itself
    wait_until(lambda: server.try_get("/healthz/ready") == 200, 5, "ready after all started")
    server.answers_from_every_worker("/healthz/ready", 200, workers)
