"""The framework-neutral probe core through its WSGI and ASGI adapters, without Gunicorn.

Without the hooks each probe runs the process's own checks (through their cache); the
answers must be the ones the Flask extension and the probe listener give (one decision,
gunicorn_zdt.health.core, then gunicorn_zdt.core.readiness). Tables: request to exact
status and body, the same table for the Flask extension as for the middlewares.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from flask import Flask, current_app

from gunicorn_zdt.asgi import ZdtMiddleware
from gunicorn_zdt.flask import Probes
from gunicorn_zdt.health import HealthChecks, core
from gunicorn_zdt.wsgi import ZdtWSGIMiddleware


def _checks() -> HealthChecks:
    checks = HealthChecks()
    checks.add_check("good", lambda: True)
    checks.add_check("bad", lambda: False)
    return checks


def _app_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app"]


def _wsgi(method: str, target: str) -> tuple[int, Any]:
    path, _, query = target.partition("?")
    got: list[str] = []
    app = ZdtWSGIMiddleware(_app_wsgi, _checks())
    body = b"".join(
        app(
            {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query},
            lambda status, headers: got.append(status),
        )
    )
    status = int(got[0].split()[0])
    return status, (json.loads(body) if body.startswith(b"{") else body.decode())


async def _app_asgi(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


async def _async_ok() -> bool:
    await asyncio.sleep(0)
    return True


def _asgi(method: str, target: str) -> tuple[int, Any]:
    path, _, query = target.partition("?")
    checks = _checks()
    checks.add_check("async", _async_ok)
    app = ZdtMiddleware(_app_asgi, checks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode()}
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], (json.loads(body) if body.startswith(b"{") else body.decode())


TABLE = [
    ("GET", "/healthz/live", 200, {"status": "ok"}),
    ("GET", "/healthz/ready", 503, {"status": "failed", "failed": ["bad"]}),
    ("GET", "/healthz/ready?exclude=bad", 200, {"status": "ok"}),
    ("GET", "/healthz/ready/good", 200, {"status": "ok"}),
    ("GET", "/healthz/ready/nope", 404, {"status": "unknown check", "check": "nope"}),
    ("GET", "/healthz/startup", 200, {"status": "ok"}),
    ("POST", "/healthz/ready", 405, {"status": "method not allowed", "allow": ["GET", "HEAD"]}),
    ("HEAD", "/healthz/live", 200, ""),
    ("GET", "/healthz/other", 200, "app"),
    ("GET", "/work", 200, "app"),
]


@pytest.mark.parametrize(("method", "target", "status", "body"), TABLE)
def test_wsgi_middleware_answers_probes_and_passes_the_rest(
    method: str, target: str, status: int, body: Any
) -> None:
    assert _wsgi(method, target) == (status, body)


@pytest.mark.parametrize(("method", "target", "status", "body"), TABLE)
def test_asgi_middleware_answers_probes_and_passes_the_rest(
    method: str, target: str, status: int, body: Any
) -> None:
    assert _asgi(method, target) == (status, body)


def test_asgi_coroutine_check_runs_on_the_apps_loop() -> None:
    status, body = _asgi("GET", "/healthz/ready/async?verbose")
    assert (status, body["checks"]["async"]["status"]) == (200, "ok")


def test_verbose_withholds_reasons_and_lists_the_shutdown_check() -> None:
    status, body = _wsgi("GET", "/healthz/ready?verbose")
    assert status == 503
    assert body["checks"] == {
        "shutdown": {"status": "ok"},
        "good": {"status": "ok", "seconds": body["checks"]["good"]["seconds"]},
        "bad": {
            "status": "failed",
            "seconds": body["checks"]["bad"]["seconds"],
            "reason": "reason withheld",
        },
    }


def test_liveness_checks_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="cannot be added to liveness"):
        HealthChecks().add_check("db", lambda: True, probe="live")  # type: ignore[arg-type]


def test_django_middleware_answers_probes_first() -> None:
    pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(ALLOWED_HOSTS=["only.example"], DEBUG=False)
    from django.http import HttpResponse
    from django.test import RequestFactory

    from gunicorn_zdt.django import ProbesMiddleware

    middleware = ProbesMiddleware(lambda request: HttpResponse(b"app"))
    # Any Host: the kubelet probes the pod's IP, which ALLOWED_HOSTS rarely lists.
    live = middleware(RequestFactory().get("/healthz/live", HTTP_HOST="10.1.2.3"))
    assert (live.status_code, json.loads(live.content)) == (200, {"status": "ok"})
    assert live["Cache-Control"] == "no-store"
    other = middleware(RequestFactory().get("/work", HTTP_HOST="only.example"))
    assert other.content == b"app"


def test_asgi_new_connection_is_a_client_address_not_seen_before() -> None:
    """ASGI has no connection id: a kept-alive connection keeps its client port; a proxy-
    headers rewrite (port 0) or no client at all counts every request as new."""
    seen = ZdtMiddleware(_app_asgi, HealthChecks())._new_connection
    calls = [("10.0.0.1", 40000), ("10.0.0.1", 40000), ("10.0.0.1", 40001), ("10.0.0.2", 0)]
    calls += [("10.0.0.2", 0), None]
    assert [seen({"client": c}) for c in calls] == [True, False, True, True, True, True]


def _flask(method: str, target: str) -> tuple[int, Any]:
    app = Flask(__name__)
    app.add_url_rule("/<path:rest>", "app", lambda rest: "app")
    probes = Probes(app)
    probes.add_check("good", lambda: True)
    probes.add_check("bad", lambda: False)
    r = app.test_client().open(target, method=method)
    data = r.get_data(as_text=True)
    return r.status_code, (json.loads(data) if data.startswith("{") else data)


@pytest.mark.parametrize(
    ("method", "target", "status", "body"),
    [row for row in TABLE if row[0] != "POST"],  # Flask's own router answers 405 (HTML)
)
def test_flask_extension_answers_as_the_middlewares_do(
    method: str, target: str, status: int, body: Any
) -> None:
    assert _flask(method, target) == (status, body)


def test_flask_coroutine_check_runs_on_a_loop_of_its_own_in_the_app_context() -> None:
    """A Flask app has no event loop to hand over: an ``async def`` check still runs (it
    once passed unawaited: a coroutine object is not False), in the app's context."""
    app = Flask("named-app")
    probes = Probes(app)

    async def fails() -> bool:
        await asyncio.sleep(0)
        return current_app.name != "named-app"

    async def passes() -> bool:
        await asyncio.sleep(0)
        return current_app.name == "named-app"

    probes.add_check("fails", fails)
    probes.add_check("passes", passes)
    client = app.test_client()
    assert client.get("/healthz/startup").status_code == 200  # no startup check waits a loop
    r = client.get("/healthz/ready?verbose")
    checks = r.get_json()["checks"]
    assert (r.status_code, checks["fails"]["status"], checks["passes"]["status"]) == (
        503,
        "failed",
        "ok",
    )


def test_wsgi_middleware_under_gunicorn_without_hooks_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(core, "_warned_no_hooks", False)
    monkeypatch.setattr(core.runtime, "current", lambda: None)  # a test before may install()
    monkeypatch.setattr(core.runtime, "pod_state", lambda: None)
    app = ZdtWSGIMiddleware(_app_wsgi, _checks())
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/healthz/live", "QUERY_STRING": ""}
    with caplog.at_level(logging.WARNING, logger="gunicorn_zdt"):
        app({**environ, "SERVER_SOFTWARE": "WSGIServer/0.2"}, lambda *a: None)
        assert "drain coordination is off" not in caplog.text  # not Gunicorn: nothing to say
        for _ in range(3):
            app({**environ, "SERVER_SOFTWARE": "gunicorn/27.0.1"}, lambda *a: None)
    assert caplog.text.count("drain coordination is off: the Gunicorn hooks are not installed") == 1
