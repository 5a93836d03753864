"""The readiness decision (gunicorn_zdt.core.readiness) at its edges, as tables.

test_readiness_both_servers.py runs the answers through both servers of a real Gunicorn and
has the main pure tables; these rows add the edges: a verdict that expires exactly now, how
a worker's raw verdict becomes an Outcome, ties between workers, ``/ready/<name>`` while
starting or draining, what ``?verbose`` shows of each check, and ``/startup``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gunicorn_zdt.core.readiness import (
    SHUTDOWN,
    Outcome,
    PodView,
    decide_ready,
    decide_startup,
    pod_view,
)

OK = Outcome(True, 0.01)
BAD = Outcome(False, 0.02, "refused")


def slot(published: float, valid_until: float, **detail: Any) -> Any:
    """A worker's slot as pod_view reads it (gunicorn_zdt.runtime.state.Slot's verdict fields)."""
    return SimpleNamespace(
        verdict_published=published, verdict_valid_until=valid_until, detail=detail
    )


@pytest.mark.parametrize(
    ("slots", "now", "view"),
    [
        # freshness: published > 0 and valid until now or later
        (
            [slot(5, 10, checks={"db": [True, 0.5, ""]})],
            10,
            PodView(False, True, {"db": Outcome(True, 0.5)}),
        ),
        ([slot(5, 9.999, checks={"db": [True, 0.5, ""]})], 10, PodView(False, True, None)),
        (
            [slot(0.001, 10, checks={"db": [True, 0.5, ""]})],
            10,
            PodView(False, True, {"db": Outcome(True, 0.5)}),
        ),
        ([slot(0, 10, checks={"db": [True, 0.5, ""]})], 10, PodView(False, True, None)),
        # a raw verdict as an Outcome: ok as a bool, seconds as a float, "" as no reason
        (
            [slot(5, 10, checks={"db": [0, 2, "refused"], "cache": [1, 0.25, None, None]})],
            6,
            PodView(
                False,
                True,
                {"db": Outcome(False, 2.0, "refused"), "cache": Outcome(True, 0.25)},
            ),
        ),
        (
            [slot(5, 10, checks={"db": [True, 1, "", 4]})],
            6,
            PodView(False, True, {"db": Outcome(True, 1.0, None, 4.0)}),
        ),
        # a worker that published nothing about checks, or about having started
        ([slot(5, 10)], 6, PodView(False, True, {})),
        ([slot(5, 10, started=False)], 6, PodView(False, False, {})),
        ([slot(5, 10, started=True, checks={})], 6, PodView(False, True, {})),
        # the same run start: the later publish wins
        (
            [
                slot(8, 10, checks={"db": [False, 1.0, "timed out", 4]}),
                slot(7, 10, checks={"db": [True, 0.1, "", 4]}),
            ],
            8,
            PodView(False, True, {"db": Outcome(False, 1.0, "timed out", 4.0)}),
        ),
        (
            [
                slot(7, 10, checks={"db": [True, 0.1, "", 4]}),
                slot(8, 10, checks={"db": [False, 1.0, "timed out", 4]}),
            ],
            8,
            PodView(False, True, {"db": Outcome(False, 1.0, "timed out", 4.0)}),
        ),
        # no start recorded: the publish time stands in for it
        (
            [
                slot(6, 10, checks={"db": [False, 1.0, "timed out"]}),
                slot(9, 10, checks={"db": [True, 0.1, "", 5]}),
            ],
            9,
            PodView(False, True, {"db": Outcome(False, 1.0, "timed out")}),  # 6 > 5
        ),
        (
            [
                slot(4, 10, checks={"db": [False, 1.0, "timed out"]}),
                slot(9, 10, checks={"db": [True, 0.1, "", 5]}),
            ],
            9,
            PodView(False, True, {"db": Outcome(True, 0.1, None, 5.0)}),  # 4 < 5
        ),
    ],
    ids=[
        "valid-until-now-counts",
        "expired-just-before-now",
        "published-a-moment-after-zero",
        "never-published",
        "raw-verdict-coerced",
        "run-start-kept-as-float",
        "no-checks-key",
        "not-started",
        "started",
        "same-start-later-publish-first",
        "same-start-later-publish-second",
        "publish-time-stands-in-later",
        "publish-time-stands-in-earlier",
    ],
)
def test_pod_view_edges(slots: list[Any], now: float, view: PodView) -> None:
    assert pod_view(False, slots, now) == view


@pytest.mark.parametrize("draining", [True, False])
def test_pod_view_carries_the_drain(draining: bool) -> None:
    fresh = [slot(5, 10, checks={"db": [True, 0.5, ""]})]
    assert pod_view(draining, fresh, 6) == PodView(draining, True, {"db": Outcome(True, 0.5)})
    assert pod_view(draining, [], 6) == PodView(draining, True, None)


def test_pod_view_gate_needs_every_fresh_worker_to_have_started() -> None:
    workers = [slot(5, 10, started=True), slot(5, 10, started=False), slot(5, 10, started=True)]
    assert pod_view(False, workers, 6).gate_open is False
    assert pod_view(False, workers[::2], 6).gate_open is True


SERVING = PodView(False, True, {"db": OK, "cache": BAD})


@pytest.mark.parametrize(
    ("view", "query", "expose", "only", "status", "body"),
    [
        # /ready/<name>: one check, no shutdown entry, exclude ignored
        (SERVING, {}, False, "cache", 503, {"status": "failed", "failed": ["cache"]}),
        (
            SERVING,
            {"exclude": ["cache"]},
            False,
            "cache",
            503,
            {"status": "failed", "failed": ["cache"]},
        ),
        (
            SERVING,
            {"verbose": [""]},
            True,
            "db",
            200,
            {"status": "ok", "checks": {"db": {"status": "ok", "seconds": 0.01}}},
        ),
        (PodView(True, True, {"db": OK}), {}, False, "db", 503, {"status": "draining"}),
        (PodView(False, False, {"db": OK}), {}, False, "db", 503, {"status": "starting"}),
        (
            PodView(False, True, None),
            {},
            False,
            "db",
            404,
            {"status": "unknown check", "check": "db"},
        ),
        # /ready: the failed list names the failing checks only, shutdown first when draining
        (
            PodView(False, True, {"a": BAD, "b": OK, "c": BAD}),
            {},
            False,
            None,
            503,
            {"status": "failed", "failed": ["a", "c"]},
        ),
        (SERVING, {"exclude": ["cache", "db"]}, False, None, 200, {"status": "ok"}),
        (PodView(False, True, {}), {}, False, None, 200, {"status": "ok"}),  # no checks at all
        # draining or starting wins over failed, and over "no results yet"
        (PodView(True, True, None), {}, False, None, 503, {"status": "draining"}),
        (PodView(True, False, {"db": BAD}), {}, False, None, 503, {"status": "draining"}),
        (PodView(False, False, None), {}, False, None, 503, {"status": "starting"}),
        (
            PodView(False, True, None),
            {"verbose": [""]},
            False,
            None,
            503,
            {
                "status": "failed",
                "checks": {SHUTDOWN: {"status": "ok"}},
                "detail": "no check results yet",
            },
        ),
        # ?verbose: every selected check, reasons withheld unless allowed
        (
            SERVING,
            {"verbose": [""], "exclude": ["db"]},
            False,
            None,
            503,
            {
                "status": "failed",
                "checks": {
                    SHUTDOWN: {"status": "ok"},
                    "cache": {"status": "failed", "seconds": 0.02, "reason": "reason withheld"},
                },
            },
        ),
        (
            PodView(False, True, {"db": Outcome(False, None, None)}),
            {"verbose": [""]},
            True,
            None,
            503,
            {
                "status": "failed",
                "checks": {
                    SHUTDOWN: {"status": "ok"},
                    "db": {"status": "failed", "reason": "failed"},
                },
            },
        ),
        (
            PodView(False, True, {"db": Outcome(True, 0.123456), "cache": Outcome(True, 2.0)}),
            {"verbose": [""]},
            False,
            None,
            200,
            {
                "status": "ok",
                "checks": {
                    SHUTDOWN: {"status": "ok"},
                    "db": {"status": "ok", "seconds": 0.1235},
                    "cache": {"status": "ok", "seconds": 2.0},
                },
            },
        ),
        # warnings: each bad exclusion named once per mention, in order
        (
            SERVING,
            {"exclude": ["nope", SHUTDOWN, "cache"]},
            False,
            None,
            200,
            {
                "status": "ok",
                "warnings": [
                    "unknown check in exclude: 'nope'",
                    "'shutdown' cannot be excluded: it fails from SIGTERM on",
                ],
            },
        ),
    ],
    ids=[
        "one-check-failed",
        "one-check-ignores-exclude",
        "one-check-verbose",
        "one-check-draining",
        "one-check-starting",
        "one-check-before-any-result",
        "failed-lists-only-the-failing",
        "all-excluded",
        "no-checks-registered",
        "draining-before-results",
        "draining-wins-over-starting",
        "starting-before-results",
        "no-results-verbose",
        "verbose-withheld",
        "verbose-exposed-no-reason-no-seconds",
        "verbose-seconds-rounded",
        "warnings-in-order",
    ],
)
def test_decide_ready_edges(
    view: PodView,
    query: dict[str, list[str]],
    expose: bool,
    only: str | None,
    status: int,
    body: dict[str, Any],
) -> None:
    assert decide_ready(view, query, expose_reasons=expose, only=only) == (status, body)


def test_decide_ready_does_not_change_its_inputs() -> None:
    checks = {"db": OK}
    query = {"exclude": ["db"], "verbose": [""]}
    decide_ready(PodView(False, True, checks), query, only="db")
    assert (checks, query) == ({"db": OK}, {"exclude": ["db"], "verbose": [""]})


@pytest.mark.parametrize(
    ("started", "pending", "status", "body"),
    [
        (True, None, 200, {"status": "ok"}),
        (
            True,
            {"migrations": BAD},
            200,
            {"status": "ok"},
        ),  # started for good: checks no longer matter
        (False, None, 503, {"status": "starting"}),
        (False, {}, 503, {"status": "starting"}),
        (False, {"migrations": OK}, 503, {"status": "starting"}),
        (False, {"a": BAD, "b": OK, "c": BAD}, 503, {"status": "starting", "failed": ["a", "c"]}),
    ],
)
def test_decide_startup(
    started: bool, pending: dict[str, Outcome] | None, status: int, body: dict[str, Any]
) -> None:
    assert decide_startup(started, pending) == (status, body)


def test_reasons_are_withheld_unless_allowed() -> None:
    """The default for a caller that does not say: a failing check's reason stays private."""
    status, body = decide_ready(PodView(False, True, {"db": BAD}), {"verbose": [""]})
    assert (status, body["checks"]["db"]) == (
        503,
        {"status": "failed", "seconds": 0.02, "reason": "reason withheld"},
    )
