"""Readiness is decided once: the app's port and the probe listener give the same answer.

Issue 9: the Flask view and the probe listener each wrote their own readiness and the
bodies had already drifted. One table of query strings runs against both servers of the
same real Gunicorn, while serving and during the drain after SIGTERM; only float
``seconds`` values may differ. Then a pure table of :mod:`gunicorn_zdt.core.readiness`.
"""

from __future__ import annotations

import copy
import signal
import socket
from types import SimpleNamespace
from typing import Any

import pytest

from gunicorn_zdt.core.readiness import Outcome, PodView, decide_ready, decide_startup, pod_view
from tests.support import Gunicorn, request, wait_until

ANY = "ANY"  # a float ``seconds`` value: how long a check took differs between runs
NO_SHUTDOWN_EXCLUSION = "'shutdown' cannot be excluded: it fails from SIGTERM on"
UNKNOWN_NOPE = "unknown check in exclude: 'nope'"
UP = {"status": "ok", "seconds": ANY}
DOWN = {"status": "failed", "seconds": ANY, "reason": "reason withheld"}
FAILED = {"status": "failed", "failed": ["down"]}
DRAINING = {"status": "draining"}

#: query (after /healthz/ready) -> (status, body) while serving, then during the drain
TABLE: list[tuple[str, tuple[int, dict[str, Any]], tuple[int, dict[str, Any]]]] = [
    ("", (503, FAILED), (503, DRAINING)),
    (
        "?verbose",
        (
            503,
            {"status": "failed", "checks": {"shutdown": {"status": "ok"}, "up": UP, "down": DOWN}},
        ),
        (
            503,
            {
                "status": "draining",
                "checks": {
                    "shutdown": {"status": "failed", "reason": "reason withheld"},
                    "up": UP,
                    "down": DOWN,
                },
            },
        ),
    ),
    ("?exclude=down", (200, {"status": "ok"}), (503, DRAINING)),
    (
        "?exclude=shutdown",
        (503, {**FAILED, "warnings": [NO_SHUTDOWN_EXCLUSION]}),
        (503, {**DRAINING, "warnings": [NO_SHUTDOWN_EXCLUSION]}),
    ),
    (
        "?exclude=down&exclude=shutdown",
        (200, {"status": "ok", "warnings": [NO_SHUTDOWN_EXCLUSION]}),
        (503, {**DRAINING, "warnings": [NO_SHUTDOWN_EXCLUSION]}),
    ),
    (
        "?exclude=nope",
        (503, {**FAILED, "warnings": [UNKNOWN_NOPE]}),
        (503, {**DRAINING, "warnings": [UNKNOWN_NOPE]}),
    ),
    ("/up", (200, {"status": "ok"}), (503, DRAINING)),
    ("/down", (503, FAILED), (503, DRAINING)),
    (
        "/nope",
        (404, {"status": "unknown check", "check": "nope"}),
        (404, {"status": "unknown check", "check": "nope"}),
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def normalised(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with each check's float ``seconds`` replaced by ANY (anything else kept)."""
    body = copy.deepcopy(body)
    for check in body.get("checks", {}).values():
        if "seconds" in check:
            assert isinstance(check["seconds"], float), body
            check["seconds"] = ANY
    return body


def answers(port: int, query: str) -> tuple[int, dict[str, Any]]:
    r = request(port, "/healthz/ready" + query)
    return r.status, normalised(r.json())


def assert_table(server: Gunicorn, probe_port: int, column: int) -> None:
    for query, *expected in TABLE:
        app_answer = answers(server.port, query)
        listener_answer = answers(probe_port, query)
        assert app_answer == listener_answer, (query, app_answer, listener_answer)
        assert app_answer == expected[column], (query, app_answer, expected[column])


def test_app_port_and_probe_listener_answer_alike_serving_and_draining(gunicorn) -> None:
    probe_port = free_port()
    server = gunicorn(
        app="tests.apps_checks:app",
        env={"ZDT_PROBE_BIND": f"127.0.0.1:{probe_port}", "ZDT_DRAIN_SECONDS": "60"},
    ).start(wait_ready=False)
    server.wait_listening()
    for port in (server.port, probe_port):  # "down" fails: ready only without it
        wait_until(
            lambda port=port: answers(port, "?exclude=down")[0] == 200,  # type: ignore[misc]
            20,
            f"ready?exclude=down on {port}",
            server.log,
        )
    assert_table(server, probe_port, column=0)

    server.signal(signal.SIGTERM)
    server.wait_for_log(r"gunicorn-zdt: SIGTERM: draining")
    assert_table(server, probe_port, column=1)
    for port in (server.port, probe_port):  # liveness stays 200 while draining
        assert request(port, "/healthz/live").status == 200

    server.signal(signal.SIGTERM)  # a second SIGTERM ends the drain at once
    assert server.wait_exit(30) == 0


# -- the pure decision ----------------------------------------------------------------

OK = Outcome(True, 0.01)
BAD = Outcome(False, 0.02, "refused")


@pytest.mark.parametrize(
    ("view", "query", "expose", "only", "status", "body"),
    [
        (PodView(False, True, {"db": OK}), {}, False, None, 200, {"status": "ok"}),
        (
            PodView(False, True, {"db": BAD}),
            {},
            False,
            None,
            503,
            {"status": "failed", "failed": ["db"]},
        ),
        (PodView(True, True, {"db": OK}), {}, False, None, 503, {"status": "draining"}),
        (
            PodView(True, True, {"db": OK}),
            {"exclude": ["shutdown"]},
            False,
            None,
            503,
            {"status": "draining", "warnings": [NO_SHUTDOWN_EXCLUSION]},
        ),
        (
            PodView(True, True, {"db": OK}),
            {"verbose": [""]},
            True,
            None,
            503,
            {
                "status": "draining",
                "checks": {
                    "shutdown": {"status": "failed", "reason": "draining"},
                    "db": {"status": "ok", "seconds": 0.01},
                },
            },
        ),
        (
            PodView(False, True, {"db": BAD}),
            {"verbose": [""]},
            True,
            None,
            503,
            {
                "status": "failed",
                "checks": {
                    "shutdown": {"status": "ok"},
                    "db": {"status": "failed", "seconds": 0.02, "reason": "refused"},
                },
            },
        ),
        (PodView(False, False, {"db": OK}), {}, False, None, 503, {"status": "starting"}),
        (
            PodView(False, True, None),
            {},
            False,
            None,
            503,
            {"status": "failed", "failed": [], "detail": "no check results yet"},
        ),
        (
            PodView(False, True, {"db": BAD}),
            {"exclude": ["db", "db"]},
            False,
            None,
            200,
            {"status": "ok"},
        ),
        (
            PodView(False, True, {"db": OK}),
            {"exclude": ["shutdown"]},
            False,
            "db",
            200,
            {"status": "ok"},
        ),
        (
            PodView(False, True, {}),
            {},
            False,
            "shutdown",
            404,
            {"status": "unknown check", "check": "shutdown"},
        ),
    ],
    ids=[
        "ok",
        "failed",
        "draining",
        "draining-exclude-shutdown",
        "draining-verbose-reasons",
        "failed-verbose-reasons",
        "starting",
        "no-results-yet",
        "exclude-the-failing",
        "one-check-ignores-exclude",
        "shutdown-is-not-a-check-path",
    ],
)
def test_decide_ready(
    view: PodView, query: dict, expose: bool, only: str | None, status: int, body: dict
) -> None:
    assert decide_ready(view, query, expose_reasons=expose, only=only) == (status, body)


def slot(published: float, valid_until: float, started: bool, checks: dict) -> Any:
    detail = {"started": started, "checks": checks}
    return SimpleNamespace(
        verdict_published=published, verdict_valid_until=valid_until, detail=detail
    )


@pytest.mark.parametrize(
    ("slots", "now", "view"),
    [
        ([], 10, PodView(False, True, None)),
        ([slot(0, 0, True, {})], 10, PodView(False, True, None)),  # no verdict published yet
        ([slot(5, 9, True, {"db": [True, 0.5, ""]})], 10, PodView(False, True, None)),  # expired
        (
            [
                slot(20, 30, True, {"db": [True, 0.5, ""]}),
                slot(25, 30, True, {"db": [False, 0.25, "refused"]}),
            ],
            21,
            PodView(False, True, {"db": Outcome(False, 0.25, "refused")}),  # freshest wins
        ),
        (
            [  # a run stuck through an outage times out after another began once it was over
                slot(20, 30, True, {"db": [True, 0.01, "", 19.9]}),
                slot(21, 30, True, {"db": [False, 1.0, "timed out", 19.0]}),
            ],
            21,
            PodView(False, True, {"db": Outcome(True, 0.01, None, 19.9)}),
        ),
        (
            [  # a run begun later failed: the pod fails, whatever the publish order
                slot(21, 30, True, {"db": [True, 0.01, "", 19.9], "cache": [True, 0.01, "", 19.9]}),
                slot(20, 30, True, {"db": [False, 1.0, "timed out", 19.95]}),
            ],
            21,
            PodView(
                False,
                True,
                {
                    "db": Outcome(False, 1.0, "timed out", 19.95),
                    "cache": Outcome(True, 0.01, None, 19.9),
                },
            ),
        ),
        (
            [slot(20, 30, False, {}), slot(25, 30, True, {})],
            21,
            PodView(False, False, {}),  # one worker has not started: the gate stays shut
        ),
        (
            [slot(5, 9, False, {}), slot(25, 30, True, {})],
            21,
            PodView(False, True, {}),  # an expired worker's verdict does not count
        ),
    ],
    ids=[
        "no-slots",
        "unpublished",
        "expired",
        "freshest-wins",
        "a-late-answer-of-an-older-run-loses",
        "freshest-by-run-start-per-check",
        "gate-needs-every-fresh-worker",
        "expired-ignored",
    ],
)
def test_pod_view(slots: list[Any], now: float, view: PodView) -> None:
    assert pod_view(False, slots, now) == view


def test_pod_view_keeps_the_drain() -> None:
    assert pod_view(True, [], now=0).draining is True


def test_decide_startup() -> None:
    assert decide_startup(True) == (200, {"status": "ok"})
    assert decide_startup(False, {"migrations": BAD, "cache": OK}) == (
        503,
        {"status": "starting", "failed": ["migrations"]},
    )
